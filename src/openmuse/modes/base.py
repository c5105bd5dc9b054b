"""What a mode is: a way of turning a conversation into one typed ``Result`` through an engine.

Each mode declares its own ``Options`` (a frozen pydantic model with ``extra="forbid"``,
deriving from ``ModeOptions``): the CLI builds its flags and ``MUSE_*`` variables from them,
the server validates the request's ``muse`` field against them, and ``/v1/models`` lists
``muse-<name>`` for every registered mode with its ``summary``. A field's ``description`` is
its help text.

Modes never hold a raw client: they build ``ChatRequest``s and call the engine contract
(``generate_many`` / ``stream``), so every mode works on every engine. The ``Assistant`` calls
``run`` with the conversation already validated and its media prepared; ``on_event`` receives
every ``Delta`` as it is decoded.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..engines.base import Engine
from ..errors import ConfigError, OptionError
from ..functions.spec import Output
from ..types import ChatRequest, Delta, Message

OnEvent = Callable[[Delta], None]


class ModeOptions(BaseModel):
    """Options every mode takes; a mode's own ``Options`` adds fields to these."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_tokens: int = Field(default=512, ge=1, description="Most tokens in the answer.")
    temperature: float = Field(default=0.0, ge=0.0, le=2.0, description="0 decodes greedily.")
    seed: int | None = Field(default=None, description="Sampling seed.")


class Mode(ABC):
    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""  # one line: --help, /v1/models
    Options: ClassVar[type[ModeOptions]] = ModeOptions
    # Whether ``run`` applies ``self.output`` (tools, response_format, stop, logprobs) to the
    # request that writes its answer itself; for a mode that does not, the ``Assistant`` asks
    # for the final shape in one more request after it (``shape``).
    shapes_output: ClassVar[bool] = False

    def __init__(self, options: ModeOptions | Mapping[str, Any] | None = None):
        self.options = self.parse_options(options)
        self.output = Output()  # set by the Assistant for each request
        self.answer_fields: dict[str, Any] = {}  # stop, logprobs, top_logprobs for the answer

    @classmethod
    def parse_options(cls, options: ModeOptions | Mapping[str, Any] | None) -> ModeOptions:
        """``options`` as this mode's ``Options``; ``ConfigError`` naming the first bad field
        (an unknown one: "mode thinking has no option 'agents' (it takes …)")."""
        if isinstance(options, cls.Options):
            return options
        values = dict(options.model_dump(exclude_unset=True) if isinstance(options, BaseModel) else options or {})
        unknown = sorted(set(values) - set(cls.Options.model_fields))
        if unknown:
            raise OptionError(f"mode {cls.name} has no option '{unknown[0]}' "
                              f"(it takes {', '.join(cls.Options.model_fields)})", unknown[0], unknown=True)
        try:
            return cls.Options(**values)
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(x) for x in first["loc"])
            raise OptionError(f"mode {cls.name} option {where}: {first['msg']}", where) from None

    @abstractmethod
    def run(self, engine: Engine, messages: Sequence[Message], on_event: OnEvent | None = None) -> Any:
        """The ``Result`` (``assistant.result``) of answering ``messages`` (validated, media prepared)."""

    def request(self, messages: Sequence[Message], **overrides) -> ChatRequest:
        o = self.options
        fields = dict(max_tokens=o.max_tokens, temperature=o.temperature, seed=o.seed)
        fields.update(overrides)
        return ChatRequest(messages=tuple(messages), **fields)

    def answer_request(self, messages: Sequence[Message], **overrides) -> ChatRequest:
        """The request that writes the answer: ``request`` with the output's shape (tools,
        response_format) and the answer's own fields (stop, logprobs)."""
        return self.request(messages, **{**self.output.request_fields(), **self.answer_fields, **overrides})

    def context_fields(self) -> dict[str, Any]:
        """For a request before the answer (reasoning): the tools listed, none callable."""
        if not self.output.tools:
            return {}
        return {"tools": tuple(t.to_openai() for t in self.output.tools), "tool_choice": "none"}

    def shape(self, engine: Engine, messages: Sequence[Message], result: Any) -> Any:
        """``result`` (a ``Result``) in the requested shape, for a mode that does not apply the
        output itself: the conversation, the mode's answer as a draft, and one request under the
        output's constraint (a call to a tool, or the JSON) that writes the final answer."""
        from .. import prompts
        from ..assistant.result import Result

        p = prompts.load("functions")["shape"]
        draft = result.answer.strip() or "(no answer)"
        msgs = [*messages, Message(role="assistant", content=draft), Message(role="user", content=p)]
        c = engine.generate(self.answer_request(msgs))
        assert isinstance(result, Result)
        return result.model_copy(update={
            "answer": c.text.strip(), "tool_calls": c.tool_calls, "finish_reason": c.finish_reason,
            "logprobs": c.logprobs, "usage": result.usage + c.usage.model_copy(update={"reasoning_tokens": 0}),
            "timings": {**result.timings, "shape_s": c.timings.get("wall_s", 0.0)}})


def check_messages(messages: Sequence[Message]) -> None:
    """A user message with text or a media part (an image alone is a question too)."""
    if not messages or not any(m.role == "user" and (m.text().strip() or has_media(m)) for m in messages):
        raise ConfigError("the question is empty")


def has_media(m: Message) -> bool:
    return not isinstance(m.content, str) and any(p.get("type") != "text" for p in m.content)


def last_question(messages: Sequence[Message]) -> str:
    """The text of the last user message."""
    return next((m.text() for m in reversed(messages) if m.role == "user"), "")


def with_system(messages: Sequence[Message], system: str | None) -> list[Message]:
    """Put ``system`` first unless the conversation already has a system message."""
    msgs = list(messages)
    if system and not any(m.role == "system" for m in msgs):
        msgs.insert(0, Message(role="system", content=system))
    return msgs
