"""Votes over the agents' normalised answers: plain majority and confidence-weighted.

Confidence is DeepConf's tail confidence: the mean token log-probability over the last
``TAIL`` tokens of a trace, turned into a weight with ``exp`` (a trace whose ending the model
was sure of weighs near 1; a hesitant one near 0). Ties go to the larger total weight, then to
the earliest agent (agent 1 decodes greedily with the leading approach).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

TAIL = 16


def tail_confidence(logprobs: Sequence[float] | None, tail: int = TAIL) -> float | None:
    if not logprobs:
        return None
    t = list(logprobs)[-tail:]
    return math.exp(sum(t) / len(t))


@dataclass(frozen=True)
class VoteResult:
    winner: str | None
    votes: dict[str, float] = field(default_factory=dict)  # answer -> votes (or weight)
    counts: dict[str, int] = field(default_factory=dict)  # answer -> number of agents
    answered: int = 0  # agents with an answer
    total: int = 0  # agents that voted, answered or not
    tie: bool = False

    @property
    def agreement(self) -> int:
        """How many agents gave the winning answer."""
        return self.counts.get(self.winner, 0) if self.winner is not None else 0

    @property
    def clear_majority(self) -> bool:
        return self.winner is not None and self.agreement * 2 > self.total


def vote(answers: Sequence[str | None], weights: Sequence[float | None] | None = None) -> VoteResult:
    """Majority vote, or weighted vote when ``weights`` is given (a missing weight counts 0)."""
    counts: dict[str, int] = {}
    votes: dict[str, float] = {}
    first: dict[str, int] = {}
    for i, a in enumerate(answers):
        if a is None:
            continue
        counts[a] = counts.get(a, 0) + 1
        w = 1.0 if weights is None else (weights[i] or 0.0)
        votes[a] = votes.get(a, 0.0) + w
        first.setdefault(a, i)
    if not counts:
        return VoteResult(None, total=len(answers))
    ranked = sorted(counts, key=lambda a: (votes[a], counts[a], -first[a]), reverse=True)
    winner = ranked[0]
    tie = len(ranked) > 1 and math.isclose(votes[ranked[0]], votes[ranked[1]])
    return VoteResult(winner, votes, counts, sum(counts.values()), len(answers), tie)


# Early stop (``settled``), chosen on generated problems of seeds 11, 29 and 31 at 8 agents
# (``bench/early_stop.py``; docs/bench/early-stop-*.json holds the held-out seeds).
SETTLE_AGREE = 3  # unanimity settles once this many agents (distinct approaches) agree
SETTLE_CONFIDENCE = 0.0  # ... each with at least this tail confidence (0: any three agreeing)
SETTLE_WEIGHT = 0.5  # the weight each remaining agent is assumed to carry against a lead


def settled(
    answers: Sequence[str | None],
    weights: Sequence[float | None] | None,
    remaining: int,
    min_confidence: float = SETTLE_CONFIDENCE,
    max_weight: float = SETTLE_WEIGHT,
    *,
    min_agree: int = SETTLE_AGREE,
) -> bool:
    """Whether launching the ``remaining`` agents can no longer plausibly change the vote.

    Settled when either
    - *unanimity*: at least ``min_agree`` launched agents, all with the same answer, each with
      tail confidence at least ``min_confidence`` (a floor against agreeing by a bias, such
      as a low-confidence "D" on multiple choice); or
    - *lead*: the confidence-weighted leader is ahead of the runner-up by more than
      ``remaining * max_weight``, the weight the rest would need if every one of them voted
      for the runner-up with confidence ``max_weight``. At ``max_weight = 1`` (a confidence
      is at most 1) the lead is certain; below it, plausible.
    Without confidences every vote weighs 1 and the lead must be certain.

    What it covers: agents that decode greedily with distinct prompts, launched in the packaged
    early-stop order (``prompts/contemplating.yaml``: agents 1, 2, 3, then 7, 6), answers normalised
    by ``answers.extract``, confidence the tail confidence (``tail_confidence``), the final
    answer the confidence-weighted vote of the launched agents, at 8 agents with the wave plan
    3, 2, 1, 1, 1, on an engine whose greedy tokens do not depend on the batch. Unanimity of two agents does not
    settle: on the tuning seed the rest overturned two agreeing agents on 11% of items, and
    the confidence threshold that hid this there (0.6) selected problem families by their
    typical confidence and lost answers out of sample; three agreeing agents, 1%.
    What it does not cover: sampled agents, the synthesizer (early stop is measured against
    the confidence-weighted vote of all agents), and more than 8 agents (at 16 it changed 2%
    of answers against all 16 on one seed; measured, not tuned).
    Constants: chosen with the launch order and the wave plan on generated problems of seeds
    11, 29 and 31 pooled (``bench/early_stop_rules.tune_proposed``: the most tokens saved with no accuracy lost
    against all 8 agents, at most 1% of answers changed and no more sequential decode steps
    than the rule before), then reported unchanged on held-out seeds (docs/bench/early-stop-*.json). The unanimity
    test needs a wave boundary at ``min_agree`` agents (a first wave of three)."""
    has_conf = weights is not None and any(w is not None for w in weights)
    ws = [(w or 0.0) for w in weights] if has_conf else [1.0] * len(answers)  # type: ignore[union-attr]
    r = vote(answers, ws)
    if r.winner is None:
        return False
    if (r.agreement == len(answers) >= max(min_agree, 1)
            and (not has_conf or min(ws) >= min_confidence)):
        return True
    runner_up = max((v for a, v in r.votes.items() if a != r.winner), default=0.0)
    return r.votes[r.winner] - runner_up > remaining * (max_weight if has_conf else 1.0)
