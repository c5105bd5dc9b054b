"""Separating <think>…</think> reasoning from the answer, whole and in streamed chunks of every
size (tags split across chunk boundaries). Run: `.venv/bin/pytest tests/test_reasoning_split.py`."""

from __future__ import annotations

import pytest

from openmuse.engines.reasoning import ThinkSplitter, split_think

TEXT = "<think>\nFirst 2+2 is 4. A <b> tag.\n</think>\n\nThe answer is 4."


def test_split_whole():
    assert split_think(TEXT) == ("First 2+2 is 4. A <b> tag.", "The answer is 4.")
    assert split_think("Just an answer.") == ("", "Just an answer.")
    assert split_think("still thinking, cut off", in_reasoning=True) == ("still thinking, cut off", "")
    assert split_think("reasoning</think>answer", in_reasoning=True) == ("reasoning", "answer")


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 100])
def test_split_streamed(size):
    s = ThinkSplitter()
    deltas = []
    for i in range(0, len(TEXT), size):
        deltas.extend(s.feed(TEXT[i:i + size]))
    deltas.extend(s.close())
    reasoning = "".join(d.text for d in deltas if d.kind == "reasoning")
    answer = "".join(d.text for d in deltas if d.kind == "answer")
    assert reasoning.strip() == "First 2+2 is 4. A <b> tag."
    assert answer == "The answer is 4."


def test_think_tag_inside_answer_is_answer_text():
    assert split_think("Use the <think> tag like this.") == ("", "Use the <think> tag like this.")
