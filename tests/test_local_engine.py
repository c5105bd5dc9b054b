"""The embedded llama.cpp engine on the packaged SmolLM2-135M-Instruct, greedy unless stated.

What is checked: answers, streaming = non-streaming, one multi-sequence batch for
`generate_many` (equal to `generate` under greedy decoding, per-request sampling and seeds
honoured inside the batch), token counts against the tokenizer, stop strings, limits.
Run: `.venv/bin/pytest tests/test_local_engine.py`."""

from __future__ import annotations

import pytest

from openmuse.engines import EngineSettings, create_engine
from openmuse.errors import ContextOverflow, ModelNotFound
from openmuse.types import ChatRequest, Completion, Delta

from .conftest import SYSTEM

CAPITAL = [SYSTEM, {"role": "user", "content": "What is the capital of France?"}]
POEM = [SYSTEM, {"role": "user", "content": "Write a short poem about the sea."}]


def test_capital_of_france(engine):
    c = engine.generate(ChatRequest(messages=CAPITAL, max_tokens=32))
    assert "Paris" in c.text
    assert c.finish_reason == "stop"
    assert c.timings["wall_s"] > 0


def test_model_loaded_once_per_process(engine):
    assert create_engine(EngineSettings()) is engine


def test_stream_equals_generate(engine):
    req = ChatRequest(messages=POEM, max_tokens=48)
    engine.clear_cache()  # earlier tests' cached slots would change where the prefix sits (README)
    whole = engine.generate(req)
    items = list(engine.stream(req))
    deltas = [i for i in items if isinstance(i, Delta)]
    assert len(deltas) > 5  # it really streamed, piece by piece
    assert isinstance(items[-1], Completion)
    assert "".join(d.text for d in deltas) == whole.text == items[-1].text
    counts = lambda u: (u.prompt_tokens, u.completion_tokens, u.reasoning_tokens)  # noqa: E731
    assert counts(items[-1].usage) == counts(whole.usage)
    assert items[-1].usage.cached_tokens > 0  # the second call found the prompt in the cache


def test_generate_many_greedy_equals_generate(engine):
    # Both start from an empty KV cache: a prompt prefilled in other chunks (prefix reuse) gives
    # slightly different numbers, which can turn a greedy choice on this creative prompt.
    req = ChatRequest(messages=POEM, max_tokens=40)
    engine.clear_cache()
    single = engine.generate(req)
    engine.clear_cache()
    many = engine.generate_many([req] * 8)
    assert [c.text for c in many] == [single.text] * 8
    # One batch: the shared prompt was prefilled once, not once per request.
    prompt_len = single.usage.prompt_tokens
    prefilled = sum(c.usage.prefilled_tokens for c in many)
    assert prompt_len <= prefilled < 2 * prompt_len


def test_generate_many_sampling_seeds_differ_and_repeat(engine):
    reqs = [ChatRequest(messages=POEM, max_tokens=24, temperature=0.9, seed=s) for s in range(4)]
    first = [c.text for c in engine.generate_many(reqs)]
    assert len(set(first)) == 4
    assert [c.text for c in engine.generate_many(reqs)] == first  # seeds make it repeatable


def test_per_request_sampling_inside_one_batch(engine):
    greedy = ChatRequest(messages=POEM, max_tokens=24)
    hot = ChatRequest(messages=POEM, max_tokens=24, temperature=0.9, top_p=0.95, seed=7)
    other = ChatRequest(messages=CAPITAL, max_tokens=16)
    engine.clear_cache()
    batch = engine.generate_many([greedy, hot, other])
    engine.clear_cache()
    assert batch[0].text == engine.generate(greedy).text
    engine.clear_cache()
    assert batch[1].text == engine.generate(hot).text
    assert batch[1].text != batch[0].text
    assert "Paris" in batch[2].text


def test_on_delta_sees_every_sequence(engine):
    seen: dict[int, str] = {}
    reqs = [ChatRequest(messages=CAPITAL, max_tokens=16), ChatRequest(messages=POEM, max_tokens=16)]
    out = engine.generate_many(reqs, on_delta=lambda d: seen.__setitem__(d.index, seen.get(d.index, "") + d.text))
    assert seen == {0: out[0].text, 1: out[1].text}


def test_token_counts_match_tokenizer(engine):
    req = ChatRequest(messages=POEM, max_tokens=40)
    c = engine.generate(req)
    assert c.usage.prompt_tokens == len(engine.tokenize(engine.render(req)))
    assert c.usage.completion_tokens == engine.count_tokens(c.text) == 40
    assert c.finish_reason == "length"
    assert c.usage.reasoning_tokens == 0


def test_stop_strings_cut_the_text(engine):
    c = engine.generate(ChatRequest(messages=CAPITAL, max_tokens=32, stop=["Paris"]))
    assert "Paris" not in c.text and c.text.startswith("The capital")
    assert c.finish_reason == "stop"


def test_logprobs_are_log_probabilities(engine):
    c = engine.generate(ChatRequest(messages=CAPITAL, max_tokens=8, logprobs=True))
    assert c.token_logprobs is not None and len(c.token_logprobs) == c.usage.completion_tokens
    assert all(lp <= 0.0 for lp in c.token_logprobs)


def test_prefill_is_continued(engine):
    msgs = [*CAPITAL, {"role": "assistant", "content": "The capital of France is"}]
    c = engine.generate(ChatRequest(messages=msgs, max_tokens=8))
    assert c.text.strip().startswith("Paris")


def test_context_overflow_is_a_clear_error(engine):
    with pytest.raises(ContextOverflow, match="exceeds the context"):
        engine.generate(ChatRequest(messages=CAPITAL, max_tokens=100_000))
    # the engine still works afterwards
    assert "Paris" in engine.generate(ChatRequest(messages=CAPITAL, max_tokens=16)).text


def test_missing_and_corrupt_model_files(tmp_path):
    with pytest.raises(ModelNotFound, match="not found"):
        create_engine(EngineSettings(model=str(tmp_path / "nope.gguf")))
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"this is not a gguf file" * 10)
    with pytest.raises(ModelNotFound, match="not a valid GGUF"):
        create_engine(EngineSettings(model=str(bad)))
