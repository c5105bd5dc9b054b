"""``muse bench engine --contention``: single-sequence decode speed of the local engine with the
machine idle and with CPU-burning processes beside it, for each thread policy, in one run.

Policies compared: ``auto`` (the default: as many threads as the cores other processes leave
free, re-measured while decoding), ``all`` (one thread per logical CPU: the old default) and
``all-1`` (one fewer). A burner is a separate Python process spinning on ``while True``, as a
busy neighbour on a laptop or a shared VM would. Each measurement decodes one sequence for at
most ``steps`` tokens or ``seconds`` seconds (whichever comes first: a stalled policy can
take minutes for a few tokens) and counts the tokens llama.cpp decoded. Results, with the
arguments and the environment, go to a JSON file.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from ..engines import cpu
from ..engines.local import LocalEngine
from ..types import ChatRequest
from . import environment
from .engine import PROMPT

BURN = "while True:\n    pass\n"


def policies(cpus: int) -> list[tuple[str, int | None]]:
    """(name, fixed threads or None for auto), the default first; ``cpus`` is what the old
    default used: every logical CPU (``os.cpu_count()``)."""
    out: list[tuple[str, int | None]] = [("auto", None), (f"all ({cpus})", cpus)]
    if cpus > 1:
        out.append((f"all-1 ({cpus - 1})", cpus - 1))
    return out


def _tok_s(engine: LocalEngine, steps: int, seconds: float) -> tuple[float, int]:
    """Tokens per second decoding one sequence, and the threads in use at the end."""
    req = ChatRequest(messages=[{"role": "user", "content": PROMPT}], max_tokens=steps,
                      temperature=0.8, seed=7, ignore_eos=True)
    engine.clear_cache()
    before = engine.stats["tokens_decoded"]
    t0 = time.perf_counter()
    stream = engine.stream(req)
    try:
        for _ in stream:
            if time.perf_counter() - t0 > seconds:
                break
    finally:
        stream.close()  # the engine frees the sequence
    wall = time.perf_counter() - t0
    return (engine.stats["tokens_decoded"] - before) / wall, engine.threads.current


def _burners(n: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", BURN]) for _ in range(n)]


def run_contention_bench(engine: LocalEngine, steps: int, burners: int, seconds: float, repeats: int,
                         out_path: str | None, progress: Console | None) -> tuple[dict[str, Any], Path]:
    most = cpu.most_threads()
    report: dict[str, Any] = {
        "args": {"steps": steps, "burners": burners, "seconds": seconds, "repeats": repeats,
                 "model": engine.model, "prompt": PROMPT, "most_threads": most},
        "env": {**environment(), "system_info": engine.system_info,
                "extra_buffers": engine.runtime()["extra_buffers"]},
        "results": [],
    }
    engine.generate(ChatRequest(messages=[{"role": "user", "content": "Hi"}], max_tokens=4))  # warm up
    for name, fixed in policies(os.cpu_count() or 1):
        idle, busy, used = [], [], []
        for r in range(repeats):
            if progress:
                progress.print(f"[dim]{name}: repeat {r + 1}/{repeats}, idle then {burners} busy process(es)…[/]")
            engine.use_threads(fixed)
            idle.append(_tok_s(engine, steps, seconds)[0])
            procs = _burners(burners)
            try:
                time.sleep(1.0)  # the neighbours are running before the request comes
                tok_s, threads = _tok_s(engine, steps, seconds)
            finally:
                for p in procs:
                    p.kill()
                    p.wait()
            busy.append(tok_s)
            used.append(threads)
            time.sleep(1.0)
        report["results"].append({
            "policy": name, "default": fixed is None,
            "idle_tok_s": round(statistics.median(idle), 1),
            "contended_tok_s": round(statistics.median(busy), 1),
            "kept": round(statistics.median(busy) / statistics.median(idle), 3),
            "threads_when_contended": used,
            "idle_runs": [round(x, 1) for x in idle], "contended_runs": [round(x, 1) for x in busy],
        })
    engine.use_threads(engine.settings.n_threads)
    default_idle = report["results"][0]["idle_tok_s"]
    for row in report["results"]:
        row["vs_default_idle"] = round(row["contended_tok_s"] / default_idle, 3)
    path = Path(out_path) if out_path else Path("results") / f"bench-contention-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    return report, path


def print_table(report: dict[str, Any], console: Console) -> None:
    a = report["args"]
    t = Table(title=f"local engine · {a['model']} · one sequence · {a['burners']} busy process(es) beside it")
    for col in ("threads", "idle tok/s", "contended tok/s", "kept", "vs default idle", "threads used"):
        t.add_column(col, justify="right")
    for r in report["results"]:
        t.add_row(r["policy"] + (" (default)" if r["default"] else ""), f"{r['idle_tok_s']:.1f}",
                  f"{r['contended_tok_s']:.1f}", f"{r['kept']:.2f}×", f"{r['vs_default_idle']:.2f}×",
                  ",".join(map(str, r["threads_when_contended"])))
    console.print(t)
