"""What the classifier reads: the text as written and as a jailbreak would hide it.

``views(text)`` gives the text plus its decoded forms — base64 and hex runs decoded, ROT13 when
the text asks for it, leetspeak and spaced-out letters undone, Unicode look-alikes folded, zero-
width characters dropped, reversed text turned back when the text asks for it — so a request
wrapped in an encoding is judged on what it says. ``markers(text)`` names the wrapper tricks it
uses (role-play, "ignore previous instructions", fiction framing, developer mode, an encoding):
the check lowers its threshold when one is present. ``segments(text)`` splits a long prompt into
sentences, so a request buried in a long wrapper is judged on its own.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re
import unicodedata
from dataclasses import dataclass

_ZERO_WIDTH = re.compile("[\u200b-\u200f\u2060-\u2064\ufeff\u00ad]")
_LEET = str.maketrans({"4": "a", "@": "a", "3": "e", "1": "i", "!": "i", "0": "o", "5": "s", "$": "s",
                       "7": "t", "+": "t", "8": "b", "9": "g", "|": "l"})
_LEET_WORD = re.compile(r"\b(?=\w*[a-z])(?=\w*[013457@$])[\w@$!|+]{2,20}\b", re.IGNORECASE)
_SPACED = re.compile(r"\b(?:[A-Za-z][ .\-_*]){3,}[A-Za-z]\b")
_B64 = re.compile(r"(?<![A-Za-z0-9+/=])[A-Za-z0-9+/]{16,}={0,2}(?![A-Za-z0-9+/=])")
_HEX = re.compile(r"\b(?:[0-9a-fA-F]{2}[ :]?){8,}\b")
_ROT13_ASK = re.compile(r"\brot[- ]?13\b|\bcaesar\b", re.IGNORECASE)
_REVERSE_ASK = re.compile(r"\brevers(?:e|ed)\b|\bbackwards?\b", re.IGNORECASE)
_SENTENCE = re.compile(r"(?<=[.!?:;])\s+|\n+")

MARKERS: dict[str, re.Pattern[str]] = {k: re.compile(v, re.IGNORECASE) for k, v in {
    "ignore_instructions": r"\b(?:ignore|disregard|forget|override)\b.{0,40}\b(?:previous|prior|above|earlier|all|"
                           r"your|the)\b.{0,20}\b(?:instructions?|rules|guidelines|prompts?|polic(?:y|ies)|"
                           r"restrictions|programming)\b",
    "persona": r"\b(?:DAN|do anything now|developer mode|jailbr(?:o|ea)k(?:en)?|AIM|STAN|DUDE|evil (?:bot|ai|"
               r"assistant)|unfiltered|uncensored|no (?:restrictions|filters|limits|rules|guidelines|ethics))\b",
    "role_play": r"\b(?:pretend (?:to be|you(?:'re| are))|act as|you are now|role-?play|stay in character|"
                 r"from now on,? you|imagine you(?:'re| are)|play the (?:role|part) of|simulate)\b",
    "fiction": r"\b(?:hypothetical(?:ly)?|in a (?:fictional|fiction|novel|story|movie|screenplay|game)|for a "
               r"(?:novel|story|book|screenplay|script|movie)|my (?:grandma|grandmother) used to|purely "
               r"(?:fictional|educational)|for (?:research|educational) purposes only)\b",
    "encoding": r"\b(?:base ?64|rot[- ]?13|hex(?:adecimal)?|leet(?:speak)?|decode (?:this|the following)|"
                r"encoded|cipher|morse)\b",
    "no_refusal": r"\b(?:never refuse|do not refuse|don't refuse|without (?:any )?(?:warnings?|disclaimers?|"
                  r"refus\w*)|no (?:warnings?|disclaimers?|moral(?:izing)?|lectures?))\b",
}.items()}


@dataclass(frozen=True)
class View:
    text: str
    how: str  # "as written", "base64", "leet", …


def fold(text: str) -> str:
    """Unicode look-alikes folded (NFKC), zero-width characters dropped."""
    return _ZERO_WIDTH.sub("", unicodedata.normalize("NFKC", text))


def _printable(raw: bytes) -> str | None:
    try:
        s = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    letters = sum(ch.isalpha() or ch.isspace() for ch in s)
    return s if len(s) >= 6 and letters >= 0.8 * len(s) and " " in s.strip() else None


def _decoded(text: str) -> list[View]:
    out: list[View] = []
    for m in _B64.finditer(text):
        run = m.group(0)
        try:
            s = _printable(base64.b64decode(run + "=" * (-len(run) % 4), validate=False))
        except (binascii.Error, ValueError):
            s = None
        if s:
            out.append(View(s, "base64"))
    for m in _HEX.finditer(text):
        try:
            s = _printable(bytes.fromhex(re.sub(r"[ :]", "", m.group(0))))
        except ValueError:
            s = None
        if s:
            out.append(View(s, "hex"))
    return out


def views(text: str) -> list[View]:
    """The text and every decoded form that differs from it (the first view is the folded text)."""
    t = fold(text)
    out = [View(t, "as written")]
    out += _decoded(t)
    if _ROT13_ASK.search(t):
        out.append(View(codecs.decode(t, "rot13"), "rot13"))
    if _REVERSE_ASK.search(t):
        out.append(View(t[::-1], "reversed"))
    unspaced = _SPACED.sub(lambda m: re.sub(r"[ .\-_*]", "", m.group(0)), t)
    deleet = _LEET_WORD.sub(lambda m: m.group(0).lower().translate(_LEET), unspaced)
    if deleet != t:
        out.append(View(deleet, "leet"))
    seen: set[str] = set()
    return [v for v in out if not (v.text in seen or seen.add(v.text))]


def markers(text: str) -> list[str]:
    """The wrapper tricks ``text`` uses, by name (empty for a plain request)."""
    t = fold(text)
    found = [k for k, rx in MARKERS.items() if rx.search(t)]
    if _decoded(t) and "encoding" not in found:
        found.append("encoding")
    return found


def segments(text: str, max_words: int = 48) -> list[str]:
    """Sentences of ``text`` (long ones cut into ``max_words`` pieces), empty ones dropped."""
    out: list[str] = []
    for s in _SENTENCE.split(text):
        words = s.split()
        for i in range(0, len(words), max_words):
            piece = " ".join(words[i:i + max_words])
            if len(piece) > 3:
                out.append(piece)
    return out


_QUOTED = re.compile(r"\"([^\"\n]{2,400})\"|“([^”\n]{2,400})”|«([^»\n]{2,400})»")
_PART = re.compile(r"^\s*(?:part|piece|half|chunk|segment)\s*(?:\d+|one|two|three|[a-c])\s*[:=-]\s*(.+)$",
                   re.IGNORECASE | re.MULTILINE)


def reassemble(text: str) -> str | None:
    """A request split into pieces (payload splitting: "Part 1: \\"…\\"", then "Part 2: \\"…\\"", or
    quoted fragments across turns) put back together: the quoted fragments of ``text`` in order,
    else the text after each "Part N:" label. None when there are fewer than two pieces."""
    t = fold(text)
    quoted = [next(g for g in m.groups() if g) for m in _QUOTED.finditer(t)]
    parts = quoted if len(quoted) >= 2 else [m.group(1).strip() for m in _PART.finditer(t)]
    if len(parts) < 2:
        return None
    return " ".join(p.strip() for p in parts)
