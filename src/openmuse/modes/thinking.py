"""Thinking mode: reason first under a token budget, then answer.

Budget forcing, in two phases through the engine contract:

1. *Reasoning*: the assistant turn is prefilled with the reasoning opener (``<think>`` for models
   that reason natively, a short phrase for plain instruct models) and continued for at most
   ``budget`` tokens, stopping early where the model closes its reasoning itself.
2. *Answer*: the reasoning is closed for the model (``</think>`` or "Final answer:") and the
   model continues from there, so an answer always comes and reasoning tokens never exceed the
   budget. On engines that cannot continue an assistant message the answer is asked for in a
   new user turn that quotes the reasoning.

Both phases are checked against the context before the first is decoded (``budget.py``): the
prompt with the answer prefix + ``budget`` + ``max_tokens`` must fit.

Prompts live in ``prompts/thinking.yaml``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from pydantic import Field

from .. import prompts
from ..assistant.result import Result, ThinkingTrace
from ..engines.base import Engine
from ..types import Delta, Message, Usage
from . import budget as budgets
from .base import Mode, ModeOptions, OnEvent, with_system


class ThinkingOptions(ModeOptions):
    budget: int = Field(default=256, ge=1, description="Thinking budget: most reasoning tokens before the answer.")


class ThinkingMode(Mode):
    name = "thinking"
    summary = "reason first, under a token budget, then answer"
    Options = ThinkingOptions
    shapes_output = True

    def run(self, engine: Engine, messages: Sequence[Message], on_event: OnEvent | None = None) -> Result:
        caps = engine.capabilities
        p = prompts.load("thinking")["native" if caps.native_reasoning else "prompted"]
        budget = self.options.budget
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
        r_req = self.request(r_msgs, max_tokens=budget, stop=tuple(p["reasoning_stop"]), **self.context_fields())
        self._check_budget(engine, base, p)
        r = engine.generate_many([r_req], on_delta=as_reasoning)[0]
        reasoning = (r.reasoning + r.text) if r.reasoning and r.text else (r.reasoning or r.text)
        t1 = time.perf_counter()

        # Phase 2: close the reasoning and continue into the answer.
        a_req = self.answer_request(self._answer_messages(base, reasoning, p, caps.assistant_prefill))
        a = engine.generate_many([a_req], on_delta=on_event)[0]
        t2 = time.perf_counter()
        answer, from_reasoning = a.text.strip(), False
        if not answer and not a.tool_calls and self.output.format == "text":
            # the model closed the turn at once (it had stated its answer while reasoning):
            # that statement is the answer, so that an answer always comes
            answer, from_reasoning = conclusion(reasoning), True
            if on_event and answer:
                on_event(Delta(kind="answer", text=answer))

        reasoning_tokens = r.usage.completion_tokens + a.usage.reasoning_tokens
        return Result(
            answer=answer,
            reasoning=reasoning.strip(),
            tool_calls=a.tool_calls,
            logprobs=a.logprobs,
            finish_reason=a.finish_reason,
            usage=Usage(
                prompt_tokens=r.usage.prompt_tokens,
                completion_tokens=r.usage.completion_tokens + a.usage.completion_tokens,
                reasoning_tokens=reasoning_tokens,
                prefilled_tokens=r.usage.prefilled_tokens + a.usage.prefilled_tokens,
                cached_tokens=r.usage.cached_tokens,
            ),
            model=a.model,
            mode=self.name,
            timings={"wall_s": t2 - t0, "reasoning_s": t1 - t0, "answer_s": t2 - t1},
            trace=ThinkingTrace(budget=budget, budget_exhausted=r.finish_reason == "length",
                                reasoning_tokens=reasoning_tokens, answer_from_reasoning=from_reasoning),
        )

    @staticmethod
    def _answer_messages(base: list[Message], reasoning: str, p: dict, prefill: bool) -> list[Message]:
        """Phase 2's conversation: the reasoning closed for the model (or quoted in a new turn)."""
        if prefill:
            closed = p["reasoning_prefix"] + reasoning.rstrip() + p["answer_prefix"]
            return [*base, Message(role="assistant", content=closed)]
        return [*base, Message(role="user", content=p["answer_turn"].format(reasoning=reasoning.strip()))]

    def _check_budget(self, engine: Engine, base: list[Message], p: dict) -> None:
        """Both phases must fit before the first is decoded (``budget.check``): the answer
        phase's prompt holds the reasoning prompt's text, at most ``budget`` reasoning tokens
        and the closing/answer prefix."""
        empty = self.request(self._answer_messages(base, "", p, engine.capabilities.assistant_prefill))
        budgets.check(engine, "Thinking", [
            ("prompt with the answer prefix", budgets.prompt_size(engine, empty)),
            ("reasoning budget", self.options.budget),
            ("answer max_tokens", self.options.max_tokens),
        ])


def conclusion(reasoning: str) -> str:
    """The sentence of ``reasoning`` that states its answer: the last line naming "answer" (or
    "so"/"therefore"), else its last line."""
    lines = [ln.strip() for ln in reasoning.strip().splitlines() if ln.strip()]
    for ln in reversed(lines):
        low = ln.lower()
        if "answer" in low or low.startswith(("so ", "therefore", "thus")):
            return ln
    return lines[-1] if lines else ""
