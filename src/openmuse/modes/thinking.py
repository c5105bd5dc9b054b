"""Thinking mode: reason first under a token budget, then answer.

Budget forcing, in two phases through the engine contract:

1. *Reasoning*: the assistant turn is prefilled with the reasoning opener (``<think>`` for models
   that reason natively, a short phrase for plain instruct models) and continued for at most
   ``budget`` tokens, stopping early where the model closes its reasoning itself.
2. *Answer*: the reasoning is closed for the model (``</think>`` or "Final answer:") and the
   model continues from there, so an answer always comes and reasoning tokens never exceed the
   budget. On engines that cannot continue an assistant message the answer is asked for in a
   new user turn that quotes the reasoning.

Prompts live in ``prompts/thinking.yaml``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from .. import prompts
from ..engines.base import Engine
from ..types import Completion, Delta, Message, Usage
from .base import Mode, OnEvent, check_messages, with_system


class ThinkingMode(Mode):
    name = "thinking"

    def run(self, engine: Engine, messages: Sequence[Message], on_event: OnEvent | None = None) -> Completion:
        check_messages(messages)
        caps = engine.capabilities
        p = prompts.load("thinking")["native" if caps.native_reasoning else "prompted"]
        budget = self.settings.budget
        t0 = time.perf_counter()
        base = with_system(messages, p["system"])

        def as_reasoning(d: Delta) -> None:
            if on_event:
                on_event(Delta(kind="reasoning", text=d.text, index=d.index))

        # Phase 1: reasoning, at most `budget` tokens.
        opener = p["reasoning_prefix"]
        if caps.assistant_prefill:
            r_msgs = [*base, Message(role="assistant", content=opener)]
        else:
            r_msgs = base
        r_req = self.request(r_msgs, max_tokens=budget, stop=tuple(p["reasoning_stop"]))
        r = engine.generate_many([r_req], on_delta=as_reasoning)[0]
        reasoning = (r.reasoning + r.text) if r.reasoning and r.text else (r.reasoning or r.text)
        t1 = time.perf_counter()

        # Phase 2: close the reasoning and continue into the answer.
        if caps.assistant_prefill:
            closed = opener + reasoning.rstrip() + p["answer_prefix"]
            a_msgs = [*base, Message(role="assistant", content=closed)]
        else:
            turn = p["answer_turn"].format(reasoning=reasoning.strip())
            a_msgs = [*base, Message(role="user", content=turn)]
        a_req = self.request(a_msgs)
        a = engine.generate_many([a_req], on_delta=on_event)[0]
        t2 = time.perf_counter()

        return Completion(
            text=a.text.strip(),
            reasoning=reasoning.strip(),
            finish_reason=a.finish_reason,
            usage=Usage(
                prompt_tokens=r.usage.prompt_tokens,
                completion_tokens=r.usage.completion_tokens + a.usage.completion_tokens,
                reasoning_tokens=r.usage.completion_tokens + a.usage.reasoning_tokens,
            ),
            model=a.model,
            mode=self.name,
            timings={"wall_s": t2 - t0, "reasoning_s": t1 - t0, "answer_s": t2 - t1},
            extra={"budget": budget, "budget_exhausted": r.finish_reason == "length"},
        )
