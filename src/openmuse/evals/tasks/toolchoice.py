"""``toolchoice``: does the agent mode pick the right built-in tool? — synthetic data.

Generated (``--task-seed``): tasks whose right tool is known — ``search`` (who or what a corpus
article is about, asked several ways), ``calculator`` (one arithmetic expression in words or
symbols) and ``python`` (counting, sorting, sequences, string work: code, not one expression).
Run it with ``--mode agent`` (``--subagents 1 --steps 1`` keeps it short); the score of an item is
1 when the first tool the agent called is the expected one. ``--no-planner`` measures the
sub-agent choosing alone (the rate without the planner). Also reported per expected tool.
"""

from __future__ import annotations

import random
from typing import Any

from ...assistant.result import AgentRunTrace, Result
from ...tools.corpus import load
from ..task import EvalContext, Item, Scored, Task

SIZE = 150
_SEARCH = ["Who was {t}?", "What is {t} known for?", "Tell me about {t}.", "Where does the name {t} come from?",
           "Give me a short summary of {t}.", "What is {t}?"]
_CALC = ["What is {a} * {b} + {c}?", "Compute {a} plus {b} times {c}.", "How much is ({a} - {b}) / {c}?",
         "Calculate {a} divided by {c}.", "What is {a} squared minus {b}?"]
_WORDS = ["banana", "encyclopedia", "mississippi", "openmuse", "parallelogram", "rhythm", "onomatopoeia"]


def _python(rng: random.Random) -> str:
    w = rng.choice(_WORDS)
    nums = [rng.randint(1, 99) for _ in range(rng.randint(5, 8))]
    return rng.choice([
        f"Count how many vowels are in the word '{w}'.",
        f"Reverse the string '{w}' and print it in upper case.",
        f"Sort these numbers from largest to smallest: {', '.join(map(str, nums))}.",
        f"List the first {rng.randint(8, 20)} prime numbers.",
        f"Print the first {rng.randint(8, 15)} Fibonacci numbers.",
        f"How many even numbers are in this list: {', '.join(map(str, nums))}?",
        f"Write a loop that sums the numbers from 1 to {rng.randint(100, 5000)}.",
    ])


def generate(n: int, seed: int) -> list[dict[str, str]]:
    rng = random.Random(f"toolchoice-{seed}")
    titles = [a.title for a in load() if "(" not in a.title and len(a.title) < 30]
    out = []
    for i in range(n):
        tool = ("search", "calculator", "python")[i % 3]
        if tool == "search":
            q = rng.choice(_SEARCH).format(t=rng.choice(titles))
        elif tool == "calculator":
            q = rng.choice(_CALC).format(a=rng.randint(12, 999), b=rng.randint(2, 99), c=rng.randint(2, 50))
        else:
            q = _python(rng)
        out.append({"question": q, "tool": tool})
    return out


def first_tool(r: Result | None) -> str | None:
    if r is None or not isinstance(r.trace, AgentRunTrace) or not r.trace.subagents:
        return None
    for step in r.trace.subagents[0].steps:
        if step.call is not None:
            return step.call.name
    return None


class ToolChoiceTask(Task):
    name = "toolchoice"
    convention = "Seeded tasks with a known right tool (search, calculator, python); the agent's first call"
    synthetic = True
    default_max_tokens = 128

    def items(self) -> list[Item]:
        return [Item(id=f"tc{self.options.seed}-{i:03d}", messages=[{"role": "user", "content": q["question"]}],
                     target=q["tool"], meta={"tool": q["tool"]})
                for i, q in enumerate(generate(SIZE, self.options.seed))]

    def score(self, item: Item, outputs: list[list[Result]], ctx: EvalContext) -> Scored:
        r = outputs[0][0] if outputs and outputs[0] else None
        got = first_tool(r)
        return Scored(prediction=r.answer if r else "", extracted=got, score=float(got == item.target))

    def summarize(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        out = super().summarize(records)
        by: dict[str, list[float]] = {}
        for r in records:
            by.setdefault(r["target"], []).append(r["score"])
        out["by_tool"] = {t: round(sum(v) / len(v), 4) for t, v in sorted(by.items())}
        return out
