"""One request's hold on an engine: cancellation, a queue deadline and a cap on its work.

The ``Assistant`` makes one ``RequestControl`` per request and hands the mode ``bound(engine,
control)``: a view of the engine whose every call carries the control, so modes keep seeing
only ``generate_many`` / ``stream`` and never pass it themselves.

- ``cancel()``: the request's sequences stop within one decode step (local engine) or its
  HTTP streams are closed (openai engine); the call raises ``Cancelled``.
- ``queue_timeout_s``: the longest a request may wait for the engine before its first sequence
  starts; past it the call raises ``EngineBusy`` (HTTP 503) instead of waiting on. Once the
  request has started, its later sequences and calls (Contemplating's next wave) wait their turn.
- ``max_work_tokens``: the most tokens (prompt + max_tokens of every sequence, summed over all
  the request's calls) one request may put on the engine; one asking for more raises
  ``RequestTooLarge`` before anything is decoded. None: no cap.

What it does not cover: a call already decoding is not pre-empted for a newer one; fairness
between requests is the scheduler's (``engines/scheduler.py``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import Cancelled, RequestTooLarge

if TYPE_CHECKING:
    from ..types import ChatRequest, Completion, Delta
    from .base import Engine, OnDelta


@dataclass
class RequestControl:
    queue_timeout_s: float | None = None
    max_work_tokens: int | None = None
    label: str = ""  # who asked (a log line; never a secret)
    _cancelled: threading.Event = field(default_factory=threading.Event, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    work_tokens: int = 0  # charged so far (prompt + max_tokens per sequence)
    started: bool = False  # one of its sequences has had a slot (the queue deadline no longer applies)

    def cancel(self) -> None:
        self._cancelled.set()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def check(self) -> None:
        """Raise ``Cancelled`` once the request is cancelled."""
        if self._cancelled.is_set():
            raise Cancelled("the request was cancelled")

    def charge(self, tokens: int) -> None:
        """Count ``tokens`` of work against the cap; ``RequestTooLarge`` past it (nothing charged)."""
        with self._lock:
            if self.max_work_tokens is not None and self.work_tokens + tokens > self.max_work_tokens:
                raise RequestTooLarge(
                    f"this request needs more than its share of the engine: {self.work_tokens + tokens} "
                    f"tokens of prompts and max_tokens, over the cap of {self.max_work_tokens} "
                    "(fewer agents, a smaller budget or max_tokens; the server's --max-request-tokens)")
            self.work_tokens += tokens

    def wait(self, timeout: float) -> bool:
        """Sleep up to ``timeout`` seconds or until cancelled; True when cancelled."""
        return self._cancelled.wait(timeout)


class BoundEngine:
    """An engine seen through one request's control: calls carry it; everything else is the
    engine's own (``model``, ``capabilities``, ``count_prompt``, …)."""

    def __init__(self, engine: Engine, control: RequestControl):
        self.engine = engine
        self.control = control

    def generate_many(self, requests: Sequence[ChatRequest], on_delta: OnDelta | None = None) -> list[Completion]:
        return self.engine.generate_many(requests, on_delta=on_delta, control=self.control)

    def generate(self, request: ChatRequest) -> Completion:
        return self.generate_many([request])[0]

    def stream(self, request: ChatRequest) -> Iterator[Delta | Completion]:
        return self.engine.stream(request, control=self.control)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.engine, name)


def bound(engine: Engine, control: RequestControl | None) -> Engine:
    """``engine`` with ``control`` on every call (the engine itself when there is none)."""
    if control is None:
        return engine
    return BoundEngine(engine, control)  # type: ignore[return-value]
