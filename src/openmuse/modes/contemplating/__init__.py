"""Contemplating mode: N agents reason in parallel, a vote and a synthesizer merge them.

- Agents (``agents.py``): distinct approaches from ``prompts/contemplating.yaml``, greedy; all
  of a wave go to the engine in ONE ``generate_many`` call (one multi-sequence llama.cpp batch
  on the local engine, concurrent requests on HTTP engines).
- Early stop (on by default): agents are launched in waves of two (four past the eighth);
  once the launched agents' answers are settled (``vote.settled``: unanimous and each
  confident, or a confidence-weighted lead the rest could not plausibly overturn), the rest
  are never launched and the synthesizer is not needed. The result reports the tokens saved
  against running all N.
- Aggregation (``vote.py``, ``synthesis.py``): majority vote, confidence-weighted vote (tail
  log-probabilities), and a synthesizer that states the agreement and cannot overrule a clear
  majority. ``aggregator`` picks which decides the final answer; all three are reported.
- Budgets (``modes/budget.py``): every agent's prompt + budget, and with the synthesis
  aggregator the synthesizer's worst-case prompt + its max tokens, are checked against the
  context before the first agent is decoded.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from ...engines.base import Engine
from ...errors import ConfigError
from ...types import Completion, Delta, Message, Usage
from .. import budget as budgets
from ..base import Mode, OnEvent, check_messages
from . import agents as agents_mod
from . import synthesis
from .vote import VoteResult, settled, vote


def waves(n: int, early_stop: bool) -> list[int]:
    """Wave sizes: all at once without early stop; else waves of two agents up to the eighth,
    then waves of four (8 agents: 2, 2, 2, 2; 16: 2, 2, 2, 2, 4, 4)."""
    if not early_stop or n <= 2:
        return [n]
    sizes, launched = [], 0
    while launched < n:
        size = min(2 if launched < 8 else 4, n - launched)
        sizes.append(size)
        launched += size
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
        if s.aggregator == "synthesis" and s.agents > 1:
            self._check_synthesis(engine, question)
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
        elif s.aggregator == "synthesis" and skipped:
            # Early stop fired: the answers are settled, so there is nothing left to merge.
            final = shown.winner
        elif s.aggregator == "synthesis":
            req = synthesis.request(question, traces, shown, s.max_tokens, engine.capabilities.assistant_prefill)
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

        text = self._text(traces, final, shown, synth, note, kind)
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
                    "synthesis_skipped": bool(skipped) and s.aggregator == "synthesis",
                    "prompt_tokens_saved": round(skipped * mean_prompt),
                    "token_saving": round(saved / (saved + agent_tokens), 4) if saved else 0.0,
                },
            },
        )

    def run_agents(
        self, engine: Engine, messages: Sequence[Message], on_event: OnEvent | None = None
    ) -> tuple[list[Completion], int]:
        """Launch the agents wave by wave; returns their traces and how many were never launched."""
        return self.run_agents_many(engine, [messages], on_event)[0]

    def run_agents_many(
        self, engine: Engine, conversations: Sequence[Sequence[Message]], on_event: OnEvent | None = None
    ) -> list[tuple[list[Completion], int]]:
        """The agents of several conversations: each wave of every unsettled conversation goes
        to the engine in one ``generate_many`` call (benchmarks use this to fill the batch).
        ``on_event`` indexes agents within a conversation, so it suits one conversation."""
        s = self.settings
        specs = agents_mod.specs(s.agents, s.seed)
        questions = [next(m.text() for m in reversed(c) if m.role == "user") for c in conversations]
        reqs = [agents_mod.requests(c, specs, s.budget) for c in conversations]
        for conv in reqs:  # every wave's agents must fit before the first wave is decoded
            for spec, req in zip(specs, conv):
                budgets.check(engine, f"Contemplating agent {spec.index + 1}",
                              [("prompt", budgets.prompt_size(engine, req)), ("budget", s.budget)])
        traces: list[list[Completion]] = [[] for _ in conversations]
        skipped = [0 for _ in conversations]
        live = list(range(len(conversations)))
        start = 0
        for w, size in enumerate(waves(s.agents, s.early_stop), start=1):
            idx = list(range(start, start + size))
            jobs = [(q, i) for q in live for i in idx]
            if on_event:
                for _, i in jobs:
                    on_event(Delta(kind="status", text=f"launched {specs[i].approach}", index=i))

            def lane(d: Delta) -> None:
                on_event(Delta(kind="agent", text=d.text, index=jobs[d.index][1]))

            outs = engine.generate_many([reqs[q][i] for q, i in jobs], on_delta=lane if on_event else None)
            for (q, i), c in zip(jobs, outs):
                traces[q].append(agents_mod.agent_result(specs[i], c, questions[q], w))
                if on_event:
                    on_event(Delta(kind="status", text="done", index=i))
            start += size
            remaining = s.agents - start
            if not remaining:
                break
            for q in list(live):
                if settled([t.text or None for t in traces[q]], [t.extra["confidence"] for t in traces[q]],
                           remaining, s.settle_confidence, s.settle_weight):
                    live.remove(q)
                    skipped[q] = remaining
                    if on_event:
                        for i in range(start, s.agents):
                            on_event(Delta(kind="status", text="skipped", index=i))
        return list(zip(traces, skipped))

    def _check_synthesis(self, engine: Engine, question: str) -> None:
        """The synthesizer's worst case must fit before any agent is decoded (``budget.py``):
        its prompt with every agent's answer and summary empty, then per agent the answer at
        ``budget`` tokens twice (its line, the agreement line) and the summary at ``budget``."""
        s = self.settings
        empty = [Completion(extra={"agent": a.index + 1, "approach": a.approach})
                 for a in agents_mod.specs(s.agents, s.seed)]
        req = synthesis.request(question, empty, VoteResult(winner=None, total=s.agents), s.max_tokens,
                                engine.capabilities.assistant_prefill)
        budgets.check(engine, "Contemplating's synthesis", [
            ("prompt without answers", budgets.prompt_size(engine, req)),
            (f"{s.agents} agents' answers and summaries at {s.budget} tokens",
             s.agents * (3 * s.budget + budgets.SLACK)),
            ("synthesis max_tokens", req.max_tokens),
        ])

    @staticmethod
    def _text(traces: list[Completion], final: str | None, shown: VoteResult,
              synth: Completion | None, note: str, kind: str | None = None) -> str:
        """One agent: its own text. Several: the final answer, what the synthesizer added,
        any note on a kept majority, and the agreement."""
        if len(traces) == 1:
            return traces[0].reasoning
        agreement = synthesis.agreement_line(shown)
        # A grid answer (one row or many) starts on its own line and only prose follows it, so
        # the text reads back whole (a grid is read as the last grid of a text).
        grid = kind == "grid"
        if final is None:
            parts = ["No agent gave a usable answer."]
        else:
            parts = [f"Final answer:\n{final}" if grid else f"Final answer: {final}"]
        said = synth.text.strip() if synth is not None else ""
        if said and said not in agreement and said.rstrip(".") != str(final) and not note and not grid:
            parts.append(said)
        if note:
            parts.append(note)
        parts.append(agreement)
        return "\n\n".join(parts)
