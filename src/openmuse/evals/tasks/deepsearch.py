"""``deepsearch``: list-answer questions over the packaged corpus, scored as DeepSearchQA is.

Generated (``--task-seed``): "Which of the following are <kind>: A, B, … H?" where the kind is
a class of articles in the offline corpus (``tools/corpus.py``: countries, painters, composers,
physicists, rivers, chemical elements, mountains, philosophers, novelists, read from each
article's Wikipedia description) and the candidates mix 2–5 members with articles of other
kinds. The answer set is known from the descriptions; the model must look each candidate up.

Scoring (DeepSearchQA's convention for set answers): the candidates the answer names (by title,
case-insensitive, whole words; "none" names none) against the answer set — precision, recall,
F1 per item, and "fully correct" when the sets are equal. ``summarize`` reports mean F1,
precision, recall and the fully-correct rate; the runner adds tokens and wall time; each record
keeps the tool calls the agent made.

``--data FILE``: the real DeepSearchQA (or any JSONL/CSV with ``problem``/``question`` and an
``answer`` list or comma-separated string) is scored the same way, names matched as written.
"""

from __future__ import annotations

import random
import re
from typing import Any

from ...assistant.result import AgentRunTrace, Result
from ...modes.agent.plan import named
from ...tools.corpus import load
from ..task import EvalContext, Item, Scored, Task, field_of, read_table

SIZE = 200
CANDIDATES = 8
# kind (plural, as asked) -> a test on an article's description
KINDS: dict[str, str] = {
    "countries": r"^country in\b",
    "painters": r"\bpainter\b",
    "composers": r"\bcomposer\b",
    "physicists": r"\bphysicist\b",
    "rivers": r"\briver\b",
    "chemical elements": r"^chemical element\b",
    "mountains": r"\bmountains?\b|\bmountain range\b",
    "philosophers": r"\bphilosopher\b",
    "novelists": r"\bnovelist\b",
}


def _classes() -> dict[str, list[str]]:
    """Kind -> titles (short, unambiguous: no parentheses or commas, one kind only)."""
    out: dict[str, list[str]] = {k: [] for k in KINDS}
    for a in load():
        d = a.description.lower()
        hits = [k for k, rx in KINDS.items() if re.search(rx, d)]
        if len(hits) == 1 and "(" not in a.title and "," not in a.title and len(a.title) <= 30:
            out[hits[0]].append(a.title)
    return out


def generate(n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` questions (prefix-stable for a seed): question, candidates, answer set, kind."""
    classes = _classes()
    kinds = sorted(classes)
    rng = random.Random(f"deepsearch-{seed}")
    out = []
    for _ in range(n):
        kind = rng.choice(kinds)
        k = rng.randint(2, 5)
        members = rng.sample(classes[kind], k)
        others = [t for o in kinds if o != kind for t in classes[o]]
        cands = members + rng.sample(others, CANDIDATES - k)
        rng.shuffle(cands)
        q = f"Which of the following are {kind}: {', '.join(cands)}?"
        out.append({"question": q, "candidates": cands, "answer": sorted(members), "kind": kind})
    return out


def set_scores(got: list[str], gold: list[str]) -> dict[str, float]:
    g, t = {x.lower() for x in got}, {x.lower() for x in gold}
    tp = len(g & t)
    p = tp / len(g) if g else (1.0 if not t else 0.0)
    r = tp / len(t) if t else 1.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": p, "recall": r, "f1": f1, "fully_correct": float(g == t)}


class DeepSearchTask(Task):
    name = "deepsearch"
    convention = ("List-answer questions from the offline corpus (or DeepSearchQA via --data); "
                  "set precision/recall/F1 and fully-correct rate")
    synthetic = True
    default_max_tokens = 256
    primary = "f1"
    secondary = ("fully_correct",)

    def items(self) -> list[Item]:
        if self.options.data:
            return self._from_file()
        return [Item(id=f"ds{self.options.seed}-{i:03d}", messages=[{"role": "user", "content": q["question"]}],
                     target=q["answer"], meta={"candidates": q["candidates"], "kind": q["kind"]})
                for i, q in enumerate(generate(SIZE, self.options.seed))]

    def _from_file(self) -> list[Item]:
        path = self.options.data
        rows = read_table(path, self.name, "DeepSearchQA: problem/question and answer per row")
        items = []
        for n, row in enumerate(rows, 1):
            q = str(field_of(row, ("problem", "question", "prompt"), path, n))
            ans = field_of(row, ("answer", "answers"), path, n)
            gold = ans if isinstance(ans, list) else [a.strip() for a in str(ans).split(",") if a.strip()]
            items.append(Item(id=str(row.get("id", n)), messages=[{"role": "user", "content": q}],
                              target=[str(a) for a in gold], meta={"candidates": [str(a) for a in gold]}))
        return items

    def score(self, item: Item, outputs: list[list[Result]], ctx: EvalContext) -> Scored:
        r = outputs[0][0] if outputs and outputs[0] else None
        text = r.answer if r else ""
        cands = item.meta["candidates"]
        got = named(text, cands) if text and not re.fullmatch(r"\W*none\W*", text.lower()) else []
        s = set_scores(got, item.target)
        extra = {k: round(v, 4) for k, v in s.items()}
        if r is not None and isinstance(r.trace, AgentRunTrace):
            extra["tool_calls"] = r.trace.tool_calls
            extra["subagents"] = len(r.trace.subagents)
        return Scored(prediction=text, extracted=sorted(got), score=s["f1"], extra=extra)

    def summarize(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        n = len(records) or 1
        out = {k: round(sum(r.get(k, 0.0) for r in records) / n, 4)
               for k in ("f1", "precision", "recall", "fully_correct")}
        out["tool_calls_per_item"] = round(sum(r.get("tool_calls", 0) for r in records) / n, 2)
        return out
