"""Separate reasoning from the answer in text that carries it inside ``<think>…</think>``.

Works on a stream: text arrives in arbitrary chunks, and a tag may be split across them, so the
splitter holds back any tail that could still become a tag.
"""

from __future__ import annotations

from collections.abc import Iterator

from ..types import Delta

OPEN, CLOSE = "<think>", "</think>"


def _partial_suffix(text: str, tag: str) -> int:
    """Length of the longest tail of ``text`` that is a proper prefix of ``tag``."""
    for n in range(min(len(tag) - 1, len(text)), 0, -1):
        if tag.startswith(text[-n:]):
            return n
    return 0


class ThinkSplitter:
    """Feed text chunks; get reasoning and answer deltas.

    ``in_reasoning=True`` starts inside a think block (the prompt already opened it).
    Text before an opening tag at the very start of the output is ignored whitespace; an opening
    tag later in the answer is treated as answer text (models quote tags)."""

    def __init__(self, in_reasoning: bool = False, index: int = 0):
        self.in_reasoning = in_reasoning
        self.index = index
        self._buf = ""
        self._seen_answer = False
        self._started = in_reasoning
        self.reasoning = ""
        self.answer = ""

    def feed(self, chunk: str) -> Iterator[Delta]:
        self._buf += chunk
        while self._buf:
            if self.in_reasoning:
                pos = self._buf.find(CLOSE)
                if pos >= 0:
                    yield from self._emit("reasoning", self._buf[:pos])
                    self._buf = self._buf[pos + len(CLOSE):]
                    self.in_reasoning = False
                    self._started = True
                    continue
                keep = _partial_suffix(self._buf, CLOSE)
                yield from self._emit("reasoning", self._buf[: len(self._buf) - keep])
                self._buf = self._buf[len(self._buf) - keep:]
                return
            if not self._started and not self._seen_answer:
                stripped = self._buf.lstrip()
                if stripped.startswith(OPEN):
                    self._buf = stripped[len(OPEN):]
                    self.in_reasoning = True
                    self._started = True
                    continue
                if OPEN.startswith(stripped):  # could still become "<think>"
                    return
            yield from self._emit("answer", self._buf)
            self._buf = ""

    def close(self) -> Iterator[Delta]:
        if self._buf:
            yield from self._emit("reasoning" if self.in_reasoning else "answer", self._buf)
            self._buf = ""

    def _emit(self, kind: str, text: str) -> Iterator[Delta]:
        if not text:
            return
        if kind == "answer":
            if not self._seen_answer:
                # Drop the blank lines that separate </think> from the answer.
                text = text.lstrip() if self._started else text
                if not text:
                    return
            self._seen_answer = True
            self.answer += text
        else:
            self.reasoning += text
        yield Delta(kind=kind, text=text, index=self.index)


def split_think(text: str, in_reasoning: bool = False) -> tuple[str, str]:
    """(reasoning, answer) of a whole text."""
    s = ThinkSplitter(in_reasoning=in_reasoning)
    for _ in s.feed(text):
        pass
    for _ in s.close():
        pass
    return s.reasoning.strip(), s.answer.strip()
