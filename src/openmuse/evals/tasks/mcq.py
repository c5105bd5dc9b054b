"""``mcq``: GPQA- or MMMU-Pro-style multiple choice from a local file (``--data PATH``).

Accepted files:

- GPQA's CSV: columns ``Question``, ``Correct Answer``, ``Incorrect Answer 1..3``.
- CSV or JSONL rows with ``question`` and ``options`` (a list, a JSON/Python list as text, or
  ``{"A": …}``) and ``answer`` (a letter, an option's index, or the option's text); an ``id``
  is used when present. (MMMU-Pro's images are not sent: text-only rows work, image rows need
  an image-taking engine and are out of scope here.)

Convention (OpenAI simple-evals): options are shuffled per question and per repeat with a seeded
generator (``--task-seed``, ``--repeats N``), the prompt asks for a last line ``Answer: LETTER``,
and the letter is read with simple-evals' pattern (``Answer`` then ``:`` then the letter,
optionally between ``$`` signs, case-insensitive; the first such line). No such line: score 0.
Accuracy is the mean over every (question, repeat).
"""

from __future__ import annotations

import ast
import json
import random
import re
from typing import Any

from ... import prompts
from ...assistant.result import Result
from ..task import DataError, EvalContext, Item, Scored, Task, field_of, read_table

LETTERS = "ABCDEFGHIJ"
ANSWER_LINE = re.compile(r"(?i)Answer[ \t]*:[ \t]*\$?([A-J])\$?")


def extract_letter(text: str) -> str | None:
    """The letter of the first 'Answer: X' line (simple-evals' convention), upper-cased."""
    m = ANSWER_LINE.search(text or "")
    return m.group(1).upper() if m else None


def _options(row: dict[str, Any], path: str | None, n: int) -> tuple[list[str], int]:
    """The options and the index of the correct one."""
    if "Correct Answer" in row:  # GPQA
        wrong = [row[k] for k in sorted(row) if k.startswith("Incorrect Answer") and row[k] not in (None, "")]
        return [str(row["Correct Answer"]).strip(), *[str(w).strip() for w in wrong]], 0
    opts: Any = field_of(row, ("options", "choices"), path, n)
    if isinstance(opts, str):
        try:
            opts = json.loads(opts)
        except json.JSONDecodeError:
            try:
                opts = ast.literal_eval(opts)
            except (ValueError, SyntaxError):
                raise DataError(f"{path}: row {n} has options that are not a list") from None
    if isinstance(opts, dict):
        opts = [opts[k] for k in sorted(opts)]
    if not isinstance(opts, list) or not 2 <= len(opts) <= len(LETTERS):
        raise DataError(f"{path}: row {n} needs 2 to {len(LETTERS)} options")
    opts = [str(o).strip() for o in opts]
    ans = str(field_of(row, ("answer", "Answer", "label"), path, n)).strip()
    if len(ans) == 1 and ans.upper() in LETTERS[: len(opts)]:
        return opts, LETTERS.index(ans.upper())
    if ans.isdigit() and int(ans) < len(opts):
        return opts, int(ans)
    if ans in opts:
        return opts, opts.index(ans)
    raise DataError(f"{path}: row {n} has an answer ({ans[:30]!r}) that is no option")


class MCQTask(Task):
    name = "mcq"
    convention = "Local GPQA/MMMU-Pro style file; options shuffled per repeat; 'Answer: X' extraction (simple-evals)"
    default_max_tokens = 512

    def items(self) -> list[Item]:
        path = self.options.data
        rows = read_table(path, self.name, "GPQA CSV, or rows with question, options and answer")
        p = prompts.load("evals")["mcq"]
        out = []
        for n, row in enumerate(rows, 1):
            q = str(field_of(row, ("Question", "question"), path, n)).strip()
            opts, right = _options(row, path, n)
            rid = str(row.get("id") or row.get("Record ID") or n)
            for rep in range(self.options.repeats):
                order = list(range(len(opts)))
                random.Random(f"{self.options.seed}:{rid}:{rep}").shuffle(order)
                letters = LETTERS[: len(opts)]
                listed = "\n".join(f"{letters[i]}) {opts[j]}" for i, j in enumerate(order))
                text = p["user"].format(letters=letters, question=q, options=listed)
                out.append(Item(id=f"{rid}#{rep}", messages=[{"role": "user", "content": text}],
                                target=letters[order.index(right)], meta={"repeat": rep}))
        return out

    def score(self, item: Item, outputs: list[list[Result]], ctx: EvalContext) -> Scored:
        text = outputs[0][0].answer if outputs and outputs[0] else ""
        got = extract_letter(text)
        return Scored(prediction=text, extracted=got, score=float(got == item.target))
