"""One sequence of the local engine's batch: its tokens, its text as it is decoded, stop
strings, reasoning split, and the ``Completion`` it becomes. Nothing here calls llama.cpp; the
engine (``local.py``) samples tokens and hands them to ``Seq.take``."""

from __future__ import annotations

import codecs
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from ..errors import ContextOverflow
from ..types import ChatRequest, Completion, Delta, Usage
from .reasoning import ThinkSplitter


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


def plan_waves(requests: Sequence[ChatRequest], prompts: Sequence[list[int]], n_ctx: int,
               n_seq_max: int) -> list[list[int]]:
    """Request indices in groups that fit the sequence slots and the shared KV cache."""
    waves: list[list[int]] = [[]]
    used = 0
    for i, (r, p) in enumerate(zip(requests, prompts)):
        need = len(p) + r.max_tokens
        if need > n_ctx:
            raise ContextOverflow(
                f"prompt of {len(p)} tokens + max_tokens {r.max_tokens} exceeds the context of {n_ctx} tokens")
        shared = common_prefix(prompts[waves[-1][0]], p) if waves[-1] else 0
        extra = need - shared
        if waves[-1] and (len(waves[-1]) >= n_seq_max or used + extra > n_ctx):
            waves.append([])
            used, extra = 0, need
        waves[-1].append(i)
        used += extra
    return waves


@dataclass
class Seq:
    index: int
    seq_id: int
    request: ChatRequest
    prompt: list[int]
    sampler: int  # llama_sampler pointer
    splitter: ThinkSplitter | None
    kv: list[int] = field(default_factory=list)  # tokens held in the KV cache for this seq
    generated: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    reasoning_tokens: int = 0
    prefilled: int = 0  # prompt tokens computed for this sequence (the rest were copied or cached)
    text: str = ""
    shown: int = 0  # characters of ``text`` already handed out
    finish: str | None = None
    next_token: int | None = None
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
        if upto <= self.shown:
            return
        piece, self.shown = self.text[self.shown:upto], upto
        if self.splitter is not None:
            yield from self.splitter.feed(piece)
            if final:
                yield from self.splitter.close()
        else:
            yield Delta(kind="answer", text=piece, index=self.index)

    def completion(self, model: str, wall: float, prompt_s: float) -> Completion:
        if self.splitter is not None:
            reasoning, answer = self.splitter.reasoning.strip(), self.splitter.answer
        else:
            reasoning, answer = "", self.text
        return Completion(
            text=answer,
            reasoning=reasoning,
            finish_reason=self.finish or "stop",
            usage=Usage(prompt_tokens=len(self.prompt), completion_tokens=len(self.generated),
                        reasoning_tokens=self.reasoning_tokens, prefilled_tokens=self.prefilled,
                        cached_tokens=len(self.prompt) - self.prefilled),
            model=model,
            timings={"wall_s": wall, "prompt_s": prompt_s, "decode_s": wall - prompt_s},
            token_logprobs=self.logprobs if self.request.logprobs else None,
        )
