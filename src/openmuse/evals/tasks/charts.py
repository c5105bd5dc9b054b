"""``charts``: chart understanding on charts the project renders itself with matplotlib from
known, seeded data (synthetic), with questions of CharXiv's answer types:

- a value read off a bar (numeric), which bar is largest (a category name), the trend of a
  line (``increasing`` or ``decreasing``), and the number of series in a line chart (a count).

Each item sends the chart as an OpenAI ``image_url`` content part holding a PNG data URL, so it
runs only on an engine that takes images (``image`` in its capabilities' input modalities);
on a text-only engine it stops with a one-line error before any item runs.

Scoring: CharXiv grades with a GPT judge; here the answers have known forms, so they are graded
by rule: a numeric answer is right within 5% of the true value (the precision a reader gets off
a chart whose bars carry no labels), a count exactly, a name or trend by normalised exact match
(the answer's first line contains it). Accuracy is the mean.
"""

from __future__ import annotations

import base64
import io
import random
import re
from typing import Any

from ... import prompts
from ...assistant.result import Result
from ...engines.base import Engine
from ..task import DataError, EvalContext, Item, Scored, Task

SIZE = 100
CATEGORIES = ["apples", "pears", "plums", "figs", "kiwis", "limes", "dates", "grapes"]
SERIES = ["north", "south", "east", "west"]


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def make_chart(i: int, seed: int) -> tuple[str, str, str, str]:
    """(data URL, question, answer, answer type) of chart ``i``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rng = random.Random(f"{seed}:{i}")
    kind = ("value", "largest", "trend", "count")[i % 4]
    fig, ax = plt.subplots(figsize=(4, 3))
    if kind in ("value", "largest"):
        cats = rng.sample(CATEGORIES, rng.randint(3, 6))
        vals = [rng.randint(1, 20) * 5 for _ in cats]
        while vals.count(max(vals)) > 1:
            vals[vals.index(max(vals))] -= 5
        ax.bar(cats, vals, color="tab:blue")
        ax.set_ylabel("count")
        ax.grid(axis="y", alpha=0.4)
        if kind == "value":
            c = rng.choice(cats)
            q, a = f"What is the value of the bar for {c}?", str(vals[cats.index(c)])
        else:
            q, a = "Which category has the largest bar?", cats[vals.index(max(vals))]
    else:
        n = rng.randint(1, 4) if kind == "count" else 1
        up = rng.random() < 0.5
        xs = list(range(2015, 2023))
        for s in SERIES[:n]:
            start, step = rng.randint(10, 50), rng.randint(2, 8) * (1 if up else -1)
            ax.plot(xs, [start + 60 + step * k + rng.randint(-1, 1) for k in range(len(xs))], marker="o", label=s)
        ax.legend(fontsize=7)
        if kind == "trend":
            q, a = "Is the line increasing or decreasing over the years shown?", "increasing" if up else "decreasing"
        else:
            q, a = "How many lines (series) does the chart show?", str(n)
    ax.set_title(f"chart {i}")
    return _png(fig), q, a, kind


def correct(answer: str, target: str, kind: str) -> tuple[Any, bool]:
    first = (answer or "").strip().splitlines()[0].lower() if (answer or "").strip() else ""
    if kind in ("value", "count"):
        nums = re.findall(r"-?\d+(?:\.\d+)?", first.replace(",", ""))
        if not nums:
            return None, False
        v, t = float(nums[0]), float(target)
        return nums[0], (abs(v - t) <= 0.05 * abs(t)) if kind == "value" else v == t
    return first, target.lower() in first


class ChartsTask(Task):
    name = "charts"
    convention = "Charts rendered by the project (synthetic); CharXiv answer types; rule-graded (5% numeric tolerance)"
    synthetic = True
    default_max_tokens = 64

    def check_engine(self, engine: Engine) -> None:
        if "image" not in engine.capabilities.input_modalities:
            raise DataError(f"the engine does not take images ({engine.model} on the {engine.name} engine is "
                            "text-only); charts needs an engine with image input")

    def items(self) -> list[Item]:
        if not hasattr(self, "_items"):
            self._items = [self._item(i) for i in range(SIZE)]
        return self._items

    def _item(self, i: int) -> Item:
        url, q, a, kind = make_chart(i, self.options.seed)
        text = prompts.load("evals")["charts"]["user"].format(question=q)
        return Item(id=f"s{self.options.seed}-{i:03d}", target=a, meta={"type": kind},
                    messages=[{"role": "user", "content": [{"type": "text", "text": text},
                                                           {"type": "image_url", "image_url": {"url": url}}]}])

    def score(self, item: Item, outputs: list[list[Result]], ctx: EvalContext) -> Scored:
        text = outputs[0][0].answer if outputs and outputs[0] else ""
        got, ok = correct(text, item.target, item.meta["type"])
        return Scored(prediction=text, extracted=got, score=float(ok))
