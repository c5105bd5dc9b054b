"""The calculator tool: exact arithmetic on one expression, without ``eval``.

Covers + - * / // % **, parentheses, unary minus, decimals, and the functions in ``FUNCS``
(sqrt, abs, round, min, max, log, exp, sin, cos, tan, floor, ceil) with the constants pi and e.
The expression is parsed with ``ast`` and walked node by node: names, attributes, calls to
anything else, comprehensions and strings are refused. Powers and factorial-sized results are
capped (``MAX_EXP``, ``MAX_DIGITS``) so one call cannot hang the process. It does not do
algebra or units; the sandbox runs anything beyond arithmetic.
"""

from __future__ import annotations

import ast
import math
import operator
import re
from fractions import Fraction
from typing import Any

from .base import BuiltinTool, ToolError

MAX_EXP = 10_000
MAX_DIGITS = 4_000
MAX_LEN = 500
THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")

BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
          ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}
FUNCS = {"sqrt": math.sqrt, "abs": abs, "round": round, "min": min, "max": max, "log": math.log,
         "exp": math.exp, "sin": math.sin, "cos": math.cos, "tan": math.tan, "floor": math.floor,
         "ceil": math.ceil}
CONSTS = {"pi": math.pi, "e": math.e}


def evaluate(expression: str) -> int | float | Fraction:
    text = THOUSANDS.sub("", expression.strip()).replace("^", "**").replace("×", "*").replace("÷", "/")
    if not text:
        raise ToolError("the expression is empty")
    if len(text) > MAX_LEN:
        raise ToolError(f"the expression is longer than {MAX_LEN} characters")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError:
        raise ToolError(f"not an arithmetic expression: {expression[:80]!r}") from None
    return _walk(tree.body)


def _num(v: Any) -> Any:
    if isinstance(v, int) and not isinstance(v, bool) and v.bit_length() * 0.30103 > MAX_DIGITS:
        raise ToolError(f"the result has more than {MAX_DIGITS} digits")
    if isinstance(v, complex):
        raise ToolError("the result is not a real number")
    return v


def _walk(node: ast.AST) -> Any:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return Fraction(str(node.value)) if isinstance(node.value, float) else node.value
    if isinstance(node, ast.Name) and node.id in CONSTS:
        return CONSTS[node.id]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        v = _walk(node.operand)
        return -v if isinstance(node.op, ast.USub) else v
    if isinstance(node, ast.BinOp) and type(node.op) in BINOPS:
        a, b = _walk(node.left), _walk(node.right)
        if isinstance(node.op, ast.Pow):
            if abs(b) > MAX_EXP:
                raise ToolError(f"the exponent is larger than {MAX_EXP}")
            if isinstance(b, Fraction) and b.denominator != 1:
                return _num(float(a) ** float(b))
            b = int(b)
            size = abs(b) * max(1, int(abs(a)).bit_length()) * 0.30103 if isinstance(a, (int, Fraction)) else 0
            if size > MAX_DIGITS:  # refused before computing: a huge power would hold the process
                raise ToolError(f"the result has more than {MAX_DIGITS} digits")
            if b < 0 and isinstance(a, int):
                return _num(Fraction(1, a ** -b) if a else 0)
        if isinstance(node.op, (ast.Div, ast.FloorDiv, ast.Mod)) and b == 0:
            raise ToolError("division by zero")
        if isinstance(node.op, ast.Div):
            return _num(Fraction(a) / Fraction(b) if not isinstance(a, float) and not isinstance(b, float)
                        else a / b)
        return _num(BINOPS[type(node.op)](a, b))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in FUNCS and not node.keywords:
        args = [_walk(a) for a in node.args]
        try:
            return FUNCS[node.func.id](*[float(a) if isinstance(a, Fraction) and node.func.id not in
                                         ("abs", "min", "max", "round") else a for a in args])
        except (ValueError, TypeError, OverflowError) as e:
            raise ToolError(f"{node.func.id}: {e}") from None
    what = type(node).__name__
    name = getattr(node, "id", None) or getattr(getattr(node, "func", None), "id", None)
    raise ToolError(f"not allowed in an expression: {name or what}")


def show(v: Any) -> str:
    if isinstance(v, Fraction):
        if v.denominator == 1:
            return str(v.numerator)
        f = float(v)
        return f"{f:.12g}"
    if isinstance(v, float):
        if v.is_integer() and abs(v) < 1e15:
            return str(int(v))
        return f"{v:.12g}"
    return str(v)


class Calculator(BuiltinTool):
    name = "calculator"
    description = "Evaluate one arithmetic expression exactly: numbers, + - * / ** %, parentheses, sqrt, log."
    parameters = {"type": "object", "properties": {"expression": {"type": "string", "description":
                  "The arithmetic expression."}}, "required": ["expression"]}

    def call(self, expression: str) -> str:
        try:
            return f"{expression.strip()} = {show(evaluate(expression))}"
        except (OverflowError, ZeroDivisionError, RecursionError) as e:
            raise ToolError(f"cannot compute: {e}") from None
