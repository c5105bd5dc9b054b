"""The local engine's scheduler: one thread owns the llama.cpp context and decodes every
caller's sequences together, one token each per step (continuous batching).

Callers (any thread) hand a *call* (the sequences of one ``generate_many`` or ``stream``) to the
scheduler and read its deltas and completions from the call's own queue; callbacks run in the
caller's thread, never here. Each step the scheduler:

1. drops calls that were cancelled (``RequestControl.cancel``) or abandoned (a closed stream, a
   failed ``on_delta``): their slots are freed and their cells removed (``llama_memory_seq_rm``);
2. admits queued sequences into free slots (``n_seq_max``) while the KV budget allows, round-
   robin: to the waiting call holding the fewest slots, then the one served least recently (a
   1-sequence chat does not queue behind every agent of a 16-sequence call). A new sequence
   copies the longest prefix it shares with any slot (running, or finished and kept as cache),
   or takes over the cached slot (the next chat turn); one that shares more with a prompt still
   being prefilled waits for it, so 8 agents of one prompt prefill it once;
3. fails queued calls past their deadline (``queue_timeout_s``) with ``EngineBusy``, only
   while none of the request's sequences has started (no work thrown away half done);
4. builds one ``llama_batch``: the next token of every decoding sequence, then prompt chunks of
   admitted sequences in the room left (``n_batch``), so prefill shares the decode call;
5. decodes it, samples every sequence with its own sampler, hands out the text, and finishes
   sequences (their slot is kept as cache until it is needed).

KV budget: ``n_ctx`` cells, copied prefixes shared (``sequence.Cells`` mirrors them). A sequence
is admitted only when the cells in use, plus what every running sequence may still add (rest of
prompt, ``max_tokens``), plus its own fit; cached slots are evicted (least recently used) to make
room. Nothing is pre-empted: a running sequence keeps its slot until it finishes or is cancelled.

With the engine's ``reproducible`` setting, step 2 copies no prefix and admits only when no
sequence runs (static batches), so where cells sit never depends on other calls (local.py).

A failed ``llama_decode`` of a mixed batch is retried call by call, so only the call whose tokens
fail gets the error; an error in one call's sampling or text ends that call only. ``close()``
stops the thread; calls still open get ``EngineUnavailable``.
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

from ..errors import Cancelled, ContextOverflow, EngineBusy, EngineUnavailable
from ..types import Delta
from .sequence import Call, Cells, Finished, Item, Slot, common_prefix

if TYPE_CHECKING:
    from .control import RequestControl
    from .local import LocalEngine

POLL_S = 0.5  # how often a waiting caller checks that the scheduler thread is alive


Part = tuple[Slot, list[int], bool]  # slot, tokens to decode, logits for the last one


class Scheduler:
    def __init__(self, engine: LocalEngine):
        self.e = engine
        self.slots = [Slot(i) for i in range(engine.settings.n_seq_max)]
        self.calls: list[Call] = []
        self._inbox: list[Call] = []
        self._jobs: list[Callable[[], None]] = []
        self._cv = threading.Condition()
        self._closing = False
        self.cells = Cells(engine._kv_rm, engine._kv_cp)
        self._orders = itertools.count()
        self._step = 0
        self._thread = threading.Thread(target=self._loop, name="muse-scheduler", daemon=True)
        self._thread.start()

    # -- the callers' side ------------------------------------------------------------------
    def run(self, items: list[Item], control: RequestControl | None) -> Generator[Delta | Finished]:
        """Queue ``items`` as one call; yield its deltas and finished sequences as they come."""
        if not items:
            return
        timeout, now = None if control is None else control.queue_timeout_s, time.perf_counter()
        call = Call(deque(items), control, next(self._orders), now,
                    None if timeout is None else now + timeout, len(items))
        with self._cv:
            if self._closing:
                raise EngineUnavailable("the engine is closed")
            self._inbox.append(call)
            self._cv.notify()
        finished = False
        try:
            left = call.total
            while left:
                try:
                    item = call.out.get(timeout=POLL_S)
                except queue.Empty:
                    if not self._thread.is_alive():
                        raise EngineUnavailable("the engine's scheduler has stopped") from None
                    continue
                if isinstance(item, BaseException):
                    finished = True
                    raise item
                left -= isinstance(item, Finished)
                yield item
            finished = True
        finally:
            if not finished:  # the caller stopped reading: free its slots before returning
                call.abandoned = True
                with self._cv:
                    self._cv.notify()
                while not call.released.wait(POLL_S) and self._thread.is_alive():
                    pass

    def call_soon(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the scheduler thread between two steps and return its result."""
        done = threading.Event()
        box: list[Any] = []

        def job() -> None:
            try:
                box.append(fn())
            except Exception as e:  # noqa: BLE001 - handed to the caller
                box.append(e)
            done.set()

        with self._cv:
            if self._closing:
                raise EngineUnavailable("the engine is closed")
            self._jobs.append(job)
            self._cv.notify()
        while not done.wait(POLL_S):
            if not self._thread.is_alive():
                raise EngineUnavailable("the engine's scheduler has stopped")
        if isinstance(box[0], Exception):
            raise box[0]
        return box[0]

    def clear_cache(self) -> None:
        """Forget every cached slot (running sequences keep theirs)."""
        def job() -> None:
            for s in self.slots:
                if s.seq is None:
                    self.cells.truncate(s, 0)
            if all(s.seq is None for s in self.slots):
                self.e._kv_clear()
                self.cells.forget(self.slots)
        self.call_soon(job)

    def snapshot(self) -> dict[str, int]:
        """Running and queued sequences, cached slots and cells in use, read between steps."""
        return self.call_soon(lambda: {
            "running": sum(s.seq is not None for s in self.slots), "queued": sum(len(c.items) for c in self.calls),
            "cached_slots": sum(s.seq is None and bool(s.tokens) for s in self.slots), "cells_used": self.cells.used})

    def close(self, timeout: float = 30.0) -> bool:
        """Stop the thread (open calls get ``EngineUnavailable``); True once it has stopped."""
        with self._cv:
            self._closing = True
            self._cv.notify_all()
        self._thread.join(timeout)
        return not self._thread.is_alive()

    # -- the loop ---------------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            with self._cv:
                while not (self._inbox or self._jobs or self.calls or self._closing):
                    self._cv.wait()
                self.calls.extend(self._inbox)
                self._inbox.clear()
                jobs, self._jobs = self._jobs, []
                closing = self._closing
            for job in jobs:
                job()
            if closing:
                break
            try:
                if not self._one_step():
                    with self._cv:  # nothing could run (cannot last: see _admit); do not spin
                        self._cv.wait(0.01)
            except Exception as e:  # noqa: BLE001 - a bug: every open call gets it, the cache starts clean
                self._fail_all(e)
        self._fail_all(EngineUnavailable("the engine was closed"))

    def _fail_all(self, error: BaseException) -> None:
        with self._cv:
            self.calls.extend(self._inbox)
            self._inbox.clear()
        for call in list(self.calls):
            self._end(call, error)
        self.e._kv_clear()
        self.cells.forget(self.slots)

    def _one_step(self) -> bool:
        self._reap()
        self._admit()
        self._expire()
        groups = self._batch()
        if not groups:
            return False
        self._step += 1
        st = self.e.stats
        st["decode_steps"] += 1
        st["max_batch_sequences"] = max(st["max_batch_sequences"], sum(len(p) for p in groups.values()))
        st["merged_steps"] += len(groups) > 1
        error = self._decode(list(groups.items()))
        if error is not None and len(groups) == 1:
            self._end(next(iter(groups)), error)
        elif error is not None:  # find whose tokens fail: each call alone
            for call, parts in groups.items():
                if (error := self._decode([(call, parts)])) is not None:
                    self._end(call, error)
        return True

    def _reap(self) -> None:
        for call in list(self.calls):
            if call.abandoned:
                self._end(call, None, cancelled=True)
            elif call.control is not None and call.control.cancelled:
                self._end(call, Cancelled("the request was cancelled"), cancelled=True)

    def _expire(self) -> None:
        now = time.perf_counter()
        for call in list(self.calls):
            started = call.control is not None and call.control.started  # then it waits its turn
            if call.items and not started and call.deadline is not None and now >= call.deadline:
                self.e.stats["queue_timeouts"] += 1
                self._end(call, EngineBusy(
                    f"the engine is busy: {len(call.items)} of this request's {call.total} sequence(s) could not "
                    f"start within its queue timeout of {call.deadline - call.t_submit:g} s; try again later"))

    def _end(self, call: Call, error: BaseException | None, cancelled: bool = False) -> None:
        """Remove ``call``: free its slots and cells, drop its queue, hand the caller ``error``."""
        for s in self.slots:
            if s.call is call and s.seq is not None:
                self.e._free_seq(s.seq)
                self.cells.truncate(s, 0)
                s.seq = s.call = None
                self.e.stats["cancelled_sequences"] += cancelled
        if error is not None and not cancelled:
            self.e.stats["failed_calls"] += 1
        call.items.clear()
        call.held = 0
        if call in self.calls:
            self.calls.remove(call)
        if error is not None:
            call.out.put(error)
        call.released.set()

    # -- admission --------------------------------------------------------------------------
    def _admit(self) -> None:
        if self.e.settings.reproducible and any(s.seq is not None for s in self.slots):
            return  # static batches: freed cells would take running sequences' next tokens
        while any(s.seq is None for s in self.slots):
            waiting = sorted((c for c in self.calls if c.items), key=lambda c: (c.held, c.served, c.order))
            for call in waiting:
                plan = self._plan(call.items[0].prompt)
                if plan is not None:
                    break
            else:
                return
            if not self._start(call, *plan):
                return  # no room in the cache now: admit nothing more (no overtaking)

    def _plan(self, prompt: list[int]) -> tuple[Slot | None, int] | None:
        """(slot to copy from, tokens to copy), or None to wait for a prefix being prefilled."""
        if self.e.settings.reproducible:
            return None, 0  # copied cells sit anywhere in the cache (local.py)
        cap = len(prompt) - 1  # at least one prompt token is decoded, for its logits
        src, best = None, 0
        for s in self.slots:
            n = min(common_prefix(s.tokens, prompt), cap)
            if n > best or (n == best and n and s.seq is None):  # a cached slot can be taken over
                src, best = s, n
        for s in self.slots:
            seq = s.seq
            if seq is not None and len(s.tokens) < len(seq.prompt) and \
                    min(common_prefix(seq.prompt, prompt), cap) > best:
                return None
        return src, best

    def _start(self, call: Call, src: Slot | None, n: int) -> bool:
        item = call.items[0]
        if src is not None and src.seq is None:
            slot = src
            self.cells.truncate(slot, n)
        else:
            free = [s for s in self.slots if s.seq is None]
            slot = min(free, key=lambda s: (bool(s.tokens), s.last_used))
            self.cells.truncate(slot, 0)
        need = len(item.prompt) - n + item.request.max_tokens
        if not self._fits(need, keep=src):
            return False
        if slot is not src and src is not None and n:
            self.cells.copy(src, slot, n)
        call.items.popleft()
        if call.control is not None:
            call.control.started = True
        seq = self.e._start_seq(item.index, item.request, item.prompt, slot.sid)
        seq.t_admit = time.perf_counter()
        slot.seq, slot.call, slot.since = seq, call, next(self._orders)
        call.held, call.served = call.held + 1, slot.since
        return True

    def _fits(self, need: int, keep: Slot | None) -> bool:
        """Whether ``need`` more cells fit, evicting cached slots (least recently used first)."""
        while self.cells.used + self._reserved() + need > self.e.kv_budget:
            cached = [s for s in self.slots if s.seq is None and s.tokens and s is not keep]
            if not cached:
                return False
            self.cells.truncate(min(cached, key=lambda s: s.last_used), 0)
        return True

    def _reserved(self) -> int:
        """Cells the running sequences may still add: the rest of the prompt and max_tokens."""
        return sum(max(0, len(s.seq.prompt) - len(s.tokens)) + s.seq.request.max_tokens - len(s.seq.generated)
                   for s in self.slots if s.seq is not None)

    # -- one step ---------------------------------------------------------------------------
    def _batch(self) -> dict[Call, list[Part]]:
        """The next token of every decoding sequence, then prompt chunks in the room left."""
        groups: dict[Call, list[Part]] = {}
        room = self.e.n_batch
        running = [s for s in self.slots if s.seq is not None and s.call is not None]
        for s in running:
            if s.seq.next_token is not None:
                groups.setdefault(s.call, []).append((s, [s.seq.next_token], True))
                room -= 1
        for s in sorted(running, key=lambda s: s.since):
            if s.seq.next_token is None and room > 0:
                start = len(s.tokens)
                chunk = s.seq.prompt[start:start + room]
                groups.setdefault(s.call, []).append((s, chunk, start + len(chunk) == len(s.seq.prompt)))
                room -= len(chunk)
        return groups

    def _decode(self, groups: list[tuple[Call, list[Part]]]) -> Exception | None:
        """One llama_decode of ``groups``, then sampling; the error when it cannot be decoded."""
        entries: list[tuple[int, int, int, bool]] = []
        rows: list[tuple[Call, Slot, int]] = []
        for call, parts in groups:
            for slot, toks, logits in parts:
                base = len(slot.tokens)
                for k, t in enumerate(toks):
                    last = logits and k == len(toks) - 1
                    if last:
                        rows.append((call, slot, len(entries)))
                    entries.append((t, base + k, slot.sid, last))
        rc = self.e._decode(entries)
        if rc != 0:
            for _, parts in groups:  # leave nothing of this batch in the cache
                for slot, _, _ in parts:
                    self.e._kv_rm(slot.sid, len(slot.tokens))
            return ContextOverflow(f"llama.cpp could not decode the batch (code {rc}); lower max_tokens")
        for _, parts in groups:
            for slot, toks, _ in parts:
                if slot.seq is not None and slot.seq.next_token is None:
                    slot.seq.prefilled += len(toks)
                    self.e.stats["prompt_tokens_prefilled"] += len(toks)
                self.cells.append(slot, toks)
                slot.last_used = self._step
        for call, slot, row in rows:
            self._sample(call, slot, row)
        return None

    def _sample(self, call: Call, slot: Slot, row: int) -> None:
        seq = slot.seq
        if seq is None or slot.call is not call:  # its call ended earlier in this step
            return
        try:
            deltas = list(self.e._accept(seq, row))
        except Exception as e:  # noqa: BLE001 - this call's failure only
            self._end(call, e)
            return
        now = time.perf_counter()
        if seq.t_first is None:
            seq.t_first = now
        for d in deltas:
            call.out.put(d)
        if seq.finish is None:
            return
        self.e._free_seq(seq)
        slot.seq = slot.call = None  # its tokens stay as cache
        call.held, call.done = call.held - 1, call.done + 1
        call.out.put(Finished(seq.index, seq.completion(
            self.e.model, now - seq.t_admit, seq.t_first - seq.t_admit, seq.t_admit - call.t_submit)))
        if call.done == call.total:
            self.e.stats["batches"] += 1
            self.e.stats["sequences"] += call.total
            self.calls.remove(call)
            call.released.set()
