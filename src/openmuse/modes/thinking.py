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

A model trained by ``muse train compress`` ends its reasoning with its answer (the reward read
it there), and its GGUF says so (``Capabilities.answers_in_reasoning``). For it, phase 1 runs
without the reasoning stops, and when the model closes its turn within the budget the answer is
read from what it wrote: after "Final answer:" if it wrote one, else its concluding line
(``conclusion``). Forcing a separate answer phase on it cost 20 points on held-out problems
(README, Thought compression). When the budget runs out, phase 2 runs as for any model. Only
the local engine reads the flag: the same model behind an HTTP engine gets the answer phase.

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
        # see the module's docstring; a shaped answer (tools, JSON, logprobs) keeps the answer phase
        own = (caps.answers_in_reasoning and caps.assistant_prefill and not caps.native_reasoning
               and self.output.format == "text"
               and not self.output.tools and not self.answer_fields.get("logprobs"))
        stops = () if own else tuple(p["reasoning_stop"])
        r_req = self.request(r_msgs, max_tokens=budget, stop=stops, **self.context_fields())
        self._check_budget(engine, base, p)
        r = engine.generate_many([r_req], on_delta=as_reasoning)[0]
        reasoning = (r.reasoning + r.text) if r.reasoning and r.text else (r.reasoning or r.text)
        t1 = time.perf_counter()
        if own and r.finish_reason != "length" and reasoning.strip():
            return self._own_answer(r, reasoning, opener, p, budget, t0, t1, on_event)

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

    def _own_answer(self, r, reasoning: str, opener: str, p: dict, budget: int, t0: float, t1: float,
                    on_event: OnEvent | None) -> Result:
        """The answer of a model that answers inside its reasoning (no answer phase): the text
        after a reasoning stop ("Final answer:") if it wrote one, else the concluding line, read
        with the opener so that it is a sentence ("The question asks for …, which is 13.")."""
        cut = min(((reasoning.find(s), s) for s in p["reasoning_stop"] if s in reasoning), default=None)
        if cut:
            reasoning, answer = reasoning[:cut[0]], reasoning[cut[0] + len(cut[1]):].strip()
        else:
            answer = ""
        answer = answer or conclusion(opener + reasoning)
        if on_event and answer:
            on_event(Delta(kind="answer", text=answer))
        n = r.usage.completion_tokens
        return Result(
            answer=answer, reasoning=reasoning.strip(), finish_reason="stop",
            usage=Usage(prompt_tokens=r.usage.prompt_tokens, completion_tokens=n, reasoning_tokens=n,
                        prefilled_tokens=r.usage.prefilled_tokens, cached_tokens=r.usage.cached_tokens),
            model=r.model, mode=self.name, timings={"wall_s": t1 - t0, "reasoning_s": t1 - t0, "answer_s": 0.0},
            trace=ThinkingTrace(budget=budget, budget_exhausted=False, reasoning_tokens=n, answer_from_reasoning=True),
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
