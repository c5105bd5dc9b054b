"""The openai engine against a real OpenAI-compatible server started by the test
(llama-cpp-python's own server serving the packaged GGUF), plus a scripted reasoning endpoint
for `<think>` / `reasoning_content` separation, and the error for an unreachable endpoint.
Run: `.venv/bin/pytest tests/test_openai_engine.py`."""

from __future__ import annotations

import pytest

from openmuse.engines import EngineSettings, create_engine
from openmuse.errors import EngineUnavailable
from openmuse.modes import ModeSettings, create_mode
from openmuse.types import ChatRequest, Completion, Delta, Message

from .conftest import SYSTEM, free_port
from .recording_endpoint import RecordingEndpoint

CAPITAL = [SYSTEM, {"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def remote(llama_server):
    # llama-cpp-python's server cannot continue a final assistant message: say so.
    return create_engine(EngineSettings(engine="openai", base_url=llama_server, prefill="no"))


def test_answer(remote):
    assert remote.model == "smollm2"
    c = remote.generate(ChatRequest(messages=CAPITAL, max_tokens=32))
    assert "Paris" in c.text
    assert c.usage.prompt_tokens > 0 and c.usage.completion_tokens > 0


def test_streaming_equals_non_streaming(remote):
    req = ChatRequest(messages=CAPITAL, max_tokens=32)
    items = list(remote.stream(req))
    deltas = [i for i in items if isinstance(i, Delta)]
    assert len(deltas) > 2
    assert isinstance(items[-1], Completion)
    assert "".join(d.text for d in deltas) == remote.generate(req).text
    assert items[-1].usage.completion_tokens == len(deltas)


def test_generate_many_is_concurrent_and_ordered(remote):
    reqs = [ChatRequest(messages=CAPITAL, max_tokens=16),
            ChatRequest(messages=[SYSTEM, {"role": "user", "content": "What is the capital of Japan?"}], max_tokens=16)]
    seen = set()
    out = remote.generate_many(reqs, on_delta=lambda d: seen.add(d.index))
    assert "Paris" in out[0].text and "Tokyo" in out[1].text
    assert seen == {0, 1}


def test_modes_over_http(remote):
    c = create_mode("instant").run(remote, [Message(role="user", content="What is the capital of France?")])
    assert "Paris" in c.text
    t = create_mode("thinking", ModeSettings(budget=24, max_tokens=48)).run(
        remote, [Message(role="user", content="What is the capital of France?")])
    assert t.reasoning and t.text
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
        usage, extra = items[-1].usage, items[-1].extra
        if style == "reasoning_content":
            assert usage.reasoning_tokens == 6 and "reasoning_tokens_estimated" not in extra  # as reported
        else:
            assert 0 < usage.reasoning_tokens < usage.completion_tokens and extra["reasoning_tokens_estimated"]
    finally:
        ep.close()


def test_thinking_sends_prefill_the_vllm_way():
    ep = RecordingEndpoint(reasoning="r", answer="Paris.", style="reasoning_content")
    try:
        e = create_engine(EngineSettings(engine="openai", base_url=ep.url, reasoning="native"))
        create_mode("thinking", ModeSettings(budget=16)).run(e, [Message(role="user", content="Capital of France?")])
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
    c = create_mode("contemplating", ModeSettings(agents=3, budget=32, early_stop=False, aggregator="synthesis")).run(
        remote, [Message(role="user", content="What is 2 + 3?")])
    assert len(c.agents) == 3 and all(a.reasoning for a in c.agents)
    assert "Agreement:" in c.text and c.extra["synthesis"] is not None
    assert c.usage.completion_tokens >= sum(a.usage.completion_tokens for a in c.agents)
