"""``math``: GSM8K, MATH-500 or AIME from a local file (``--data PATH``, JSONL or CSV).

Rows carry the problem (``question`` or ``problem``) and the answer (``answer``; GSM8K's
worked answers end in ``#### N``, which is taken; a ``\\boxed{}`` in it is taken too; else a
``solution`` field's last ``\\boxed{}``). An ``id`` or ``unique_id`` is used when present.

Extraction from the model's answer, in order: the last ``\\boxed{…}`` (braces balanced), the
last ``Answer: …`` line (simple-evals' math convention), the last ``#### …`` (GSM8K), else the
last number. Equivalence: equal after normalising LaTeX (``\\left``/``\\right``, ``\\dfrac``,
``$``, spaces, thousands commas, a trailing period, ``^\\circ``, ``\\text{…}`` units), or equal
numbers, or equal values of both sides read as expressions (``safe_math.same_value``: exact for numbers, at fixed points for variables) (``\\frac``,
``\\sqrt``, ``^``, ``\\pi``, ``\\cdot`` translated) — so ``\\frac{1}{2}`` equals ``0.5``.
Expressions are read by ``safe_math`` (a whitelist over Python's ``ast``, values built as sympy
objects from the tree), never by sympy's string parser: an answer or a data row carrying code
(``__import__('os')…``) is refused as unparseable and scored as not equal; nothing runs.
"""

from __future__ import annotations

import re
from typing import Any

from ... import prompts
from ...assistant.result import Result
from ..task import EvalContext, Item, Scored, Task, field_of, read_table
from . import safe_math

_NUM = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")


def last_boxed(text: str) -> str | None:
    """The content of the last ``\\boxed{…}`` (or ``\\fbox{…}``), nested braces kept."""
    start = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if start < 0:
        return None
    i = text.find("{", start)
    if i < 0:
        return None
    depth = 0
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i + 1: j].strip()
    return None


def extract_answer(text: str) -> str | None:
    if not text or not text.strip():
        return None
    boxed = last_boxed(text)
    if boxed is not None:
        return boxed
    marks = re.findall(r"(?i)answer\s*:\s*([^\n]+)", text)
    if marks:
        return marks[-1].strip().strip("$").strip()
    hashes = re.findall(r"####\s*([^\n]+)", text)
    if hashes:
        return hashes[-1].strip()
    nums = _NUM.findall(text)
    return nums[-1] if nums else None


def target_of(answer: str, solution: str | None = None) -> str:
    if "####" in answer:
        return answer.rsplit("####", 1)[1].strip()
    boxed = last_boxed(answer) or (last_boxed(solution) if solution else None)
    return boxed if boxed is not None else answer.strip()


def normalize(s: str) -> str:
    t = s.strip().strip("$").strip()
    t = re.sub(r"\\text\{[^{}]*\}", "", t)
    for a, b in (("\\left", ""), ("\\right", ""), ("\\dfrac", "\\frac"), ("\\tfrac", "\\frac"), ("\\!", ""),
                 ("^\\circ", ""), ("^{\\circ}", ""), ("\\%", ""), ("%", ""), ("\\$", "")):
        t = t.replace(a, b)
    t = re.sub(r"(\d),(\d{3})", r"\1\2", t)
    t = re.sub(r"\s+", "", t).rstrip(".")
    return t


def _to_sympy(s: str):
    """The value of ``s`` read by ``safe_math`` (never evaluated as code), or None."""
    try:
        return safe_math.parse(safe_math.latex_to_infix(normalize(s)))
    except (safe_math.Refused, ArithmeticError, ValueError, TypeError, RecursionError):
        return None


def equivalent(pred: str | None, target: str) -> bool:
    if pred is None:
        return False
    a, b = normalize(pred), normalize(target)
    if a == b:
        return True
    try:
        return abs(float(a) - float(b)) <= 1e-6 * max(1.0, abs(float(b)))
    except ValueError:
        pass
    x, y = _to_sympy(pred), _to_sympy(target)
    if x is None or y is None:
        return False
    return safe_math.same_value(x, y)  # numeric at fixed points: sympy.simplify's time has no bound


class MathTask(Task):
    name = "math"
    convention = "Local GSM8K/MATH-500/AIME file; boxed / 'Answer:' / #### extraction, sympy equivalence"

    def items(self) -> list[Item]:
        path = self.options.data
        rows = read_table(path, self.name, "rows with question/problem and answer")
        p = prompts.load("evals")["math"]
        out = []
        for n, row in enumerate(rows, 1):
            q = str(field_of(row, ("question", "problem", "Question", "Problem"), path, n)).strip()
            ans = str(field_of(row, ("answer", "Answer", "solution"), path, n))
            rid = str(row.get("id") or row.get("unique_id") or n)
            out.append(Item(id=rid, messages=[{"role": "user", "content": p["user"].format(question=q)}],
                            target=target_of(ans, row.get("solution"))))
        return out

    def score(self, item: Item, outputs: list[list[Result]], ctx: EvalContext) -> Scored:
        text = outputs[0][0].answer if outputs and outputs[0] else ""
        got = extract_answer(text)
        return Scored(prediction=text, extracted=got, score=float(equivalent(got, item.target)))

    def summarize(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        out = super().summarize(records)
        out["answered"] = sum(r["extracted"] is not None for r in records)
        return out
