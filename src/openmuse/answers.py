"""Find the final answer in an agent's text and bring equal answers to one form.

"1,000", "1000.0" and "$1000" are one answer ("1000"); "(B)", "B)" and "Answer: B" are one
("B"); an answer that names an option's text ("Tokyo") counts as that option's letter when the
question lists options. A grid of digits (ARC-style puzzles: "Write the output grid") is
its rows of digits, one line each, however it was written (``0 1``, ``[0, 1]``, ``[[0, 1]]``).
Anything else is a short phrase, compared in lower case without articles and punctuation.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal, InvalidOperation

PHRASE_CHARS = 80  # a phrase answer is its first sentence, at most this long
_MARKER = re.compile(r"(?:final answer|answer)\s*(?:is|:)\s*(.+)", re.IGNORECASE)
_BOXED = re.compile(r"\\boxed\{([^{}]*)\}")
_NUMBER = re.compile(r"-?\$?\d[\d,]*(?:\.\d+)?")
_OPTION_LINE = re.compile(r"^\s*\(?([A-J])[).:]\s*(.+?)\s*$", re.MULTILINE)
_OPTION_INLINE = re.compile(r"\(([A-J])\)\s*([^()]+?)\s*(?=\([A-J]\)|$)")
_LETTER = re.compile(r"^\(?([A-J])\)?(?:[.:)]|\s|$)|^\(?([a-j])\)?[.:)]?$")
_LETTER_ANYWHERE = re.compile(r"(?:option|answer is|choice)\s*\(?([A-J])\)?\b|\(([A-J])\)|\b([A-J])\)", re.IGNORECASE)
_GRID_ROW = re.compile(r"^[\s\[\],|]*(\d(?:[\s,|]*\d)*)[\s\[\],|]*$")
_GRID_JSON = re.compile(r"\[\s*\[[\d,\s\[\]]*\]\s*\]")

Grid = list[list[int]]


def parse_grid(text: str) -> Grid | None:
    """The last grid in ``text``: a JSON list of lists, or else the last block of consecutive
    lines of digits (spaces, commas, bars and brackets between them ignored) of equal length."""
    for m in reversed(list(_GRID_JSON.finditer(text))):
        try:
            g = json.loads(m.group(0))
        except json.JSONDecodeError:
            continue
        if g and all(isinstance(r, list) and r and len(r) == len(g[0]) for r in g):
            return [[int(c) for c in r] for r in g]
    blocks: list[Grid] = []
    cur: Grid = []
    for line in text.splitlines():
        m = _GRID_ROW.match(line)
        if m:
            cur.append([int(ch) for ch in re.sub(r"\D", "", m.group(1))])
        elif cur:
            blocks.append(cur)
            cur = []
    if cur:
        blocks.append(cur)
    for b in reversed(blocks):
        if all(len(r) == len(b[0]) for r in b):
            return b
    return None


def grid_text(g: Grid) -> str:
    """A grid as rows of digits, one line a row (the canonical form of a grid answer)."""
    return "\n".join("".join(str(int(c)) for c in row) for row in g)


def asks_for_grid(question: str) -> bool:
    """Whether the question is a grid puzzle: it says "grid" and holds rows of digits."""
    return re.search(r"\bgrids?\b", question, re.IGNORECASE) is not None and parse_grid(question) is not None


def display(answer: str | None) -> str:
    """An answer on one line (a grid's rows joined by "/"), for agreement lines and lanes."""
    return "" if answer is None else answer.replace("\n", "/")


def options(question: str) -> dict[str, str]:
    """Options listed in a question, one a line ("A) Paris", "(B) Lyon", "C. Nice") or on one
    line ("(A) Paris (B) Lyon")."""
    found = dict(_OPTION_LINE.findall(question))
    if len(found) < 2:
        found = {k: v.rstrip(" ,;.") for k, v in _OPTION_INLINE.findall(question)}
    return found if len(found) >= 2 else {}


def normalize_number(text: str) -> str | None:
    m = _NUMBER.search(text)
    if not m:
        return None
    raw = m.group(0).replace("$", "").replace(",", "")
    try:
        d = Decimal(raw)
    except InvalidOperation:
        return None
    if d == d.to_integral_value():
        return str(int(d))
    return format(d.normalize(), "f")


def normalize_phrase(text: str) -> str:
    t = re.sub(r"[*_`$]", "", text).strip().lower()
    t = re.sub(r"[^\w\s-]", " ", t)
    t = re.sub(r"\b(the|a|an)\b", " ", t)
    return " ".join(t.split())


def normalize(answer: str, kind: str | None = None) -> str | None:
    """The canonical form of an already-extracted answer."""
    a = re.sub(r"[*_`]", "", answer).strip()
    if not a:
        return None
    if kind == "grid":
        g = parse_grid(a)
        return grid_text(g) if g else None
    if kind in (None, "choice"):
        m = _LETTER.match(a)
        if m and (kind == "choice" or len(a) <= 4):
            return (m.group(1) or m.group(2)).upper()
    if kind in (None, "number"):
        n = normalize_number(a)
        if n is not None and (kind == "number" or re.fullmatch(r"[\s$\d,.\-]+", a)):
            return n
    if kind == "number":
        return None
    return normalize_phrase(a) or None


def _segment(text: str) -> str:
    """The part of the text that states the answer: after the last 'Answer:' marker, a boxed
    expression, or else the whole text."""
    boxed = _BOXED.findall(text)
    if boxed:
        return boxed[-1]
    marks = list(_MARKER.finditer(text))
    if marks:
        return marks[-1].group(1).strip()
    return text


def extract(text: str, question: str = "", kind: str | None = None) -> str | None:
    """The normalised final answer in ``text``, or None when there is none."""
    if not text or not text.strip():
        return None
    if kind == "grid":  # the last grid anywhere: an "Answer:" marker may stand on the line above
        return normalize(text, kind)
    opts = options(question)
    seg = _segment(text)
    if opts or kind == "choice":
        return _choice(seg, text, opts)
    if kind == "number" or (kind is None and _NUMBER.search(seg) and len(seg.split()) <= 3):
        if seg is text:
            nums = _NUMBER.findall(text)
            return normalize_number(nums[-1]) if nums else None
        if "=" in seg:  # "the answer is 2 + 8 = 10": what follows the last "="
            after = normalize_number(seg.rsplit("=", 1)[1])
            if after is not None:
                return after
        return normalize_number(seg)
    first = re.split(r"(?<=[.!?])\s|\n", seg.strip(), maxsplit=1)[0] if seg.strip() else ""
    return normalize(first[:PHRASE_CHARS], kind) if first else None


def _choice(seg: str, text: str, opts: dict[str, str]) -> str | None:
    """An option letter. Small models name the option's text more reliably than its letter, so
    a named option wins over a letter; within a text, the option named first wins."""
    m = _LETTER.match(seg.strip())
    if m and (not opts or (m.group(1) or m.group(2)).upper() in opts):
        return (m.group(1) or m.group(2)).upper()
    for source in (seg, text):
        low = source.lower()
        named = [(low.find(v.lower()), k) for k, v in opts.items() if v and low.find(v.lower()) >= 0]
        if named:
            return min(named)[1]
        for m in _LETTER_ANYWHERE.finditer(source):
            letter = next(g for g in m.groups() if g).upper()
            if not opts or letter in opts:
                return letter
    return None
