"""The one request pipeline (`openmuse.assistant`): its steps run in order; the same question
with a picture, asked through the CLI, the HTTP server and the eval harness, goes through the
Assistant with the same media checks; a check registered through an entry point sees every
request before and after the mode; checks can answer instead of the mode.

The spy is a real plugin (``tests/plugins/muse_testplugin``, found through its entry points when
its folder is on the Python path), not a mock: it writes what it saw to ``MUSE_SPY_FILE``.
Run: `.venv/bin/pytest tests/test_assistant.py` (needs tesseract-ocr for the OCR fallback)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from openmuse import registry
from openmuse.assistant import STEPS, Assistant, CheckRecord, Result
from openmuse.errors import ConfigError, MediaError
from openmuse.types import Message

from . import media_samples as ms
from .conftest import free_port, run_muse, wait_for_http

PLUGINS = Path(__file__).parent / "plugins"
QUESTION = "What does the sign say?"


@pytest.fixture
def plugin_path(monkeypatch):
    """The test plugin on sys.path (this process) and PYTHONPATH (children); registry re-read."""
    monkeypatch.syspath_prepend(str(PLUGINS))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(PLUGINS), os.environ.get("PYTHONPATH", "")]))
    registry._entries.cache_clear()
    yield
    registry._entries.cache_clear()


def test_steps_run_in_order(engine):
    seen: list[str] = []
    r = Assistant(engine, checks=[]).answer([Message(role="user", content="What is 2 + 2?")], "instant",
                                            {"max_tokens": 8}, on_step=seen.append)
    assert seen == list(STEPS)
    assert isinstance(r, Result) and r.answer and r.mode == "instant"
    assert r.engine.name == "local" and r.engine.runtime["threads"]["policy"] in ("auto", "fixed")
    assert r.usage.prompt_tokens > 0 and r.usage.prefilled_tokens + r.usage.cached_tokens >= r.usage.prompt_tokens


def test_bad_options_and_empty_questions_are_refused_before_the_engine(engine):
    a = Assistant(engine, checks=[])
    with pytest.raises(ConfigError, match="mode thinking has no option 'agents'"):
        a.answer([Message(role="user", content="hi")], "thinking", {"agents": 3})
    with pytest.raises(ConfigError, match="the question is empty"):
        a.answer([Message(role="user", content="  ")], "instant")
    with pytest.raises(ConfigError, match="unknown mode 'nope'"):
        a.answer([Message(role="user", content="hi")], "nope")
    before = engine.stats["tokens_decoded"]
    with pytest.raises(MediaError):
        a.answer([Message(role="user", content=[{"type": "text", "text": "what is this?"},
                                                 {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}])])
    assert engine.stats["tokens_decoded"] == before  # refused before any decoding


class Refuser:
    """A check that answers instead of the mode for one word (the shape of the safety layer)."""

    name = "refuser"

    def before(self, request):
        if "forbidden" in request.messages[-1].text():
            return (Result(answer="I can't help with that.", mode=request.mode.name),
                    CheckRecord(stage="before", name=self.name, decision="refuse", category="test", score=1.0))
        return None, CheckRecord(stage="before", name=self.name, decision="allow")

    def after(self, request):
        return None, CheckRecord(stage="after", name=self.name, decision="allow")


def test_a_check_can_answer_instead_of_the_mode(engine):
    a = Assistant(engine, checks=[Refuser()])
    steps: list[str] = []
    before = engine.stats["tokens_decoded"]
    r = a.answer([Message(role="user", content="the forbidden question")], "thinking", on_step=steps.append)
    assert r.answer == "I can't help with that." and engine.stats["tokens_decoded"] == before
    assert "mode" not in steps and [c.decision for c in r.checks] == ["refuse"]
    ok = a.answer([Message(role="user", content="What is 2 + 2?")], "instant", {"max_tokens": 8})
    assert [(c.stage, c.decision) for c in ok.checks] == [("before", "allow"), ("after", "allow")]
    assert ok.to_json()["checks"][0]["name"] == "refuser"


def _spy_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_cli_server_and_evals_go_through_the_assistant_with_the_same_media_checks(tmp_path, plugin_path,
                                                                                 monkeypatch):
    png = ms.sign(tmp_path / "sign.png", "OPEN DAILY")
    url = "data:image/png;base64," + base64.b64encode(png).decode()
    spy = tmp_path / "spy.jsonl"
    monkeypatch.setenv("MUSE_SPY_FILE", str(spy))
    env = {"PYTHONPATH": os.environ["PYTHONPATH"], "MUSE_SPY_FILE": str(spy), "MUSE_SPY_IMAGE": url}
    doors: dict[str, list[dict]] = {}

    # 1. the CLI
    r = run_muse(QUESTION, "--image", str(tmp_path / "sign.png"), "--max-tokens", "8", env=env)
    assert r.returncode == 0, r.stderr
    doors["cli"], n = _spy_rows(spy), len(_spy_rows(spy))

    # 2. the server (a real `muse serve` process)
    port = free_port()
    server_env = {k: v for k, v in os.environ.items() if not k.startswith("MUSE_")} | env
    server_env["MUSE_HOME"] = str(tmp_path)
    log = tmp_path / "server.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen([str(Path(sys.executable).with_name("muse")), "serve", "--port", str(port)],
                                env=server_env, stdout=fh, stderr=subprocess.STDOUT)
    try:
        wait_for_http(proc, f"http://127.0.0.1:{port}/health", log, timeout=90)
        resp = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", timeout=300, json={
            "model": "muse-instant", "max_tokens": 8, "messages": [{"role": "user", "content": [
                {"type": "text", "text": QUESTION}, {"type": "image_url", "image_url": {"url": url}}]}]})
        assert resp.status_code == 200, resp.text
        assert resp.json()["muse"]["media"]["parts"][0]["via"] == "ocr"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    rows = _spy_rows(spy)
    doors["server"], n = rows[n:], len(rows)

    # 3. the eval harness (the plugin's one-item task with the same picture)
    r = run_muse("eval", "spy-picture", "--out", str(tmp_path / "run"), env=env)
    assert r.returncode == 0, r.stderr
    doors["evals"] = _spy_rows(spy)[n:]

    for door, got in doors.items():
        assert [x["stage"] for x in got] == ["before", "after"], door
        assert got[0]["mode"] == "instant", door
        assert got[0]["media"] == [{"kind": "image", "via": "ocr"}], door  # the same check, the same fallback
        assert "OPEN DAILY" in got[0]["text"].upper(), door  # the OCR'd text is what the mode (and a check) sees
        assert "answer" in got[1], door
    assert len({x[0]["pid"] for x in doors.values()}) == 3  # three processes, three front doors


def test_bad_media_gets_the_same_refusal_from_every_front_door(tmp_path, plugin_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(ms.sign(None, "X")[:40])  # a PNG cut short
    url = "data:image/png;base64," + base64.b64encode(bad.read_bytes()).decode()
    r = run_muse(QUESTION, "--image", str(bad))
    assert r.returncode != 0 and "Traceback" not in r.stderr
    cli_error = r.stderr.strip().splitlines()[-1]
    r = run_muse("eval", "spy-picture", "--out", str(tmp_path / "run"), env={"MUSE_SPY_IMAGE": url})
    assert r.returncode != 0 and "Traceback" not in r.stderr
    eval_error = r.stderr.strip().splitlines()[-1]
    # the same check wrote both (the file's label differs: its name on the CLI, "image 1" in the task)
    assert cli_error.startswith("error: image 1") and eval_error.startswith("error: image 1")
    assert cli_error.split(": ", 2)[-1] == eval_error.split(": ", 2)[-1]


def test_the_documented_schema_is_the_code_s():
    from openmuse.assistant.result import schema

    doc = Path(__file__).parent.parent / "docs" / "result.schema.json"
    assert json.loads(doc.read_text()) == schema(), "run `muse schema --out docs/result.schema.json`"
