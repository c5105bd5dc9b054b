"""The local engine's scheduler (``engines/scheduler.py``) on the packaged SmolLM2-135M-Instruct.

What is checked, with real callers on threads and the engine's counters (``engine.stats``,
``engine.scheduler.snapshot()``): concurrent calls decode in one batch (continuous batching); a
cancelled or closed stream frees its slot within one decode step and the other callers' greedy
text is unchanged; a call queued past its ``queue_timeout_s`` gets ``EngineBusy`` while one without
a deadline waits; free slots go round-robin across waiting calls; the work cap
(``RequestTooLarge``); a chat turn reuses the previous turn's cache; a failed decode or a failing
``on_delta`` ends only its own call; ``close()`` ends open calls with ``EngineUnavailable``.
Timing only enters as generous waits. Run:
`PYTHONPATH=src .venv/bin/pytest -q tests/test_scheduler.py`."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from openmuse.engines import EngineSettings
from openmuse.engines.control import RequestControl
from openmuse.engines.local import LocalEngine
from openmuse.errors import Cancelled, ContextOverflow, EngineBusy, EngineUnavailable, RequestTooLarge
from openmuse.types import ChatRequest, Delta

from .conftest import SYSTEM

QUESTIONS = ["What is the capital of France?", "Why is the sky blue?", "How do birds fly?",
             "Name a famous painter.", "What is 7 + 8?", "List three prime numbers.",
             "Describe a cat in two sentences.", "What is a black hole?"]
# Greedy text of one generate_many call from an empty cache is reproducible, and for these prompts
# it equalled each prompt alone in every measurement. Where calls run concurrently, the batch
# shapes and where each sequence's cells sit depend on timing, which can turn a close greedy
# choice (engines/local.py); those tests use CLEAR: continuations whose every token has a
# probability over 0.65 alone, so float-order noise cannot flip them.
STABLE = ["What is the capital of France?", "List three prime numbers.", "What is 7 + 8?",
          "Write a short story about a lighthouse keeper named Ada."]
CLEAR = [
    ChatRequest(messages=[SYSTEM, {"role": "user", "content": "Count from 1 to 20."},
                          {"role": "assistant", "content": "1, 2, 3,"}], max_tokens=24, logprobs=True),
    ChatRequest(messages=[SYSTEM, {"role": "user", "content": "What is the capital of France?"},
                          {"role": "assistant", "content": "The capital of France is"}], max_tokens=8,
                logprobs=True),
]


def ask(question: str, max_tokens: int = 24, **kw) -> ChatRequest:
    return ChatRequest(messages=[SYSTEM, {"role": "user", "content": question}], max_tokens=max_tokens, **kw)


def long_request(max_tokens: int = 400) -> ChatRequest:
    return ask("Write a long story about a dragon.", max_tokens, ignore_eos=True)


def delta(engine, key: str, before: dict) -> int:
    return engine.stats[key] - before[key]


def wait_until(check, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "the engine did not get there in time"
        time.sleep(0.01)


@pytest.fixture(scope="module")
def two_slots():
    """An engine of two sequence slots, to fill them with a few requests."""
    return LocalEngine.shared(EngineSettings(n_seq_max=2, n_ctx=2048))


def test_concurrent_callers_decode_in_one_batch(engine):
    before = dict(engine.stats)
    engine.stats["max_batch_sequences"] = 0  # a high-water mark: measure this test's own
    first = engine.stream(long_request())
    next(first)  # it is decoding: the callers below join its batch
    barrier = threading.Barrier(len(QUESTIONS))

    def one(q: str):
        barrier.wait()
        return engine.generate(ask(q, 24, ignore_eos=True))

    with ThreadPoolExecutor(len(QUESTIONS)) as pool:
        out = list(pool.map(one, QUESTIONS))
    first.close()
    assert all(c.usage.completion_tokens == 24 for c in out)
    assert engine.stats["max_batch_sequences"] >= 8
    assert delta(engine, "merged_steps", before) > 0
    assert delta(engine, "batches", before) == len(QUESTIONS)  # the closed stream is not served
    # every caller shares the system prompt: most of each prompt was copied, not prefilled
    assert sum(c.usage.cached_tokens for c in out) > sum(c.usage.prefilled_tokens for c in out)


def test_cancelled_stream_leaves_the_others_unchanged(engine):
    others = CLEAR
    alone = []
    for r in others:
        engine.clear_cache()
        c = engine.generate(r)
        assert min(c.token_logprobs) > -0.43  # clear choices only (see CLEAR)
        alone.append(c.text)
    engine.clear_cache()
    before = dict(engine.stats)
    control = RequestControl()
    started = [threading.Event() for _ in others]

    def victim() -> int:
        seen = 0
        with pytest.raises(Cancelled):
            for _ in engine.stream(long_request(), control=control):
                seen += 1
                if seen == 3:
                    assert all(e.wait(60) for e in started)
                    control.cancel()
        return seen

    def other(k: int) -> str:
        return engine.generate_many([others[k]], on_delta=lambda d: started[k].set())[0].text

    with ThreadPoolExecutor(3) as pool:
        v = pool.submit(victim)
        texts = [pool.submit(other, k) for k in range(len(others))]
        assert v.result() >= 3
        assert [t.result() for t in texts] == alone
    assert delta(engine, "cancelled_sequences", before) == 1
    assert delta(engine, "merged_steps", before) > 0


def test_cancel_frees_the_slot_within_one_step(engine):
    before = dict(engine.stats)
    control = RequestControl()
    items = engine.stream(long_request(), control=control)
    for _ in range(3):
        assert isinstance(next(items), Delta)
    control.cancel()
    steps = engine.stats["decode_steps"]
    with pytest.raises(Cancelled):
        for _ in items:
            pass
    assert engine.stats["decode_steps"] - steps <= 1
    assert engine.scheduler.snapshot()["running"] == 0
    assert delta(engine, "cancelled_sequences", before) == 1


def test_closed_stream_or_failing_callback_frees_the_slot(engine):
    before = dict(engine.stats)
    items = engine.stream(long_request())
    next(items), next(items)
    items.close()  # the consumer stops: the generator is closed
    assert engine.scheduler.snapshot()["running"] == 0

    def boom(d: Delta) -> None:
        raise ValueError("a caller's bug")

    with pytest.raises(ValueError, match="caller's bug"):
        engine.generate_many([long_request(), long_request()], on_delta=boom)
    assert engine.scheduler.snapshot()["running"] == 0
    assert delta(engine, "cancelled_sequences", before) == 3
    assert "Paris" in engine.generate(ask(QUESTIONS[0])).text  # the engine goes on


def test_a_started_request_is_not_timed_out_for_its_next_call(two_slots):
    """Contemplating's next wave waits its turn: the deadline covers a request's first start only."""
    e = two_slots
    control = RequestControl(queue_timeout_s=0.3)
    assert e.generate(ask(QUESTIONS[0], 4), control=control).text  # the request's first call ran
    holders = [e.stream(ask(f"Write a long story number {i}.", 800, ignore_eos=True)) for i in range(2)]
    for h in holders:
        next(h)
    with ThreadPoolExecutor(1) as pool:
        later = pool.submit(e.generate, ask(QUESTIONS[0], 8), control)
        wait_until(lambda: e.scheduler.snapshot()["queued"] == 1)
        time.sleep(0.6)  # past its deadline, still queued
        assert not later.done()
        holders[0].close()
        assert "Paris" in later.result(timeout=120).text
    holders[1].close()


def test_queue_deadline_raises_engine_busy(two_slots):
    e = two_slots
    holders = [e.stream(ask(f"Write a long story number {i}.", 800, ignore_eos=True)) for i in range(2)]
    for h in holders:
        next(h)  # both slots are taken
    before = dict(e.stats)
    with pytest.raises(EngineBusy, match=r"could not start within its queue timeout of 0\.3 s"):
        e.generate(ask(QUESTIONS[0], 8), control=RequestControl(queue_timeout_s=0.3))
    assert delta(e, "queue_timeouts", before) == 1
    assert e.scheduler.snapshot()["queued"] == 0  # its sequence left the queue
    # without a deadline, a call waits for a slot
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(e.generate, ask(QUESTIONS[0], 8))
        wait_until(lambda: e.scheduler.snapshot()["queued"] == 1)
        holders[0].close()
        assert "Paris" in waiting.result(timeout=120).text
    holders[1].close()
    snap = e.scheduler.snapshot()
    assert snap["running"] == snap["queued"] == 0


def test_free_slots_go_round_robin_across_calls(two_slots):
    e = two_slots
    holder = e.stream(ask("Write a long story.", 800, ignore_eos=True))
    next(holder)  # one slot left
    finished: list[str] = []
    many = [ask(q, 48, ignore_eos=True) for q in QUESTIONS[:4]]

    def run(name: str, fn, *args):
        fn(*args)
        finished.append(name)

    with ThreadPoolExecutor(2) as pool:
        a = pool.submit(run, "four", e.generate_many, many)
        wait_until(lambda: e.scheduler.snapshot()["queued"] == 3)
        b = pool.submit(run, "one", e.generate, ask(QUESTIONS[1], 8, ignore_eos=True))
        a.result(), b.result()
    holder.close()
    assert finished == ["one", "four"]  # not behind all four sequences of the earlier call


def test_greedy_alone_equals_merged_batch(engine):
    alone = []
    for r in CLEAR:
        engine.clear_cache()
        alone.append(engine.generate(r))
    engine.clear_cache()
    before = dict(engine.stats)
    other = engine.stream(long_request())
    next(other)
    merged = engine.generate_many(CLEAR)  # decodes in the same steps as another call's sequence
    other.close()
    assert delta(engine, "merged_steps", before) > 0
    assert [c.text for c in merged] == [c.text for c in alone]
    for m, a in zip(merged, alone):
        assert m.token_logprobs == pytest.approx(a.token_logprobs, abs=0.2)
    # one call from an empty cache: the same batches every run
    reqs = [ask(q, 32) for q in STABLE]
    single = []
    for r in reqs:
        engine.clear_cache()
        single.append(engine.generate(r).text)
    engine.clear_cache()
    assert [c.text for c in engine.generate_many(reqs)] == single


def test_work_cap_raises_request_too_large(engine):
    control = RequestControl(max_work_tokens=200)
    before = dict(engine.stats)
    with pytest.raises(RequestTooLarge, match="over the cap of 200"):
        engine.generate(ask(QUESTIONS[0], 300), control=control)
    assert engine.stats == before and control.work_tokens == 0  # refused before queueing
    engine.generate(ask(QUESTIONS[0], 16), control=control)  # fits: charged
    with pytest.raises(RequestTooLarge):
        engine.generate_many([ask(QUESTIONS[0], 64)] * 4, control=control)  # the sum does not


def test_a_chat_turn_reuses_the_previous_turn(engine):
    engine.clear_cache()
    first = engine.generate(ask(QUESTIONS[0], 32))
    turn = ChatRequest(messages=[SYSTEM, {"role": "user", "content": QUESTIONS[0]},
                                 {"role": "assistant", "content": first.text},
                                 {"role": "user", "content": "And of Italy?"}], max_tokens=16)
    second = engine.generate(turn)
    assert second.usage.cached_tokens >= first.usage.prompt_tokens
    assert second.usage.prefilled_tokens < 20


class _FailingLlama:
    """llama_cpp with llama_decode failing any batch that holds ``poison``: a decode error."""

    def __init__(self, real, poison: int):
        self._real, self._poison = real, poison

    def __getattr__(self, name: str):
        return getattr(self._real, name)

    def llama_decode(self, ctx, batch):
        if any(batch.token[j] == self._poison for j in range(batch.n_tokens)):
            return -1
        return self._real.llama_decode(ctx, batch)


def test_a_failed_decode_ends_only_its_call(engine, monkeypatch):
    poisoned = ask("Tell me about Zanzibar.", 8)
    story = engine.prompt_tokens(long_request())
    poison = next(t for t in engine.prompt_tokens(poisoned) if t not in story)
    before = dict(engine.stats)
    other = engine.stream(long_request(60))
    next(other)
    monkeypatch.setattr(engine, "_ll", _FailingLlama(engine._ll, poison))
    with pytest.raises(ContextOverflow, match="could not decode"):
        engine.generate(poisoned)
    monkeypatch.undo()
    assert delta(engine, "failed_calls", before) == 1
    rest = list(other)  # the other call went on to its end
    assert rest[-1].usage.completion_tokens == 60


def test_close_ends_open_calls():
    e = LocalEngine(EngineSettings(n_seq_max=2, n_ctx=1024, n_threads=1))  # its own, not shared
    items = e.stream(long_request(600))
    next(items)
    e.close()
    with pytest.raises(EngineUnavailable, match="closed"):
        for _ in items:
            pass
    with pytest.raises(EngineUnavailable):
        e.generate(ask(QUESTIONS[0]))
