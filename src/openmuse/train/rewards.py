"""Rewards for thought compression: a verifiable-answer reward and two length penalties.

Every reward here has TRL's reward-function signature, ``f(prompts, completions, **kwargs) ->
list[float]``; the dataset's columns (``answer``, ``kind``, ``question``) and TRL's
``completion_ids`` arrive in ``kwargs``. Pure Python: nothing imports torch.

The recipe (what a completion earns):

- *Answer*. The answer is what follows the last ``Answer:`` / "answer is" marker or, with no
  marker, what the last line states (as Thinking mode takes an answer from its reasoning), brought
  to one form by the project's extraction (``openmuse.answers.extract``); it is right when it
  equals the known answer. Only the last line counts, so listing candidates earns nothing. (A
  first recipe that required the marker left the untrained model right 2% of the time; with a
  format bonus to teach the marker it learnt "the answer is X" with no reasoning at all, and
  Thinking accuracy fell from 0.48 to 0.28 on the tuning seed.)
- *Truncated*. A completion that reached the length cap without its end-of-sequence token is
  truncated: it earns 0 for its answer whatever it says (it never finished), and it takes the
  truncation/overlong penalty of -1 (under every penalty but ``none``), so a group in which no
  completion is right still learns to finish.
- *Arora & Zanette* (``penalty="arora"``): ``r × (1 − α·σ(z))`` with ``r`` = 1 for a right answer
  and 0 otherwise, ``z`` the length's z-score among the *right* completions of the same prompt
  (the group TRL samples for one prompt); a lone right completion, or right ones of equal length,
  have ``z = 0`` (σ = 0.5). Wrong completions earn 0 whatever their length.
- *Soft overlong* (``penalty="overlong"``, DAPO/TRL): the answer reward plus 0 up to
  ``L_max − L_cache`` tokens, falling linearly to −1 at ``L_max``.
- *Format* (``format_bonus`` > 0, off by default): a finished completion from which an answer
  can be read earns the bonus, right or wrong (DeepSeek-R1's format reward). Off, because on the
  135M model it pays for stating any answer at once (see *Answer*).

Length is counted in tokens (``completion_ids``); without them, in whitespace-separated words.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from typing import Any

from ..answers import extract

PENALTIES = ("arora", "overlong", "none")
_MARKER = re.compile(r"(?:final answer|answer)\s*(?:is|:)", re.IGNORECASE)

RewardFn = Callable[..., list[float]]


def completion_text(completion: Any) -> str:
    """The text of a completion: a string, or TRL's conversational form (a list of messages)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list):
        return "".join(str(m.get("content") or "") for m in completion if isinstance(m, dict))
    return str(completion or "")


def final_answer(text: str, question: str = "", kind: str | None = None) -> str | None:
    """The normalised answer after the last ``Answer:`` marker, else in the last line; None
    when there is none."""
    marks = list(_MARKER.finditer(text))
    if not marks:
        lines = [ln for ln in text.strip().splitlines() if ln.strip()]
        return extract(lines[-1], question, kind) if lines else None
    tail = text[marks[-1].start():]  # keep the marker: extract() reads "Answer: X" itself
    return extract(tail, question, kind)


def lengths(completions: Sequence[Any], completion_ids: Sequence[Sequence[int]] | None = None) -> list[int]:
    """Tokens per completion (``completion_ids``), else whitespace-separated words."""
    if completion_ids is not None:
        return [len(ids) for ids in completion_ids]
    return [len(completion_text(c).split()) for c in completions]


def truncated(completion_ids: Sequence[Sequence[int]] | None, max_len: int | None,
              eos_ids: Sequence[int] = (), texts: Sequence[str] | None = None) -> list[bool]:
    """Which completions hit the cap unfinished: ``max_len`` tokens or more, not ending in an
    end-of-sequence token. Without token ids (or a cap), nothing is counted as truncated."""
    if completion_ids is None or not max_len:
        return [False] * (len(texts) if texts is not None else 0)
    eos = set(eos_ids)
    return [len(ids) >= max_len and not (ids and ids[-1] in eos) for ids in completion_ids]


def correctness(completions: Sequence[Any], answer: Sequence[str], kind: Sequence[str] | None = None,
                question: Sequence[str] | None = None, cut: Sequence[bool] | None = None) -> list[float]:
    """1.0 where the final answer equals the known one and the completion was not truncated."""
    out = []
    for i, c in enumerate(completions):
        if cut is not None and cut[i]:
            out.append(0.0)
            continue
        got = final_answer(completion_text(c), question[i] if question else "", kind[i] if kind else None)
        out.append(1.0 if got is not None and got == str(answer[i]) else 0.0)
    return out


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def _group_keys(prompts: Sequence[Any]) -> list[str]:
    """One key per prompt, equal for the completions TRL sampled from the same prompt."""
    return [completion_text(p) if not isinstance(p, str) else p for p in prompts]


def arora(correct: Sequence[float], lens: Sequence[int], groups: Sequence[str], alpha: float) -> list[float]:
    """Arora & Zanette: ``r × (1 − α·σ(z))``, ``z`` the length's z-score among the right
    completions of the same group (population std; 0 when it is 0)."""
    stats: dict[str, tuple[float, float]] = {}
    for g in set(groups):
        ls = [lens[i] for i in range(len(lens)) if groups[i] == g and correct[i] > 0]
        if ls:
            mean = sum(ls) / len(ls)
            std = math.sqrt(sum((x - mean) ** 2 for x in ls) / len(ls))
            stats[g] = (mean, std)
    out = []
    for r, n, g in zip(correct, lens, groups):
        if r <= 0:
            out.append(0.0)
            continue
        mean, std = stats[g]
        z = (n - mean) / std if std > 0 else 0.0
        out.append(r * (1.0 - alpha * _sigmoid(z)))
    return out


def soft_overlong(lens: Sequence[int], max_len: int, cache: int) -> list[float]:
    """0 up to ``max_len − cache`` tokens, linear down to −1 at ``max_len`` (and beyond)."""
    start = max_len - cache
    out = []
    for n in lens:
        if n >= max_len:
            out.append(-1.0)
        elif n <= start or cache <= 0:
            out.append(0.0)
        else:
            out.append((start - n) / cache)
    return out


def stated(completions: Sequence[Any], question: Sequence[str] | None = None, kind: Sequence[str] | None = None,
           cut: Sequence[bool] | None = None) -> list[bool]:
    """Which completions finished and state an answer that can be read (right or wrong)."""
    return [not (cut is not None and cut[i]) and
            final_answer(completion_text(c), question[i] if question else "", kind[i] if kind else None) is not None
            for i, c in enumerate(completions)]


def make_rewards(penalty: str = "arora", alpha: float = 0.2, max_len: int | None = None, cache: int = 16,
                 eos_ids: Sequence[int] = (), format_bonus: float = 0.0) -> list[RewardFn]:
    """The reward functions for a penalty, in TRL's form (TRL sums them):

    - ``arora``: ``[answer_arora, truncation]`` (−1 for a truncated completion, else 0);
    - ``overlong``: ``[answer, overlong]`` (the soft overlong penalty over ``cache`` tokens);
    - ``none``: ``[answer]``;
    - and, when ``format_bonus`` > 0, ``answer_format`` last (the bonus where ``stated``).

    Each also logs ``accuracy`` (right and finished) and ``truncated`` (share cut at the cap)
    through TRL's ``log_metric`` when it is given.
    """
    if penalty not in PENALTIES:
        raise ValueError(f"penalty must be one of {', '.join(PENALTIES)}, not {penalty!r}")

    def _common(prompts, completions, kwargs):
        ids = kwargs.get("completion_ids")
        cut = truncated(ids, max_len, eos_ids, [completion_text(c) for c in completions])
        right = correctness(completions, kwargs["answer"], kwargs.get("kind"), kwargs.get("question"), cut)
        log = kwargs.get("log_metric")
        if log is not None and completions:
            log("accuracy", sum(right) / len(right))
            log("truncated", sum(cut) / len(cut))
        return ids, cut, right

    def answer(prompts, completions, **kwargs) -> list[float]:
        return _common(prompts, completions, kwargs)[2]

    def answer_arora(prompts, completions, **kwargs) -> list[float]:
        ids, _, right = _common(prompts, completions, kwargs)
        return arora(right, lengths(completions, ids), _group_keys(prompts), alpha)

    def truncation(prompts, completions, **kwargs) -> list[float]:
        cut = truncated(kwargs.get("completion_ids"), max_len, eos_ids, [completion_text(c) for c in completions])
        return [-1.0 if c else 0.0 for c in cut]

    def overlong(prompts, completions, **kwargs) -> list[float]:
        lens = lengths(completions, kwargs.get("completion_ids"))
        return soft_overlong(lens, max_len, cache) if max_len else [0.0] * len(lens)

    def answer_format(prompts, completions, **kwargs) -> list[float]:
        cut = truncated(kwargs.get("completion_ids"), max_len, eos_ids, [completion_text(c) for c in completions])
        return [format_bonus if s else 0.0 for s in stated(completions, kwargs.get("question"), kwargs.get("kind"), cut)]

    funcs: list[RewardFn] = {"arora": [answer_arora, truncation], "overlong": [answer, overlong]}.get(penalty, [answer])
    return [*funcs, answer_format] if format_bonus > 0 else funcs
