"""``arithmetic``: the project's own seeded generator of problems with known answers
(``openmuse.problems.generate``, the set Contemplating's bench uses) — synthetic data.

Families: single-digit sums, the larger of two numbers, capitals as 4-way multiple choice and
one-step word problems. Scoring: exact match of the extracted, normalised answer (a number, or
an option letter; an answer naming an option's text counts as its letter) against the known
answer, with the same extraction Contemplating's vote uses — 1 or 0 per item, accuracy overall.
``--seed`` picks the problem set; the same seed gives the same items on every machine.
"""

from __future__ import annotations

from typing import Any

from ...answers import extract
from ...assistant.result import Result
from ...problems import generate
from ..task import EvalContext, Item, Scored, Task

SIZE = 1000  # items generated; --limit takes the first K (the generator is prefix-stable)


class ArithmeticTask(Task):
    name = "arithmetic"
    convention = "Seeded synthetic problems (openmuse.problems); exact match of the normalised answer"
    synthetic = True
    default_max_tokens = 128

    def items(self) -> list[Item]:
        seed = self.options.seed
        return [Item(id=f"s{seed}-{i:04d}", messages=[{"role": "user", "content": p.question}],
                     target=p.answer, meta={"family": p.family, "kind": p.kind})
                for i, p in enumerate(generate(SIZE, seed=seed))]

    def score(self, item: Item, outputs: list[list[Result]], ctx: EvalContext) -> Scored:
        c = outputs[0][0] if outputs and outputs[0] else None
        text = c.answer if c else ""
        got = extract(text, item.messages[0]["content"], item.meta["kind"]) if text else None
        return Scored(prediction=text, extracted=got, score=float(got is not None and got == item.target))

    def summarize(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        out = super().summarize(records)
        fams: dict[str, list[float]] = {}
        for r in records:
            fams.setdefault(r["meta"]["family"], []).append(r["score"])
        out["by_family"] = {f: round(sum(s) / len(s), 4) for f, s in sorted(fams.items())}
        return out
