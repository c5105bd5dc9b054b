"""Instant mode: one pass, the answer at once, no reasoning."""

from __future__ import annotations

import time
from collections.abc import Sequence

from .. import prompts
from ..assistant.result import Result
from ..engines.base import Engine
from ..types import Message
from .base import Mode, OnEvent, with_system


class InstantMode(Mode):
    name = "instant"
    summary = "answer at once"
    shapes_output = True

    def run(self, engine: Engine, messages: Sequence[Message], on_event: OnEvent | None = None) -> Result:
        t0 = time.perf_counter()
        p = prompts.load("instant")
        msgs = with_system(messages, p["system"])
        if engine.capabilities.native_reasoning and engine.capabilities.assistant_prefill:
            msgs.append(Message(role="assistant", content=p["native"]["prefill"]))
        c = engine.generate_many([self.answer_request(msgs)], on_delta=on_event)[0]
        return Result(
            answer=c.text.strip(),
            reasoning=c.reasoning,
            tool_calls=c.tool_calls,
            logprobs=c.logprobs,
            finish_reason=c.finish_reason,
            usage=c.usage,
            model=c.model,
            mode=self.name,
            timings={**c.timings, "wall_s": time.perf_counter() - t0},
        )
