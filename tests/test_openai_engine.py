"""The openai engine against a real OpenAI-compatible server started by the test
(llama-cpp-python's own server serving the packaged GGUF), plus a scripted reasoning endpoint
for `<think>` / `reasoning_content` separation, and the error for an unreachable endpoint.

What the engine must do is relay the server's answer faithfully, so its text is compared with
the server's own answer to the same request, fetched raw over HTTP. llama-cpp-python's server
reuses the KV cache of the previous prompt's matching prefix, and with the 135M model a cold
prefill and a cached one can answer differently (cold: French nonsense; cached: "Paris", on one
CPU), so each comparison first warms the server with the same prompt: then every request of it
takes the same path. What the model knows is checked on the embedded engine instead.
Run: `.venv/bin/pytest tests/test_openai_engine.py`."""

from __future__ import annotations

import httpx
import pytest

from openmuse.assistant import Assistant
from openmuse.engines import EngineSettings, create_engine
from openmuse.errors import EngineUnavailable
from openmuse.types import ChatRequest, Completion, Delta, Message

from .conftest import SYSTEM, free_port
from .recording_endpoint import RecordingEndpoint

CAPITAL = [SYSTEM, {"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def remote(llama_server):
    # llama-cpp-python's server cannot continue a final assistant message: say so.
    return create_engine(EngineSettings(engine="openai", base_url=llama_server, prefill="no"))


def raw_answer(base_url: str, messages: list, max_tokens: int) -> dict:
    """The server's own answer to a greedy request, without the engine."""
    r = httpx.post(f"{base_url}/chat/completions", timeout=120,
                   json={"model": "smollm2", "messages": messages, "max_tokens": max_tokens, "temperature": 0})
    r.raise_for_status()
    return r.json()


def test_answer(remote, llama_server):
    assert remote.model == "smollm2"
    raw_answer(llama_server, CAPITAL, 32)  # warm: the prompt is now in the server's cache
    c = remote.generate(ChatRequest(messages=CAPITAL, max_tokens=32))
    raw = raw_answer(llama_server, CAPITAL, 32)
    assert c.text.strip() and c.text == raw["choices"][0]["message"]["content"]
    assert c.usage.prompt_tokens == raw["usage"]["prompt_tokens"] > 0
    assert c.usage.completion_tokens == raw["usage"]["completion_tokens"] > 0


def test_streaming_equals_non_streaming(remote):
    req = ChatRequest(messages=CAPITAL, max_tokens=32)
    items = list(remote.stream(req))
    deltas = [i for i in items if isinstance(i, Delta)]
    assert len(deltas) > 2
    assert isinstance(items[-1], Completion)
    assert "".join(d.text for d in deltas) == remote.generate(req).text
    assert items[-1].usage.completion_tokens == len(deltas)


def test_generate_many_is_concurrent_and_ordered(remote):
    # told apart by their lengths: 3 tokens at most, then a full answer of up to 24
    japan = [SYSTEM, {"role": "user", "content": "What is the capital of Japan?"}]
    reqs = [ChatRequest(messages=CAPITAL, max_tokens=3), ChatRequest(messages=japan, max_tokens=24)]
    seen = set()
    out = remote.generate_many(reqs, on_delta=lambda d: seen.add(d.index))
    assert out[0].finish_reason == "length" and 0 < out[0].usage.completion_tokens <= 3
    assert out[1].usage.completion_tokens > 3 and out[1].text.strip()
    assert seen == {0, 1}


def test_modes_over_http(remote, llama_server):
    # Instant adds its system prompt (the same words as SYSTEM) and asks for 512 tokens at most
    raw_answer(llama_server, CAPITAL, 512)  # warm
    c = Assistant(remote).answer([Message(role="user", content="What is the capital of France?")], "instant")
    assert c.mode == "instant" and c.answer.strip()
    assert c.answer == raw_answer(llama_server, CAPITAL, 512)["choices"][0]["message"]["content"].strip()
    t = Assistant(remote).answer([Message(role="user", content="What is the capital of France?")], "thinking",
                                 {"budget": 24, "max_tokens": 48})
    assert t.reasoning and t.answer
    assert t.usage.reasoning_tokens <= 24


@pytest.mark.parametrize("style", ["think-tags", "reasoning_content"])
def test_reasoning_is_separated(style):
    ep = RecordingEndpoint(reasoning="Paris is the capital.", answer="Paris.", style=style)
    try:
        e = create_engine(EngineSettings(engine="openai", base_url=ep.url))
        req = ChatRequest(messages=CAPITAL, max_tokens=32)
        c = e.generate(req)
        assert (c.reasoning, c.text) == ("Paris is the capital.", "Paris.")
        items = list(e.stream(req))
        r = "".join(i.text for i in items if isinstance(i, Delta) and i.kind == "reasoning")
        a = "".join(i.text for i in items if isinstance(i, Delta) and i.kind == "answer")
        assert r.strip() == "Paris is the capital." and a == "Paris."
        usage = items[-1].usage
        if style == "reasoning_content":
            assert usage.reasoning_tokens == 6 and not usage.reasoning_estimated  # as reported
        else:
            assert 0 < usage.reasoning_tokens < usage.completion_tokens and usage.reasoning_estimated
    finally:
        ep.close()


def test_thinking_sends_prefill_the_vllm_way():
    ep = RecordingEndpoint(reasoning="r", answer="Paris.", style="reasoning_content")
    try:
        e = create_engine(EngineSettings(engine="openai", base_url=ep.url, reasoning="native"))
        Assistant(e).answer([Message(role="user", content="Capital of France?")], "thinking", {"budget": 16})
        phase1, phase2 = ep.requests
        assert phase1["max_tokens"] == 16 and phase1["messages"][-1] == {"role": "assistant", "content": "<think>\n"}
        assert phase1["continue_final_message"] is True and phase1["add_generation_prompt"] is False
        assert phase2["messages"][-1]["content"].endswith("</think>\n\n")
    finally:
        ep.close()


def test_unreachable_endpoint():
    e = create_engine(EngineSettings(engine="openai", base_url=f"http://127.0.0.1:{free_port()}/v1", model="m"))
    with pytest.raises(EngineUnavailable, match="cannot reach the engine"):
        e.generate(ChatRequest(messages=CAPITAL, max_tokens=8))


def test_contemplating_over_http(remote):
    c = Assistant(remote).answer([Message(role="user", content="What is 2 + 3?")], "contemplating",
                                 {"agents": 3, "agent_tokens": 32, "early_stop": False, "aggregator": "synthesis"})
    assert len(c.agents) == 3 and all(a.reasoning for a in c.agents)
    assert "Agreement:" in c.answer and c.trace.synthesis is not None
    assert c.usage.completion_tokens >= sum(a.usage.completion_tokens for a in c.agents)
