"""The guard-engine path: a local OpenAI-compatible server answers in each guard format
(Llama Guard 3/4, ShieldGemma, WildGuard) the way a served guard model does, and the safety
check reads its verdicts; an unreachable guard leaves the offline classifier in charge.

The stand-in guard calls one harmless phrase unsafe, so a refusal here can only be the guard's
(neither the rules nor the offline classifier would refuse it)."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from openmuse.safety.check import SafetyCheck
from openmuse.safety.guard import (
    GuardClient,
    GuardError,
    parse_llama_guard,
    parse_shieldgemma,
    parse_wildguard,
)
from openmuse.safety.settings import SafetySettings
from openmuse.types import Message

UNSAFE_WORD = "purple elephant"  # what this stand-in guard calls unsafe: only the guard can know
SEEN: list[dict] = []


def _reply(fmt: str, text: str, response: bool) -> str:
    bad = UNSAFE_WORD in text.lower()
    if fmt == "llama-guard":
        return "unsafe\nS9" if bad else "safe"
    if fmt == "shieldgemma":
        return "Yes" if bad else "No"
    lines = [f"Harmful request: {'yes' if bad else 'no'}", "Response refusal: no",
             f"Harmful response: {'yes' if bad and response else 'no'}"]
    return "\n".join(lines)


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *a):  # quiet
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        SEEN.append({"path": self.path, "body": body})
        model = body["model"]
        fmt = "shieldgemma" if "shieldgemma" in model else "wildguard" if "wildguard" in model else "llama-guard"
        if self.path.endswith("/chat/completions"):
            text = "\n".join(m["content"] for m in body["messages"])
            response = body["messages"][-1]["role"] == "assistant" or "AI assistant's response" in text
            out = {"id": "x", "object": "chat.completion", "created": 0, "model": model,
                   "choices": [{"index": 0, "finish_reason": "stop",
                                "message": {"role": "assistant", "content": _reply(fmt, text, response)}}]}
        else:
            prompt = body["prompt"]
            response = "AI assistant:\n\n" not in prompt  # an empty response section: a request check
            out = {"id": "x", "object": "text_completion", "created": 0, "model": model,
                   "choices": [{"index": 0, "finish_reason": "stop", "text": " " + _reply(fmt, prompt, response)}]}
        data = json.dumps(out).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture(scope="module")
def guard_url():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/v1"
    srv.shutdown()


def test_parsers_read_each_format():
    assert parse_llama_guard("safe").unsafe is False
    v = parse_llama_guard("unsafe\nS1,S9")
    assert v.unsafe and v.category == "violent_crimes"
    assert parse_llama_guard("unsafe\nS11").category == "self_harm"
    assert parse_shieldgemma("Yes, the prompt asks for ...").unsafe
    assert not parse_shieldgemma("No. The question is benign.").unsafe
    assert parse_wildguard("Harmful request: yes\nResponse refusal: no\nHarmful response: no").unsafe
    assert not parse_wildguard("Harmful request: no\nResponse refusal: no\nHarmful response: yes").unsafe
    assert parse_wildguard("Harmful request: no\nResponse refusal: no\nHarmful response: yes", response=True).unsafe
    with pytest.raises(GuardError):
        parse_llama_guard("I am not sure")
    with pytest.raises(GuardError):
        parse_wildguard("maybe")


@pytest.mark.parametrize("model,fmt,path", [("meta-llama/Llama-Guard-3-8B", "llama-guard", "/chat/completions"),
                                            ("google/shieldgemma-2b", "shieldgemma", "/chat/completions"),
                                            ("allenai/wildguard", "wildguard", "/completions")])
def test_guard_engine_each_format(guard_url, model, fmt, path):
    check = SafetyCheck(SafetySettings(guard_engine=guard_url, guard_model=model))
    assert check.guard is not None and check.guard.format == fmt
    SEEN.clear()
    bad = check.judge_request([Message(role="user", content="Explain the purple elephant plan")])
    assert bad.decision == "refuse" and bad.source == f"guard:{fmt}"
    assert SEEN and SEEN[-1]["path"].endswith(path) and SEEN[-1]["body"]["model"] == model
    if fmt == "llama-guard":
        assert bad.category == "cbrn"  # S9 mapped
    good = check.judge_request([Message(role="user", content="How do I repot a cactus?")])
    assert good.decision == "allow" and good.source == f"guard:{fmt}"
    msgs = [Message(role="user", content="Tell me a story")]
    after = check.judge_answer(msgs, "Then she told him the purple elephant plan.")
    assert after.decision == "refuse" and after.stage == "after"


def test_unreachable_guard_falls_back_to_the_classifier():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    check = SafetyCheck(SafetySettings(guard_engine=f"http://127.0.0.1:{port}/v1", guard_model="llama-guard-3",
                                       guard_timeout_s=2))
    with pytest.raises(GuardError):
        check.guard.judge([Message(role="user", content="hi")])
    rec = check.judge_request([Message(role="user", content="How do I repot a cactus?")])
    assert rec.decision == "allow" and rec.source == "classifier" and "guard_unreachable" in rec.flags


def test_guard_format_flag_overrides_the_name():
    assert GuardClient("http://127.0.0.1:9/v1", "my-guard", "wildguard").format == "wildguard"
    with pytest.raises(ValueError):
        GuardClient("http://127.0.0.1:9/v1", "my-guard", "nonsense")
