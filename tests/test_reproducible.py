"""The local engine's ``reproducible`` setting (``engines/local.py``) on the packaged SmolLM2-135M:
a greedy answer, token log-probabilities included, is the same alone, in a call holding more
sequences than there are slots, beside another caller, and after a cache left full by earlier
calls (so a lone token would take llama.cpp's split-KV attention unless padded). Contemplating's
early stop then launches agents whose answers are exactly those of the same agents run all at
once. Run: `PYTHONPATH=src .venv/bin/pytest -q tests/test_reproducible.py`."""

from __future__ import annotations

import threading

import pytest

from openmuse.engines import EngineSettings
from openmuse.engines.local import LocalEngine
from openmuse.modes.contemplating import ContemplatingMode
from openmuse.modes.contemplating.agents import launch_order
from openmuse.problems import generate
from openmuse.types import ChatRequest, Message

from .conftest import SYSTEM

PROMPTS = ["What is the capital of France?", "Why is the sky blue?", "How do birds fly?", "What is 7 + 8?",
           "Name a famous painter.", "List three prime numbers.", "Describe a cat in two sentences.",
           "What is a black hole?", "Is 91 a prime number?", "What is 12 times 12?"]


def ask(question: str, max_tokens: int = 40, **kw) -> ChatRequest:
    return ChatRequest(messages=[SYSTEM, {"role": "user", "content": question}], max_tokens=max_tokens,
                       logprobs=True, **kw)


@pytest.fixture(scope="module")
def rep():
    """Four slots, so ten prompts need three batches."""
    return LocalEngine.shared(EngineSettings(n_seq_max=4, n_ctx=4096, reproducible=True))


def fill(engine) -> None:
    """Leave about 1,400 cells of finished sequences in the cache: a lone token then sees a KV
    span past 512 cells, where llama.cpp would split its attention across threads."""
    engine.generate_many([ask(f"Tell a long story about {w}.", 320, ignore_eos=True)
                          for w in ("a dragon", "the sea", "a city", "a clock")])


def test_alone_equals_every_batch_shape(rep):
    reqs = [ask(q) for q in PROMPTS]
    rep.clear_cache()
    alone = []
    for r in reqs:  # each alone from an empty cache: short spans, the plain kernel
        rep.clear_cache()
        alone.append(rep.generate(r))
    fill(rep)
    lone_after_fill = [rep.generate(r) for r in reqs[:3]]
    many = rep.generate_many(reqs)  # ten sequences through four slots
    fill(rep)
    halves: list = [None, None]

    def run(k: int) -> None:
        halves[k] = rep.generate_many(reqs[k::2])

    threads = [threading.Thread(target=run, args=(k,)) for k in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    side_by_side = [None] * len(reqs)
    side_by_side[0::2], side_by_side[1::2] = halves[0], halves[1]
    for got in (lone_after_fill, many, side_by_side):
        for a, b in zip(alone, got):
            assert b.text == a.text
            assert b.token_logprobs == a.token_logprobs  # bit for bit, not approximately
    assert rep.stats["max_batch_sequences"] <= 4
    # the pad token's cell is gone after each decode
    assert rep._ll.llama_memory_seq_pos_max(rep._mem, rep._pad_seq) == -1


def test_no_prefix_is_copied(rep):
    rep.clear_cache()
    before = rep.stats["prompt_tokens_prefilled"]
    reqs = [ask(q, 4) for q in PROMPTS[:4]]
    rep.generate_many(reqs)
    rep.generate_many(reqs)  # the same prompts again: prefilled again, nothing taken from the cache
    assert rep.stats["prompt_tokens_prefilled"] - before == 2 * sum(len(rep.prompt_tokens(r)) for r in reqs)


def test_early_stop_launches_exactly_the_agents_of_the_full_run(rep):
    problems = generate(6, seed=29)
    convs = [[Message(role="user", content=p.question)] for p in problems]
    fill(rep)
    full = ContemplatingMode({"agents": 8, "agent_tokens": 48, "early_stop": False}).run_agents_many(rep, convs)
    early = ContemplatingMode({"agents": 8, "agent_tokens": 48, "early_stop": True}).run_agents_many(rep, convs)
    launched = 0
    for e in early:  # launched in the packaged launch order, reported in agent order
        assert [t.agent for t in e.traces] == sorted(t.agent for t in e.traces)
        assert {t.agent - 1 for t in e.traces if t.wave == 1} == set(launch_order(8)[:3])
    for f, e in zip(full, early):
        same_agent = {b.agent: b for b in f.traces}
        for a in e.traces:
            b = same_agent[a.agent]
            assert (a.answer, a.confidence, a.usage.completion_tokens) == (b.answer, b.confidence,
                                                                          b.usage.completion_tokens)
            launched += 1
    assert any(e.skipped for e in early) and launched < 8 * len(problems)  # waves were really cut short
