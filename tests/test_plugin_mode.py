"""A mode registered by a third-party package's entry point (``tests/plugins/muse_testplugin``,
the mode ``echo`` with its own ``Options``: ``shout``, ``repeat``) works everywhere with no change
to OpenMuse: ``/v1/models`` lists ``muse-echo``, it answers over HTTP with its options validated
(an unknown or bad option is a 400 naming it), and the CLI grows ``--shout`` / ``--repeat``.
Built-in modes' options are validated the same way (``muse.agents`` on Thinking is refused).
Run: `.venv/bin/pytest tests/test_plugin_mode.py`."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from openmuse import registry
from openmuse.server.app import ServerConfig, create_app

from .conftest import run_muse

PLUGINS = Path(__file__).parent / "plugins"


@pytest.fixture
def client(engine, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(PLUGINS))
    registry._entries.cache_clear()
    app = create_app(ServerConfig(database_url=f"sqlite:///{tmp_path}/p.db"), engine=engine)
    with TestClient(app, base_url="http://127.0.0.1") as c:
        yield c
    registry._entries.cache_clear()


def ask(client, model: str, muse: dict | None = None, **body):
    return client.post("/v1/chat/completions", json={
        "model": model, "messages": [{"role": "user", "content": "hello there"}], "muse": muse or {}, **body})


def test_models_list_every_registered_mode(client):
    data = client.get("/v1/models").json()["data"]
    by_id = {m["id"]: m for m in data}
    assert {"muse-instant", "muse-thinking", "muse-contemplating", "muse-ground", "muse-echo", "muse"} <= set(by_id)
    assert by_id["muse-echo"]["muse"]["summary"] == "repeat the question (a test plugin)"
    assert {"shout", "repeat", "max_tokens"} <= set(by_id["muse-echo"]["muse"]["options"])


def test_a_plugin_mode_answers_over_http_with_its_own_options(client):
    r = ask(client, "muse-echo", {"shout": True, "repeat": 2, "store": False})
    assert r.status_code == 200, r.text
    body = r.json()
    text = body["choices"][0]["message"]["content"]
    assert text and text == text.upper() and body["muse"]["mode"] == "echo"
    assert body["usage"]["completion_tokens"] > 0  # the real engine answered


@pytest.mark.parametrize("model, muse, param", [
    ("muse-echo", {"agents": 3}, "muse.agents"),  # another mode's option
    ("muse-echo", {"repeat": 9}, "muse.repeat"),  # out of its range
    ("muse-thinking", {"agents": 3}, "muse.agents"),
    ("muse-contemplating", {"budget": 64}, "muse.budget"),  # renamed agent_tokens
    ("muse-contemplating", {"agents": 17}, "muse.agents"),
])
def test_unknown_or_bad_options_are_a_400_naming_them(client, model, muse, param):
    r = ask(client, model, muse)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["param"] == param and param.split(".")[1] in err["message"]


def test_a_plugin_mode_has_cli_flags(monkeypatch):
    env = {"PYTHONPATH": os.pathsep.join([str(PLUGINS), os.environ.get("PYTHONPATH", "")])}
    h = run_muse("ask", "--help", env=env)
    flat = " ".join(h.stdout.split())  # the help wraps where the other modes' names leave it
    assert "--shout / --no-shout" in flat and "--repeat" in flat and "echo (repeat the question" in flat
    r = run_muse("hello there", "--mode", "echo", "--shout", "--json", env=env)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["mode"] == "echo" and out["answer"] == out["answer"].upper()
    bad = run_muse("hello there", "--mode", "echo", "--agents", "3", env=env)
    assert bad.returncode != 0 and "error: --agents is not an option of mode echo" in bad.stderr
    # a flag set in the environment for another mode is left alone
    ok = run_muse("hello there", "--mode", "echo", env={**env, "MUSE_AGENTS": "3"})
    assert ok.returncode == 0, ok.stderr
