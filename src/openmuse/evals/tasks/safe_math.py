"""Answer expressions read without ever running them: the only way the eval harness turns a
model's answer or a data file's target into a value.

What it covers: an answer string (``\\frac{1}{2}``, ``2\\sqrt{2}``, ``3^{2}``, ``\\pi/2``,
``x+1``) is brought to plain infix text, cut into tokens by one regex (numbers, names,
``+ - * / ^ ( )``; anything else is refused), given explicit ``*`` where multiplication is
implied, parsed by Python's ``ast`` (parsing builds a tree; it executes nothing) and then
walked node by node against a whitelist: number literals, ``+ - * / **``, unary ``+``/``-``,
parentheses, ``sqrt(x)``, the constants ``pi`` and ``e`` and single-letter variables. The
value is built from the tree as sympy objects (``Integer``, ``Rational`` from
``fractions.Fraction``, ``Symbol`` of one letter, ``sqrt``, ``pi``, ``E``) — never by handing
a string to sympy — so no attribute, call, subscript, lambda, comprehension, dunder or
multi-letter name can reach anything. Sizes are capped so that nothing hangs: at most
``MAX_CHARS`` characters, ``MAX_DIGITS`` digits a literal, and a power whose result would
pass ``MAX_BITS`` bits (``9**9**9**9``), a variable's power past ``MAX_SYMBOLIC_EXP``, or an
exponent that is not a small rational is refused.

``same_value`` compares two values: exactly when both are numbers, else numerically at a few
fixed points of their variables (30 digits) — never with ``sympy.simplify``, whose time has no
bound (``((x+1)^{64})^{64}`` against ``x`` ran for minutes). Scientific notation (``3e2``) is
refused rather than read as ``3·e·2``; the caller compares such numbers as floats.

What it does not cover: equality by agreement at sample points is probabilistic in principle
(two different expressions agreeing at all four points);
it reads no LaTeX beyond ``\\frac``, ``\\sqrt``, ``\\cdot``, ``\\times``, ``\\pi`` and braces
(what else the caller's normalisation removes), no equations, intervals, tuples, functions
other than ``sqrt``, or variable names longer than one letter: those are refused (``None``),
which the caller scores as not equal unless the normalised strings match.
"""

from __future__ import annotations

import ast
import math
import re
from fractions import Fraction

MAX_CHARS = 200  # longer answers are not read as expressions
MAX_DIGITS = 60  # digits of one number literal
MAX_BITS = 4096  # bits of an integer power's result (2**4096 has 1234 digits)
MAX_ROOT = 12  # largest denominator of a fractional exponent (roots up to the 12th)
MAX_SYMBOLIC_EXP = 64  # largest exponent of an expression holding a variable

_SCIENTIFIC = re.compile(r"\d\s*[eE]\s*[-+]?\s*\d")
_POINTS = (0.6180339887, 1.3247179572, 0.8414709848, 1.4142135624)  # fixed, irrational-looking
_TOKEN = re.compile(r"\s*(?:(\d+\.\d*|\.\d+|\d+)|([A-Za-z]+)|(\*\*|[-+*/()]))")
_FUNCS = {"sqrt"}
_CONSTS = {"pi", "e"}


class Refused(ValueError):
    """The text is not an expression this reader accepts."""


def latex_to_infix(t: str) -> str:
    """``\\frac``, ``\\sqrt``, ``\\cdot``, ``\\times``, ``\\pi``, ``^`` and braces as infix text;
    ``t`` is already normalised (no spaces, ``\\left``/``\\right``, units)."""
    for _ in range(5):  # nested \frac{..}{..} and \sqrt{..}, innermost first
        t = re.sub(r"\\frac\{([^{}]*)\}\{([^{}]*)\}", r"((\1)/(\2))", t)
        t = re.sub(r"\\sqrt\{([^{}]*)\}", r"sqrt(\1)", t)
    t = t.replace("\\cdot", "*").replace("\\times", "*").replace("\\pi", "pi").replace("^", "**")
    return t.replace("{", "(").replace("}", ")")


def tokens(text: str) -> list[str]:
    """The tokens of ``text`` with ``*`` written where multiplication is implied (``2pi``,
    ``2(3)``, ``(1)(2)``, ``2sqrt(2)``); any character outside the grammar is refused."""
    out: list[str] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise Refused(f"unexpected character {text[pos]!r}")
        num, name, op = m.groups()
        tok = num or name or op
        if name and name not in _FUNCS | _CONSTS and len(name) > 1:
            raise Refused(f"unknown name {name!r}")
        if num and len(num.replace(".", "")) > MAX_DIGITS:
            raise Refused("number too long")
        operand_start = bool(num or name) or op == "("
        if out and operand_start and (out[-1] == ")" or _is_operand(out[-1])) and out[-1] not in _FUNCS:
            out.append("*")
        out.append(tok)
        pos = m.end()
    return out


def _is_operand(tok: str) -> bool:
    return tok[0].isdigit() or tok[0] == "." or tok[0].isalpha()


def parse(text: str):
    """The sympy value of ``text`` (infix, as ``latex_to_infix`` writes it); ``Refused`` for
    anything outside the grammar or the size caps."""
    if len(text) > MAX_CHARS:
        raise Refused("too long")
    if _SCIENTIFIC.search(text):
        raise Refused("scientific notation")
    toks = tokens(text)
    if not toks:
        raise Refused("empty")
    try:
        tree = ast.parse(" ".join(toks), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as e:
        raise Refused("not an expression") from e
    return _value(tree.body)


def _value(node: ast.AST):
    import sympy

    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        if isinstance(node.value, int):
            return sympy.Integer(node.value)
        f = Fraction(repr(node.value))  # the literal's own decimal digits, exactly
        return sympy.Rational(f.numerator, f.denominator)
    if isinstance(node, ast.Name):
        if node.id == "pi":
            return sympy.pi
        if node.id == "e":
            return sympy.E
        if len(node.id) == 1 and node.id.isascii() and node.id.isalpha():
            return sympy.Symbol(node.id)
        raise Refused(f"name {node.id!r}")
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.UAdd, ast.USub)):
        v = _value(node.operand)
        return -v if isinstance(node.op, ast.USub) else v
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.Div)):
        a, b = _value(node.left), _value(node.right)
        if isinstance(node.op, ast.Add):
            return a + b
        if isinstance(node.op, ast.Sub):
            return a - b
        if isinstance(node.op, ast.Mult):
            return a * b
        return a / b
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow):
        return _power(_value(node.left), _value(node.right))
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "sqrt"
            and len(node.args) == 1 and not node.keywords):
        return _power(_value(node.args[0]), sympy.Rational(1, 2))
    raise Refused(f"{type(node).__name__} is not allowed")


def _power(base, exp):
    """``base ** exp`` when its size is bounded: a rational exponent with a small denominator,
    and an integer result of at most MAX_BITS bits (symbolic bases: exponent at most MAX_BITS)."""
    import sympy

    if not exp.is_Rational:
        raise Refused("the exponent must be a number")
    if exp.q > MAX_ROOT or abs(exp.p) > MAX_BITS:
        raise Refused("exponent too large")
    if base.is_Rational and base != 0:
        bits = max(abs(base.p), base.q).bit_length()
        if bits * abs(exp.p) / exp.q > MAX_BITS:
            raise Refused("power too large")
    elif not base.is_Rational and base.free_symbols == set() and base.is_number:
        magnitude = abs(complex(base.evalf(15))) if base.is_finite else math.inf
        if magnitude > 1 and math.log2(magnitude) * abs(exp.p) / exp.q > MAX_BITS:
            raise Refused("power too large")
    elif base.free_symbols and abs(exp.p) > MAX_SYMBOLIC_EXP:
        raise Refused("exponent too large")
    return sympy.Pow(base, exp)


def same_value(x, y) -> bool:
    """Whether two values from ``parse`` are equal: exactly when both are numbers, else
    numerically at ``_POINTS`` for every variable (different variables at different points),
    with 30 digits. Bounded time: no simplification, no expansion."""
    import sympy

    names = sorted(x.free_symbols | y.free_symbols, key=str)
    trials = [{}] if not names else [
        {v: sympy.Float(_POINTS[(k + j) % len(_POINTS)], 30) for j, v in enumerate(names)}
        for k in range(len(_POINTS))]
    try:
        for subs in trials:
            a, b = x.evalf(30, subs=subs), y.evalf(30, subs=subs)
            if not (a.is_number and b.is_number and a.is_finite and b.is_finite):
                return False
            scale = max(sympy.Integer(1), abs(a), abs(b))
            if abs(a - b) > scale * sympy.Float("1e-20", 30):
                return False
        return True
    except (TypeError, ValueError, ArithmeticError):
        return False
