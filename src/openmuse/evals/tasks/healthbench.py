"""``healthbench``: OpenAI's HealthBench from a local JSONL file in its official format
(``--data PATH``): each line has ``prompt`` (chat messages), ``rubrics`` (``criterion``,
``points``, ``tags``), and optionally ``prompt_id`` and ``example_tags``.

Grading (HealthBench's official formula, as in simple-evals):

- The model answers the conversation; a grader then judges the answer against each rubric item
  in its own call (one grader call per rubric item). The grader is any engine:
  ``--grader-engine/--grader-model/--grader-base-url`` (default: the engine under test). It
  replies in JSON with ``criteria_met``; a verdict that cannot be read counts as not met and is
  counted (``unreadable_verdicts``).
- Per example: the points of the met criteria (negative items subtract when met) over the sum
  of the positive points.
- Overall: the mean of the per-example scores, clipped to [0, 1]; its standard error is the
  standard deviation of the clipped means of 1000 bootstrap resamples (seeded).
"""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np

from ... import prompts
from ...assistant.result import Result
from ..task import DataError, EvalContext, Item, Scored, Task, read_jsonl

BOOTSTRAP = 1000


def example_score(points: list[float], met: list[bool]) -> float | None:
    """Sum of the points of met criteria over the sum of positive points (None: no positive)."""
    possible = sum(p for p in points if p > 0)
    if possible <= 0:
        return None
    return sum(p for p, m in zip(points, met) if m) / possible


def overall(scores: list[float], seed: int = 0) -> dict[str, float]:
    """The clipped mean and its bootstrap standard error."""
    if not scores:
        return {"score": 0.0, "bootstrap_std": 0.0}
    arr = np.asarray(scores, dtype=float)
    rng = np.random.default_rng(seed)
    boots = [float(np.clip(rng.choice(arr, size=len(arr), replace=True).mean(), 0, 1)) for _ in range(BOOTSTRAP)]
    return {"score": round(float(np.clip(arr.mean(), 0, 1)), 4), "bootstrap_std": round(float(np.std(boots)), 4)}


def read_verdict(text: str) -> bool | None:
    """``criteria_met`` from the grader's JSON (first object found); None when unreadable."""
    for m in re.finditer(r"\{.*?\}", text, re.DOTALL):
        try:
            v = json.loads(m.group(0)).get("criteria_met")
        except (json.JSONDecodeError, AttributeError):
            continue
        if isinstance(v, bool):
            return v
    m = re.search(r'"?criteria_met"?\s*:\s*(true|false)', text, re.IGNORECASE)
    return None if not m else m.group(1).lower() == "true"


class HealthBenchTask(Task):
    name = "healthbench"
    convention = ("Local HealthBench JSONL; one grader call per rubric item; met points over positive points, "
                  "mean clipped to [0, 1], bootstrap std")
    primary = "score"

    def items(self) -> list[Item]:
        path = self.options.data
        rows = read_jsonl(path, self.name, "HealthBench JSONL: prompt, rubrics")
        out = []
        for n, row in enumerate(rows, 1):
            msgs, rubrics = row.get("prompt"), row.get("rubrics")
            if not isinstance(msgs, list) or not msgs or not all(isinstance(m, dict) and "role" in m for m in msgs):
                raise DataError(f"{path}: line {n} needs 'prompt', a list of chat messages")
            if not isinstance(rubrics, list) or not rubrics:
                raise DataError(f"{path}: line {n} needs 'rubrics', a list of rubric items")
            try:
                rub = [{"criterion": str(r["criterion"]), "points": float(r["points"]), "tags": list(r.get("tags", []))}
                       for r in rubrics]
            except (KeyError, TypeError, ValueError):
                raise DataError(f"{path}: line {n} has a rubric item without criterion and points") from None
            out.append(Item(id=str(row.get("prompt_id") or n), messages=[{"role": m["role"], "content": m["content"]}
                                                                          for m in msgs],
                            target=rub, meta={"example_tags": row.get("example_tags", [])}))
        return out

    def score(self, item: Item, outputs: list[list[Result]], ctx: EvalContext) -> Scored:
        reply = outputs[0][0].answer if outputs and outputs[0] else ""
        convo = "\n\n".join(f"{m['role']}: {m['content']}" for m in [*item.messages, {"role": "assistant",
                                                                                        "content": reply}])
        p = prompts.load("evals")["healthbench"]["grader"]
        verdicts: list[bool | None] = []
        for r in item.target:
            msg = p.format(conversation=convo, points=r["points"], criterion=r["criterion"])
            verdicts.append(read_verdict(ctx.grade([{"role": "user", "content": msg}], max_tokens=200).text))
        met = [bool(v) for v in verdicts]
        s = example_score([r["points"] for r in item.target], met)
        return Scored(prediction=reply, extracted=met, score=0.0 if s is None else s,
                      extra={"rubric_items": len(met), "unreadable": sum(v is None for v in verdicts),
                             "scorable": s is not None})

    def summarize(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        scores = [r["score"] for r in records if r.get("scorable", True)]
        return {**overall(scores, self.options.seed), "examples": len(scores),
                "rubric_items": sum(r.get("rubric_items", 0) for r in records),
                "unreadable_verdicts": sum(r.get("unreadable", 0) for r in records)}
