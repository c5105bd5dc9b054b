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


def settled(
    answers: Sequence[str | None],
    weights: Sequence[float | None] | None,
    remaining: int,
    min_confidence: float,
    max_weight: float,
) -> bool:
    """Whether launching the remaining agents can no longer matter (early stop).

    With confidences (``weights``), settled when
    - every launched agent (at least two) gave the same answer, each with confidence at least
      ``min_confidence``; or
    - the confidence-weighted leader is ahead of the runner-up by more than the remaining
      agents could add if each weighed ``max_weight`` (a high confidence: 0.7 is about the
      85th percentile of the embedded model's traces).
    Without confidences every vote weighs 1, unanimity needs at least three agents, and a lead
    must be one the remaining agents could not overturn even all together."""
    has_conf = weights is not None and any(w is not None for w in weights)
    r = vote(answers, weights if has_conf else None)
    if r.winner is None:
        return False
    if r.agreement == len(answers) and len(answers) >= (2 if has_conf else 3):
        if not has_conf or min((w or 0.0) for w in weights) >= min_confidence:  # type: ignore[union-attr]
            return True
    runner_up = max((v for a, v in r.votes.items() if a != r.winner), default=0.0)
    return r.votes[r.winner] - runner_up > remaining * (max_weight if has_conf else 1.0)
