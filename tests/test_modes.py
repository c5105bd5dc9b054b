"""Instant and Thinking modes on the embedded model (greedy), including budget forcing.
Run: `.venv/bin/pytest tests/test_modes.py`."""

from __future__ import annotations

import pytest

from openmuse.errors import ConfigError
from openmuse.modes import ModeSettings, create_mode
from openmuse.types import Message

Q = [Message(role="user", content="What is the capital of France?")]
WORD = [Message(role="user", content="Tom has 3 apples and buys 4 more. How many apples does he have now?")]


def test_instant_answers_without_reasoning(engine):
    c = create_mode("instant").run(engine, Q)
    assert "Paris" in c.text
    assert c.reasoning == "" and c.usage.reasoning_tokens == 0
    assert c.mode == "instant"


@pytest.mark.parametrize("budget", [8, 32])
def test_thinking_budget_is_enforced_and_an_answer_comes(engine, budget):
    events = []
    c = create_mode("thinking", ModeSettings(budget=budget, max_tokens=64)).run(engine, WORD, on_event=events.append)
    assert c.reasoning and c.text  # both present
    assert c.reasoning not in c.text and c.text not in c.reasoning  # kept apart
    assert c.usage.reasoning_tokens <= budget
    assert engine.count_tokens(c.reasoning) <= budget
    assert c.usage.completion_tokens > c.usage.reasoning_tokens
    kinds = [e.kind for e in events]
    assert kinds[0] == "reasoning" and kinds[-1] == "answer"
    assert "".join(e.text for e in events if e.kind == "reasoning").strip() == c.reasoning
    assert c.extra["budget"] == budget


def test_thinking_with_room_stops_by_itself(engine):
    c = create_mode("thinking", ModeSettings(budget=400, max_tokens=64)).run(engine, Q)
    assert "Paris" in c.text
    assert c.usage.reasoning_tokens <= 400


def test_empty_question_and_unknown_mode():
    with pytest.raises(ConfigError, match="empty"):
        create_mode("instant").run(None, [Message(role="user", content="   ")])
    with pytest.raises(ConfigError, match="unknown mode 'dreaming'"):
        create_mode("dreaming")
