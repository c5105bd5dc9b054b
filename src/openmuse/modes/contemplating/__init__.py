"""Contemplating mode: N agents reason in parallel, a vote and a synthesizer merge them.

- Agents (``agents.py``): distinct approaches from ``prompts/contemplating.yaml``, greedy; all
  of a wave go to the engine in ONE ``generate_many`` call (one multi-sequence llama.cpp batch
  on the local engine, concurrent requests on HTTP engines).
- Early stop (on by default): agents are launched in waves of 3, 2, 1, 1, 1 (four past the
  eighth), in the packaged early-stop order (``agents.launch_order``: the same agents, the
  dearest and least agreeing last); once the launched agents' answers are settled
  (``vote.settled``: at least three, unanimous, or a confidence-weighted lead the rest could not
  plausibly overturn), the rest are never launched and the synthesizer is not needed. The result
  reports the tokens saved against running all N.
- Stages, each callable on its own (benchmarks use them): ``run_agents`` / ``run_agents_many``
  (the waves, with early stop) and ``merge`` (votes, synthesis, the typed trace).
- Aggregation (``vote.py``, ``synthesis.py``): majority vote, confidence-weighted vote (tail
  log-probabilities), and a synthesizer that states the agreement and cannot overrule a clear
  majority. ``aggregator`` picks which decides the final answer; all three are reported.
- Budgets (``modes/budget.py``): every agent's prompt + ``agent_tokens``, and with the synthesis
  aggregator the synthesizer's worst-case prompt + its max tokens, are checked against the
  context before the first agent is decoded.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import Field

from ...assistant.result import (AgentTrace, Agreement, ContemplationTrace, EarlyStop, Result, Synthesis)
from ...engines.base import Engine
from ...types import Delta, Message, Usage
from .. import budget as budgets
from ..base import Mode, ModeOptions, OnEvent, last_question
from . import agents as agents_mod
from . import synthesis
from .vote import SETTLE_AGREE, SETTLE_CONFIDENCE, SETTLE_WEIGHT, VoteResult, settled, vote


class ContemplatingOptions(ModeOptions):
    agents: int = Field(default=4, ge=1, le=16, description="Number of agents (1-16).")
    agent_tokens: int = Field(default=256, ge=1,
                              description="Most tokens each agent writes (its reasoning and its answer).")
    early_stop: bool = Field(default=True, description="Stop launching agents once their answers are settled.")
    # The confidence-weighted vote measured best on the embedded model (docs/bench);
    # "synthesis" lets the synthesizer write the final answer.
    aggregator: Literal["synthesis", "confidence", "majority"] = Field(
        default="confidence", description="What decides the final answer.")
    # Early stop (vote.settled): how many agreeing agents settle it, each agent's least confidence
    # then, and the weight each remaining agent is assumed to carry against a lead. Tuned on
    # seeds 11, 29, 31 with the wave plan and launch order (bench/early_stop.py; docs/bench/early-stop-*).
    settle_agree: int = Field(default=SETTLE_AGREE, ge=2, le=16,
                              description="Early stop: agreeing agents (all launched) that settle the answer.")
    settle_confidence: float = Field(default=SETTLE_CONFIDENCE, ge=0.0, le=1.0,
                                     description="Early stop: least confidence of each agent in a unanimous wave.")
    settle_weight: float = Field(default=SETTLE_WEIGHT, gt=0.0, le=1.0,
                                 description="Early stop: weight each remaining agent could add against a lead.")


@dataclass
class AgentsRun:
    """The agents of one conversation: their traces (agent 1 first, whatever order early stop
    launched them in; each trace's ``wave`` says when) and how many were skipped."""

    traces: list[AgentTrace]
    skipped: int = 0


WAVE_HEAD = (3, 2, 1, 1, 1)  # waves up to the eighth agent, tuned with the rule (seeds 11, 29, 31)


def waves(n: int, early_stop: bool) -> list[int]:
    """Wave sizes: all at once without early stop; else 3, 2, 1, 1, 1 up to the eighth agent
    (unanimity can settle from three agents; no more sequential decode steps than the 3, 3, 1, 1
    it replaced, on the tuning seeds), then waves of four (16 agents: 3, 2, 1, 1, 1, 4, 4)."""
    if not early_stop or n <= 3:
        return [n]
    sizes, launched = [], 0
    for size in (*WAVE_HEAD, *[4] * n):
        if launched >= n:
            break
        sizes.append(min(size, n - launched))
        launched += sizes[-1]
    return sizes


def confidence_vote(traces: Sequence[AgentTrace]) -> VoteResult:
    """The confidence-weighted vote (the plain vote where no agent has a confidence)."""
    answers = [a.answer for a in traces]
    weights = [a.confidence for a in traces]
    return vote(answers, weights) if any(w is not None for w in weights) else vote(answers)


class ContemplatingMode(Mode):
    name = "contemplating"
    summary = "several agents reason in parallel, then a vote and a synthesizer merge them"
    Options = ContemplatingOptions
    options: ContemplatingOptions

    def run(self, engine: Engine, messages: Sequence[Message], on_event: OnEvent | None = None) -> Result:
        o = self.options
        t0 = time.perf_counter()
        question = last_question(messages)
        if o.aggregator == "synthesis" and o.agents > 1:
            self._check_synthesis(engine, question)
        run = self.run_agents(engine, messages, on_event)
        t1 = time.perf_counter()
        answer, trace, synth_usage = self.merge(engine, question, run, on_event)
        t2 = time.perf_counter()
        usage = sum((a.usage for a in run.traces), Usage())
        if synth_usage is not None:
            usage = usage + synth_usage.model_copy(update={"reasoning_tokens": 0})
        return Result(
            answer=answer, usage=usage, model=engine.model, mode=self.name, trace=trace,
            timings={"wall_s": t2 - t0, "agents_s": t1 - t0, "synthesis_s": t2 - t1},
        )

    def merge(self, engine: Engine | None, question: str, run: AgentsRun,
              on_event: OnEvent | None = None) -> tuple[str, ContemplationTrace, Usage | None]:
        """Votes, the synthesis (with that aggregator, unless early stop settled the answers;
        ``engine`` may be None otherwise) and the typed trace: (answer text, trace, synthesis usage)."""
        o, traces = self.options, run.traces
        answers = [a.answer for a in traces]
        majority, weighted = vote(answers), confidence_vote(traces)
        kind = agents_mod.answer_kind(question)
        synth_text, note, synth_usage = None, "", None
        if len(traces) == 1:
            final = answers[0]
        elif o.aggregator == "synthesis" and not run.skipped:
            assert engine is not None, "the synthesis aggregator needs the engine"
            req = synthesis.request(question, traces, weighted, o.max_tokens, engine.capabilities.assistant_prefill)
            c = engine.generate_many([req], on_delta=on_event)[0]
            synth_text, synth_usage = c.text.strip(), c.usage
            final, note = synthesis.decide(c.text, question, kind, weighted)
        else:  # early stop settled the answers: nothing is left to synthesize
            final = majority.winner if o.aggregator == "majority" else weighted.winner
        trace = ContemplationTrace(
            final_answer=final, aggregator=o.aggregator if len(traces) > 1 else "single",
            agreement=Agreement(answer=weighted.winner, agents=weighted.agreement, of=weighted.total,
                                counts=weighted.counts, clear_majority=weighted.clear_majority,
                                line=synthesis.agreement_line(weighted)),
            votes={"majority": majority.winner, "confidence": weighted.winner},
            synthesis=None if synth_text is None else Synthesis(text=synth_text, note=note, usage=synth_usage),
            early_stop=self._early_stop(run), agents=traces,
        )
        return self._text(traces, final, weighted, synth_text or "", note, kind), trace, synth_usage

    def _early_stop(self, run: AgentsRun) -> EarlyStop:
        o, traces, skipped = self.options, run.traces, run.skipped
        n = max(len(traces), 1)
        spent = sum(a.usage.completion_tokens for a in traces)
        saved = round(skipped * spent / n)
        return EarlyStop(
            enabled=o.early_stop, requested=o.agents, launched=len(traces), skipped=skipped, tokens_saved=saved,
            prompt_tokens_saved=round(skipped * sum(a.usage.prompt_tokens for a in traces) / n),
            token_saving=round(saved / (saved + spent), 4) if saved else 0.0,
            synthesis_skipped=bool(skipped) and o.aggregator == "synthesis",
        )

    def run_agents(self, engine: Engine, messages: Sequence[Message], on_event: OnEvent | None = None) -> AgentsRun:
        """Launch the agents wave by wave until they are settled (or all have run)."""
        return self.run_agents_many(engine, [messages], on_event)[0]

    def run_agents_many(self, engine: Engine, conversations: Sequence[Sequence[Message]],
                        on_event: OnEvent | None = None) -> list[AgentsRun]:
        """The agents of several conversations: each wave of every unsettled conversation goes
        to the engine in one ``generate_many`` call (benchmarks use this to fill the batch).
        ``on_event`` indexes agents within a conversation, so it suits one conversation."""
        o = self.options
        specs = agents_mod.specs(o.agents, o.seed)
        questions = [last_question(c) for c in conversations]
        reqs = [agents_mod.requests(c, specs, o.agent_tokens) for c in conversations]
        for conv in reqs:  # every wave's agents must fit before the first wave is decoded
            for spec, req in zip(specs, conv):
                budgets.check(engine, f"Contemplating agent {spec.index + 1}",
                              [("prompt", budgets.prompt_size(engine, req)), ("agent_tokens", o.agent_tokens)])
        runs = [AgentsRun(traces=[]) for _ in conversations]
        live, start = list(range(len(conversations))), 0
        order = agents_mod.launch_order(o.agents) if o.early_stop else list(range(o.agents))
        emit = on_event or (lambda _d: None)
        for w, size in enumerate(waves(o.agents, o.early_stop), start=1):
            jobs = [(q, i) for q in live for i in order[start:start + size]]
            for _, i in jobs:
                emit(Delta(kind="status", text=f"launched {specs[i].approach}", index=i))

            def lane(d: Delta, jobs: list[tuple[int, int]] = jobs) -> None:
                emit(Delta(kind="agent", text=d.text, index=jobs[d.index][1]))

            outs = engine.generate_many([reqs[q][i] for q, i in jobs], on_delta=lane if on_event else None)
            for (q, i), c in zip(jobs, outs):
                runs[q].traces.append(agents_mod.agent_result(specs[i], c, questions[q], w))
                emit(Delta(kind="status", text="done", index=i))
            start += size
            if start >= o.agents:
                break
            for q in list(live):
                tr = runs[q].traces
                if settled([t.answer for t in tr], [t.confidence for t in tr], o.agents - start,
                           o.settle_confidence, o.settle_weight, min_agree=o.settle_agree):
                    live.remove(q)
                    runs[q].skipped = o.agents - start
                    for i in order[start:]:
                        emit(Delta(kind="status", text="skipped", index=i))
        for run in runs:
            run.traces.sort(key=lambda t: t.agent)
        return runs

    def _check_synthesis(self, engine: Engine, question: str) -> None:
        """The synthesizer's worst case must fit before any agent is decoded (``budget.py``):
        its prompt with every agent's answer and summary empty, then per agent the answer at
        ``agent_tokens`` tokens twice (its line, the agreement line) and the summary at
        ``agent_tokens``."""
        o = self.options
        empty = [AgentTrace(agent=a.index + 1, approach=a.approach, wave=1) for a in agents_mod.specs(o.agents, o.seed)]
        req = synthesis.request(question, empty, VoteResult(winner=None, total=o.agents), o.max_tokens,
                                engine.capabilities.assistant_prefill)
        budgets.check(engine, "Contemplating's synthesis", [
            ("prompt without answers", budgets.prompt_size(engine, req)),
            (f"{o.agents} agents' answers and summaries at {o.agent_tokens} tokens",
             o.agents * (3 * o.agent_tokens + budgets.SLACK)),
            ("synthesis max_tokens", req.max_tokens),
        ])

    @staticmethod
    def _text(traces: list[AgentTrace], final: str | None, shown: VoteResult,
              said: str, note: str, kind: str | None = None) -> str:
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
        if said and said not in agreement and said.rstrip(".") != str(final) and not note and not grid:
            parts.append(said)
        if note:
            parts.append(note)
        parts.append(agreement)
        return "\n\n".join(parts)
