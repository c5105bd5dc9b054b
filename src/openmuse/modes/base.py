"""What a mode is: a way of turning a conversation into one ``Completion`` through an engine.

Modes never hold a raw client: they build ``ChatRequest``s and call the engine contract, so every
mode works on every engine. ``on_event`` receives every ``Delta`` as it is decoded.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ..engines.base import Engine
from ..errors import ConfigError
from ..types import ChatRequest, Completion, Delta, Message

OnEvent = Callable[[Delta], None]


class ModeSettings(BaseModel):
    """Options common to every mode; a mode ignores what it does not use."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_tokens: int = Field(default=512, ge=1)
    temperature: float = Field(default=0.0, ge=0.0)
    seed: int | None = None
    budget: int = Field(default=256, ge=1)  # thinking tokens (Thinking; per agent in Contemplating)
    # Contemplating
    agents: int = Field(default=4, ge=1, le=16)
    early_stop: bool = True
    # What decides Contemplating's final answer. The confidence-weighted vote measured best on
    # the embedded model (docs/bench); "synthesis" lets the synthesizer write it.
    aggregator: Literal["synthesis", "confidence", "majority"] = "confidence"
    # Early stop (see contemplating.vote.settled): the least confidence of each agent in a
    # unanimous wave, and the weight the remaining agents are each assumed to carry against a
    # lead. Chosen on generated problems of seed 11 (bench/contemplate.py measures seed 0).
    settle_confidence: float = Field(default=0.5, ge=0.0, le=1.0)
    settle_weight: float = Field(default=0.7, gt=0.0, le=1.0)


class Mode(ABC):
    name: str = ""

    def __init__(self, settings: ModeSettings | None = None):
        self.settings = settings or ModeSettings()

    @abstractmethod
    def run(self, engine: Engine, messages: Sequence[Message], on_event: OnEvent | None = None) -> Completion: ...

    def request(self, messages: Sequence[Message], **overrides) -> ChatRequest:
        s = self.settings
        fields = dict(max_tokens=s.max_tokens, temperature=s.temperature, seed=s.seed)
        fields.update(overrides)
        return ChatRequest(messages=tuple(messages), **fields)


def check_messages(messages: Sequence[Message]) -> None:
    """A user message with text or a media part (an image alone is a question too)."""
    if not messages or not any(m.role == "user" and (m.text().strip() or has_media(m)) for m in messages):
        raise ConfigError("the question is empty")


def has_media(m: Message) -> bool:
    return not isinstance(m.content, str) and any(p.get("type") != "text" for p in m.content)


def with_system(messages: Sequence[Message], system: str | None) -> list[Message]:
    """Put ``system`` first unless the conversation already has a system message."""
    msgs = list(messages)
    if system and not any(m.role == "system" for m in msgs):
        msgs.insert(0, Message(role="system", content=system))
    return msgs
