"""One sequence of the local engine's batch: its prompt, its text as it is decoded, stop
strings, reasoning split, and the ``Completion`` it becomes. Nothing here calls llama.cpp; the
scheduler (``scheduler.py``) places it in a slot of the KV cache, the engine (``local.py``)
samples its tokens and hands them to ``Seq.take``. ``Slot`` and ``Cells`` mirror what each
llama.cpp sequence id holds in the KV cache; ``Call`` is one caller's sequences in the scheduler."""

from __future__ import annotations

import codecs
import itertools
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ContextOverflow
from ..functions import prompt as fn_prompt
from ..functions.spec import Output
from ..types import ChatRequest, Completion, Delta, TokenLogprob, ToolCall, Usage
from .reasoning import ThinkSplitter

if TYPE_CHECKING:
    from .control import RequestControl


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def stop_hold(text: str, stops: Sequence[str]) -> int:
    """How many tail characters might still start a stop string (so must not be shown yet)."""
    hold = 0
    for s in stops:
        for n in range(min(len(s) - 1, len(text)), 0, -1):
            if s.startswith(text[-n:]):
                hold = max(hold, n)
                break
    return hold


def token_logprob(row: Any, tok: int, k: int, piece: Callable[[int], bytes]) -> TokenLogprob:
    """``tok`` with its log-probability and the ``k`` likeliest tokens of the same step, from
    the step's logits ``row`` (the model's own distribution, before temperature or a grammar
    narrowed it); ``piece`` gives a token's bytes."""
    row = np.asarray(row, dtype=np.float64)
    m = row.max()
    lp = row - m - np.log(np.exp(row - m).sum())

    def text(t: int) -> str:
        return piece(t).decode("utf-8", "replace")

    top = []
    if k:
        best = np.argpartition(-lp, k)[:k]
        top = [(text(int(t)), float(lp[t])) for t in best[np.argsort(-lp[best])]]
    return TokenLogprob(token=text(tok), logprob=float(lp[tok]), bytes=list(piece(tok)), top=top)


def check_fits(request: ChatRequest, prompt: Sequence[int], n_ctx: int) -> None:
    """``ContextOverflow`` when one sequence (its prompt and ``max_tokens``) cannot fit the cache."""
    if len(prompt) + request.max_tokens > n_ctx:
        raise ContextOverflow(f"prompt of {len(prompt)} tokens + max_tokens {request.max_tokens} exceeds "
                              f"the context of {n_ctx} tokens")


@dataclass(eq=False)
class Item:
    """One sequence of a call, before it has a slot."""

    index: int
    request: ChatRequest
    prompt: list[int]


@dataclass
class Finished:
    """A sequence's ``Completion`` and its position in the call."""

    index: int
    completion: Completion


@dataclass
class Seq:
    index: int
    seq_id: int
    request: ChatRequest
    prompt: list[int]
    sampler: int  # llama_sampler pointer
    splitter: ThinkSplitter | None
    out: Output | None = None  # the answer's shape when it may hold function calls
    generated: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    tops: list[TokenLogprob] = field(default_factory=list)  # with top_logprobs / logprobs asked
    calls: list[ToolCall] = field(default_factory=list)
    reasoning_tokens: int = 0
    prefilled: int = 0  # prompt tokens computed for this sequence (the rest were copied or cached)
    text: str = ""
    shown: int = 0  # characters of ``text`` already handed out
    finish: str | None = None
    next_token: int | None = None  # the last sampled token, decoded at the next step
    t_admit: float = 0.0  # when the sequence got its slot (time.perf_counter)
    t_first: float | None = None  # when its first token was sampled
    decoder: codecs.IncrementalDecoder = field(
        default_factory=lambda: codecs.getincrementaldecoder("utf-8")(errors="replace")
    )

    def take(self, tok: int, piece: bytes) -> Iterator[Delta]:
        """Add a sampled (non end-of-generation) token and hand out the text now safe to show."""
        r = self.request
        self.generated.append(tok)
        if self.splitter is not None and self.splitter.in_reasoning:
            self.reasoning_tokens += 1
        self.text += self.decoder.decode(piece)
        if r.stop:
            start = max(0, self.shown - max(len(x) for x in r.stop))
            cut = min((p for p in (self.text.find(x, start) for x in r.stop) if p >= 0), default=-1)
            if cut >= 0:
                self.text = self.text[:cut]
                self.finish = "stop"
        if self.finish is None and self.out is not None and self.text.rstrip().endswith(fn_prompt.CLOSE) \
                and fn_prompt.repeats(self.text, self.out):
            self.finish = "stop"  # a call made again: a small model would repeat it to the block limit
        if self.finish is None and len(self.generated) >= r.max_tokens:
            self.finish = "length"
        self.next_token = tok
        yield from self.flush(final=self.finish is not None)

    def flush(self, final: bool) -> Iterator[Delta]:
        if final:
            self.text += self.decoder.decode(b"", final=True)
            upto = len(self.text)
        else:
            upto = len(self.text) - stop_hold(self.text, self.request.stop)
        if self.out is not None and self.out.calls:
            if not final and self.shown == 0 and fn_prompt.hold(self.text, self.out):
                return  # it is, or may become, a function call: nothing is shown as text
            if final:
                rest, self.calls = fn_prompt.parse(self.text, self.out)
                if self.calls:
                    self.text = rest if self.shown == 0 else self.text
                    upto = len(self.text)
        if upto <= self.shown:
            return
        piece, self.shown = self.text[self.shown:upto], upto
        if self.splitter is not None:
            yield from self.splitter.feed(piece)
            if final:
                yield from self.splitter.close()
        else:
            yield Delta(kind="answer", text=piece, index=self.index)

    def completion(self, model: str, wall: float, prompt_s: float, queue_s: float = 0.0) -> Completion:
        if self.splitter is not None:
            reasoning, answer = self.splitter.reasoning.strip(), self.splitter.answer
        else:
            reasoning, answer = "", self.text
        if self.calls and self.shown and self.splitter is None:
            answer = fn_prompt.parse(answer, self.out)[0] if self.out else answer
        return Completion(
            text=answer,
            reasoning=reasoning,
            finish_reason="tool_calls" if self.calls else (self.finish or "stop"),
            usage=Usage(prompt_tokens=len(self.prompt), completion_tokens=len(self.generated),
                        reasoning_tokens=self.reasoning_tokens, prefilled_tokens=self.prefilled,
                        cached_tokens=len(self.prompt) - self.prefilled),
            model=model,
            timings={"wall_s": wall, "prompt_s": prompt_s, "decode_s": wall - prompt_s, "queue_s": queue_s},
            token_logprobs=self.logprobs if self.request.logprobs else None,
            logprobs=self.tops if self.request.logprobs else None,
            tool_calls=self.calls,
        )


@dataclass(eq=False)
class Slot:
    """A llama.cpp sequence id: the tokens it holds in the KV cache, the running ``Seq`` (None
    while the slot is free: its tokens are then kept as cache) and the call that owns it."""

    sid: int
    tokens: list[int] = field(default_factory=list)
    cells: list[int] = field(default_factory=list)  # one id per token (see ``Cells``)
    seq: Seq | None = None
    call: Any = None
    since: int = 0  # admission order of its sequence (prefill goes oldest first)
    last_used: int = 0  # step it was last decoded in (eviction order of cached slots)


class Cells:
    """The unified KV cache's cells as llama.cpp keeps them: a token decoded into a slot takes a
    new cell; a prefix copied to another slot (``llama_memory_seq_cp``) shares the source's cells;
    a cell is free once no slot holds it. ``used`` is what the cache holds, shared cells once."""

    def __init__(self, remove: Callable[[int, int], None], copy: Callable[[int, int, int], None]):
        self._remove, self._copy = remove, copy  # llama.cpp: (seq_id, from pos), (src, dst, n)
        self._refs: dict[int, int] = {}
        self._ids = itertools.count()

    @property
    def used(self) -> int:
        return len(self._refs)

    def truncate(self, slot: Slot, n: int) -> None:
        """Keep only the first ``n`` tokens of ``slot``."""
        if len(slot.tokens) <= n:
            return
        self._remove(slot.sid, n)
        for c in slot.cells[n:]:
            if self._refs[c] > 1:
                self._refs[c] -= 1
            else:
                del self._refs[c]
        del slot.tokens[n:], slot.cells[n:]

    def copy(self, src: Slot, dst: Slot, n: int) -> None:
        """Give the empty ``dst`` the first ``n`` tokens of ``src``, sharing their cells."""
        self._copy(src.sid, dst.sid, n)
        dst.tokens[:] = src.tokens[:n]
        dst.cells[:] = src.cells[:n]
        for c in dst.cells:
            self._refs[c] += 1

    def append(self, slot: Slot, tokens: Sequence[int]) -> None:
        for t in tokens:
            c = next(self._ids)
            self._refs[c] = 1
            slot.tokens.append(t)
            slot.cells.append(c)

    def forget(self, slots: Sequence[Slot]) -> None:
        """After the whole cache was cleared: no slot holds anything."""
        for s in slots:
            s.tokens.clear()
            s.cells.clear()
        self._refs.clear()


@dataclass(eq=False)
class Call:
    """The sequences of one ``generate_many`` or ``stream`` call, as the scheduler serves them."""

    items: deque[Item]
    control: RequestControl | None
    order: int
    t_submit: float
    deadline: float | None  # time.perf_counter() by which the request's first item must have a slot
    total: int
    held: int = 0  # slots its sequences hold now
    served: int = -1  # admission order of its latest sequence (round-robin)
    done: int = 0
    out: queue.SimpleQueue = field(default_factory=queue.SimpleQueue)
    released: threading.Event = field(default_factory=threading.Event)
    abandoned: bool = False  # the caller stopped reading
