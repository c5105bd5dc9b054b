"""Contemplating mode: N agents reason in parallel, a vote and a synthesizer merge them.

- Agents (``agents.py``): distinct approaches from ``prompts/contemplating.yaml``, greedy; all
  of a wave go to the engine in ONE ``generate_many`` call (one multi-sequence llama.cpp batch
  on the local engine, concurrent requests on HTTP engines).
- Early stop (on by default): agents are launched in waves; once the launched agents' answers
  are settled (``vote.settled``), the rest are never launched. The result reports the tokens
  saved against running all N.
- Aggregation (``vote.py``, ``synthesis.py``): majority vote, confidence-weighted vote (tail
  log-probabilities), and a synthesizer that states the agreement and cannot overrule a clear
  majority. ``aggregator`` picks which decides the final answer; all three are reported.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

from ...engines.base import Engine
from ...errors import ConfigError
from ...types import Completion, Delta, Message, Usage
from ..base import Mode, OnEvent, check_messages
from . import agents as agents_mod
from . import synthesis
from .vote import VoteResult, settled, vote


def waves(n: int, early_stop: bool) -> list[int]:
    """Wave sizes: all at once without early stop; else about 3/8 of N first (at least 3),
    then half of the rest, then the rest."""
    if not early_stop or n <= 2:
        return [n]
    first = min(n, max(3, math.ceil(n * 3 / 8)))
    sizes, left = [first], n - first
    if left > 2:
        sizes.append(math.ceil(left / 2))
        left -= sizes[-1]
    if left:
        sizes.append(left)
    return sizes


class ContemplatingMode(Mode):
    name = "contemplating"

    def run(self, engine: Engine, messages: Sequence[Message], on_event: OnEvent | None = None) -> Completion:
        check_messages(messages)
        s = self.settings
        if not 1 <= s.agents <= 16:
            raise ConfigError(f"agents must be between 1 and 16, not {s.agents}")
        t0 = time.perf_counter()
        question = next(m.text() for m in reversed(messages) if m.role == "user")
        traces, skipped = self.run_agents(engine, messages, on_event)
        t1 = time.perf_counter()
        answers = [a.text or None for a in traces]
        majority = vote(answers)
        weights = [a.extra["confidence"] for a in traces]
        weighted = vote(answers, weights) if any(w is not None for w in weights) else majority
        shown = weighted  # the vote the synthesizer is told about

        synth: Completion | None = None
        note = ""
        kind = agents_mod.answer_kind(question)
        if len(traces) == 1:
            final = answers[0]
        elif s.aggregator == "synthesis":
            req = synthesis.request(question, traces, shown, s.max_tokens)
            synth = engine.generate_many([req], on_delta=on_event)[0]
            final, note = synthesis.decide(synth.text, question, kind, shown)
        elif s.aggregator == "confidence":
            final = weighted.winner
        else:
            final = majority.winner
        t2 = time.perf_counter()

        usage = sum((a.usage for a in traces), Usage())
        if synth is not None:
            usage = usage + Usage(prompt_tokens=synth.usage.prompt_tokens,
                                  completion_tokens=synth.usage.completion_tokens)
        mean_tokens = sum(a.usage.completion_tokens for a in traces) / max(len(traces), 1)
        mean_prompt = sum(a.usage.prompt_tokens for a in traces) / max(len(traces), 1)
        saved = round(skipped * mean_tokens)
        agent_tokens = sum(a.usage.completion_tokens for a in traces)

        text = self._text(traces, final, shown, synth, note)
        return Completion(
            text=text,
            reasoning="",
            usage=usage,
            model=traces[0].model,
            mode=self.name,
            timings={"wall_s": t2 - t0, "agents_s": t1 - t0, "synthesis_s": t2 - t1},
            agents=traces,
            extra={
                "final_answer": final,
                "aggregator": s.aggregator if len(traces) > 1 else "single",
                "agreement": {
                    "answer": shown.winner, "agents": shown.agreement, "of": shown.total,
                    "counts": shown.counts, "clear_majority": shown.clear_majority,
                    "line": synthesis.agreement_line(shown),
                },
                "votes": {"majority": majority.winner, "confidence": weighted.winner},
                "synthesis": None if synth is None else {"text": synth.text.strip(), "note": note,
                                                         "usage": synth.usage.model_dump()},
                "early_stop": {
                    "enabled": s.early_stop, "requested": s.agents, "launched": len(traces),
                    "skipped": skipped, "tokens_saved": saved,
                    "prompt_tokens_saved": round(skipped * mean_prompt),
                    "token_saving": round(saved / (saved + agent_tokens), 4) if saved else 0.0,
                },
            },
        )

    def run_agents(
        self, engine: Engine, messages: Sequence[Message], on_event: OnEvent | None = None
    ) -> tuple[list[Completion], int]:
        """Launch the agents wave by wave; returns their traces and how many were never launched."""
        s = self.settings
        question = next(m.text() for m in reversed(messages) if m.role == "user")
        specs = agents_mod.specs(s.agents, s.seed)
        reqs = agents_mod.requests(messages, specs, s.budget)
        traces: list[Completion] = []
        start = 0
        for w, size in enumerate(waves(s.agents, s.early_stop), start=1):
            idx = list(range(start, start + size))
            if on_event:
                for i in idx:
                    on_event(Delta(kind="status", text=f"launched {specs[i].approach}", index=i))

            def lane(d: Delta, base: int = start) -> None:
                if on_event:
                    on_event(Delta(kind="agent", text=d.text, index=base + d.index))

            outs = engine.generate_many([reqs[i] for i in idx], on_delta=lane if on_event else None)
            for i, c in zip(idx, outs):
                traces.append(agents_mod.agent_result(specs[i], c, question, w))
                if on_event:
                    on_event(Delta(kind="status", text="done", index=i))
            start += size
            remaining = s.agents - start
            if remaining and settled([t.text or None for t in traces], remaining, s.agree_threshold, 3):
                if on_event:
                    for i in range(start, s.agents):
                        on_event(Delta(kind="status", text="skipped", index=i))
                return traces, remaining
        return traces, 0

    @staticmethod
    def _text(traces: list[Completion], final: str | None, shown: VoteResult,
              synth: Completion | None, note: str) -> str:
        if len(traces) == 1:
            return traces[0].reasoning
        if synth is not None and not note:
            body = synth.text.strip()
        else:
            body = f"{final}" if final is not None else "No agent gave a usable answer."
            if note:
                body += f"\n\n{note}"
        return f"{body}\n\n{synthesis.agreement_line(shown)}"
