"""Which template a build prompt wants, and what the prompt says outright.

- ``rank``: the templates by the prompt's nearest written examples (e5-small cosine over each
  template's ``examples``, embedded once per process, the best few similarity-weighted).
- ``hints``: what needs no model: a palette from colour words (``prompts/build.yaml``), a title
  given in quotes or after "called"/"named", a number of points to win, a speed.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from .. import prompts
from . import spec

K = 5  # examples voting for a template


@cache
def _index() -> tuple[list[str], Any]:
    from ..safety.classifier import Embedder

    labels, texts = [], []
    for name in spec.names():
        for ex in spec.load(name).examples:
            labels.append(name)
            texts.append(ex)
    return labels, Embedder().embed(texts)


def rank(prompt: str) -> list[tuple[str, float]]:
    """(template, score) best first; the score is the summed similarity of the template's
    examples among the ``K`` nearest, and the first entry's similarity is its best example's."""
    from ..safety.classifier import Embedder

    labels, rows = _index()
    sims = rows @ Embedder().embed([prompt])[0]
    order = sims.argsort()[::-1]
    votes: dict[str, float] = {}
    for j in order[:K]:
        votes[labels[j]] = votes.get(labels[j], 0.0) + float(sims[j])
    best = sorted(votes.items(), key=lambda kv: -kv[1])
    nearest = {labels[j]: float(sims[j]) for j in order[::-1]}  # each template's best example
    return [(name, round(nearest[name], 4)) for name, _ in best]


_TITLE = re.compile(r"""(?:["“]([^"”]{2,40})["”])|(?:\b(?:called|named|titled)\s+([A-Z0-9][\w'&-]*(?:\s+[A-Z0-9][\w'&-]*){0,4}))""")
_WIN = re.compile(r"\b(?:first to|up to|to)\s+(\d{1,2})\s+(?:points|goals|wins)\b", re.I)


def hints(prompt: str, template: spec.Template) -> dict[str, Any]:
    """Parameters the prompt states outright (only those the template has)."""
    out: dict[str, Any] = {}
    low = prompt.lower()
    params = template.params
    if "palette" in params:
        for name, words in prompts.load("build")["palette_words"].items():
            if any(re.search(rf"\b{re.escape(w)}\b", low) for w in words) and name in params["palette"].get("enum", ()):
                out["palette"] = name
                break
    m = _TITLE.search(prompt)
    if m and "title" in params:
        out["title"] = (m.group(1) or m.group(2)).strip()[: params["title"].get("maxLength", 40)]
    m = _WIN.search(prompt)
    if m:
        for k in ("winning_score", "target_score", "points_to_win"):
            if k in params:
                out[k] = int(m.group(1))
    for word in ("slow", "fast"):
        if re.search(rf"\b{word}\b", low):
            for k, v in params.items():
                if word in (v.get("enum") or ()):
                    out[k] = word
    return out
