"""Shared fixtures: the embedded engine (loaded once), a real OpenAI-compatible server
(llama-cpp-python's own, serving the same packaged GGUF) and helpers to run the `muse` CLI.

Run everything with `make test` (or `.venv/bin/pytest`)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from openmuse.engines import EngineSettings, create_engine
from openmuse.engines.local import default_model_path

SYSTEM = {"role": "system", "content": "You are a helpful assistant."}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_http(proc: subprocess.Popen, url: str, log: Path, timeout: float = 120) -> None:
    """Wait until ``url`` answers 200; fail with the server's log if it exits or never does."""
    deadline = time.time() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited: {Path(log).read_text()[-2000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.time() > deadline:
            raise RuntimeError(f"the server did not start in {timeout:.0f} s")
        time.sleep(0.3)


@pytest.fixture(scope="session")
def engine():
    return create_engine(EngineSettings())


@pytest.fixture(scope="session")
def llama_server(llama_server_run):
    """llama-cpp-python's OpenAI-compatible server on a free loopback port: its /v1 URL."""
    return llama_server_run[0]


@pytest.fixture(scope="session")
def llama_server_run(tmp_path_factory):
    """(its /v1 URL, its log file). Started through openmuse.engines.llama_server, which loads
    the model with the local engine's safe buffer types (no AMX crash on Intel Xeons)."""
    port = free_port()
    log = tmp_path_factory.mktemp("server") / "server.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "openmuse.engines.llama_server", "--model", str(default_model_path()),
             "--model_alias", "smollm2", "--host", "127.0.0.1", "--port", str(port),
             "--n_ctx", "2048", "--n_threads", "2", "--interrupt_requests", "False"],
            stdout=fh, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        wait_for_http(proc, f"{url}/models", log)
        yield url, log
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def run_muse(*args: str, env: dict | None = None, stdin: str | None = None, timeout: int = 300):
    """Run the installed `muse` console script; returns the CompletedProcess."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("MUSE_")}
    full_env.update(env or {})
    muse = Path(sys.executable).with_name("muse")
    return subprocess.run(
        [str(muse), *args], capture_output=True, text=True, env=full_env, input=stdin, timeout=timeout
    )
