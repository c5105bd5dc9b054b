"""Request bodies of the HTTP API (the OpenAI chat-completions schema, plus one ``muse`` field).

Models: ``muse-<mode>`` for every registered mode (an entry-point mode is served with no change
here), and ``muse``, whose mode follows ``reasoning_effort``. The ``muse`` field holds the
server's own keys (``MuseOptions``) and the chosen mode's options, validated against that
mode's ``Options`` (``options_for``): an unknown one is a 400 naming it.

Content parts are typed: a text part's text must be a string, a media part needs its object
(``image_url: {url}``, ``input_audio: {data, format}``, ...), an unknown part type is refused.
A bad part is a 400 naming where it is (``messages.0.content.1.text``); what a media part holds
(its bytes, format and size) is checked later by ``media/``."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr

from .. import registry
from ..functions import Output, SpecError
from ..types import Message, ToolCall
from .errors import APIError

PREFIX = "muse-"
EFFORT = {"none": "instant", "minimal": "instant", "low": "instant", "medium": "thinking", "high": "contemplating"}


class _Strict(BaseModel):
    """A part or field of a part: unknown keys are refused (400 ``invalid_content_part``)."""

    model_config = ConfigDict(extra="forbid")


class _URL(_Strict):
    url: StrictStr = Field(min_length=1)
    detail: Literal["auto", "low", "high"] | None = None


class _Audio(_Strict):
    data: StrictStr
    format: StrictStr


class TextPart(_Strict):
    type: Literal["text"]
    text: StrictStr


class ImagePart(_Strict):
    type: Literal["image_url"]
    image_url: _URL | StrictStr  # some clients send the URL as a bare string

    def model_post_init(self, _context: Any) -> None:
        if isinstance(self.image_url, str):
            self.image_url = _URL(url=self.image_url)


class InputAudioPart(_Strict):
    type: Literal["input_audio"]
    input_audio: _Audio


class AudioURLPart(_Strict):
    type: Literal["audio_url"]
    audio_url: _URL


class VideoURLPart(_Strict):
    type: Literal["video_url"]
    video_url: _URL


class RefusalPart(_Strict):
    """An assistant message's refusal (kept as its text)."""

    type: Literal["refusal"]
    refusal: StrictStr


class FilePart(BaseModel):
    """A ``file`` part: recognised so that the refusal can say what to send instead."""

    model_config = ConfigDict(extra="allow")
    type: Literal["file"]


Part = Annotated[TextPart | ImagePart | InputAudioPart | AudioURLPart | VideoURLPart | RefusalPart | FilePart,
                 Field(discriminator="type")]


class FunctionCall(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: StrictStr = Field(min_length=1)
    arguments: StrictStr = "{}"


class ToolCallIn(BaseModel):
    """An assistant message's tool call, as the client got it back."""

    model_config = ConfigDict(extra="ignore")

    id: StrictStr = Field(min_length=1)
    type: Literal["function"] = "function"
    function: FunctionCall


class ChatMessage(BaseModel):
    """One message as a client sends it: a string, or a list of typed content parts."""

    model_config = ConfigDict(extra="forbid")

    # ``developer`` is OpenAI's newer name for ``system`` (served as system)
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: StrictStr | list[Part] | None = None  # None: an assistant message that only calls tools
    name: StrictStr | None = Field(default=None, max_length=64)
    tool_calls: list[ToolCallIn] | None = None  # assistant
    tool_call_id: StrictStr | None = None  # tool: the call it answers
    refusal: StrictStr | None = None  # assistant: a refusal it gave

    def to_message(self) -> Message:
        role = "system" if self.role == "developer" else self.role
        calls = tuple(ToolCall(id=c.id, name=c.function.name, arguments=c.function.arguments)
                      for c in self.tool_calls or ())
        fields: dict[str, Any] = {"name": self.name, "tool_calls": calls, "tool_call_id": self.tool_call_id}
        if self.content is None:
            return Message(role=role, content=self.refusal or "", **fields)
        if isinstance(self.content, str):
            return Message(role=role, content=self.content, **fields)
        parts = []
        for p in self.content:
            if isinstance(p, RefusalPart):
                parts.append({"type": "text", "text": p.refusal})
            elif isinstance(p, FilePart):
                raise APIError(400, "file parts are not served: send text as text parts, images as image_url, "
                                    "audio as input_audio", code="unsupported_content_part", param="messages")
            else:
                parts.append(p.model_dump(exclude_none=True))
        return Message(role=role, content=parts, **fields)


class GroundOptions(BaseModel):
    """``muse.ground`` as an object: the grounding mode's options under their short names."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["points", "boxes"] = "points"
    convention: Literal["auto", "qwen2.5-vl", "qwen3-vl", "molmo", "qwen2-vl"] = "auto"


class MuseOptions(BaseModel):
    """OpenMuse's own keys in the request's ``muse`` field; any other key is an option of the
    chosen mode (``agents``, ``budget``, ``agent_tokens``, …), checked against its ``Options``."""

    model_config = ConfigDict(extra="allow")

    conversation_id: str | None = None  # append to this stored conversation
    store: bool = True  # keep the exchange in the conversation store
    # File names of the media parts of the last user message, in order (labels and errors use them)
    media_names: list[str] | None = Field(default=None, max_length=64)
    # Point at what the question names in its image (the mode `ground`): true, or {"kind", "convention"}
    ground: bool | GroundOptions = False
    # The health profile for this request: "health" always, "off" never, "auto"/None: the server's
    # default (medical questions). The safety layer itself is the server's to set, not the client's.
    profile: Literal["auto", "health", "off"] | None = None
    # Stream OpenMuse's progress as named SSE events (muse.agent, muse.synthesis, muse.replaced,
    # muse.result) besides the standard chunks; the web app asks for them, OpenAI clients do not.
    events: bool = False

    def mode_values(self) -> dict[str, Any]:
        """The keys meant for the mode."""
        return dict(self.model_extra or {})


class StreamOptions(BaseModel):
    include_usage: bool = False


MAX_N = 8  # most choices in one request (each is a full answer of the mode)


class ChatCompletionBody(BaseModel):
    """Fields OpenAI clients send that OpenMuse does not use (``user``, ``metadata``,
    penalties, …) are accepted and ignored."""

    model_config = ConfigDict(extra="ignore")

    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    n: int | None = None  # choices (at most MAX_N, checked by the handler), answered together
    stream: bool = False
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    functions: list[dict[str, Any]] | None = None  # the legacy spelling of tools
    function_call: str | dict[str, Any] | None = None  # … and of tool_choice
    response_format: dict[str, Any] | None = None
    stop: str | list[str] | None = None
    logprobs: bool = False
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    seed: int | None = None
    reasoning_effort: Literal["none", "minimal", "low", "medium", "high"] | None = None
    muse: MuseOptions = Field(default_factory=MuseOptions)

    def chat_messages(self) -> list[Message]:
        return [m.to_message() for m in self.messages]

    def output(self) -> Output:
        """The answer's shape (``functions.spec``); a bad value is a 400 naming it."""
        tools, choice = self.tools, self.tool_choice
        if tools is None and self.functions:
            tools = [{"type": "function", "function": f} for f in self.functions]
            fc = self.function_call
            choice = {"type": "function", "function": fc} if isinstance(fc, dict) else fc
        try:
            return Output.parse(tools, choice, self.parallel_tool_calls, self.response_format)
        except SpecError as e:
            raise APIError(400, str(e), code="invalid_value", param=e.param) from None

    def answer_fields(self) -> dict[str, Any]:
        """``stop``, ``logprobs`` and ``top_logprobs`` for the request that writes the answer."""
        stops = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        if len(stops) > 4 or any(not s for s in stops):
            raise APIError(400, "stop takes at most 4 non-empty strings", code="invalid_value", param="stop")
        if self.top_logprobs and not self.logprobs:
            raise APIError(400, "top_logprobs needs logprobs: true", code="invalid_value", param="top_logprobs")
        out: dict[str, Any] = {}
        if stops:
            out["stop"] = tuple(stops)
        if self.logprobs:
            out.update(logprobs=True, top_logprobs=self.top_logprobs or 0)
        return out

    def media_names(self) -> dict[tuple[int, int], str]:
        """(message, part) -> file name for the media parts of the last user message."""
        names = [n.strip()[:200] for n in self.muse.media_names or [] if n.strip()]
        last = next((i for i in range(len(self.messages) - 1, -1, -1) if self.messages[i].role == "user"), None)
        if last is None or not names or isinstance(self.messages[last].content, str):
            return {}
        where = [(last, pi) for pi, p in enumerate(self.messages[last].content) if p.type != "text"]
        return dict(zip(where, names))

    def mode_name(self) -> str | None:
        """The mode this request asks for, or None when the model name is unknown."""
        if self.muse.ground:
            return "ground"
        if self.model.startswith(PREFIX) and self.model[len(PREFIX):] in registry.names("mode"):
            return self.model[len(PREFIX):]
        if self.model == "muse":
            return EFFORT.get(self.reasoning_effort or "low", "instant")
        return None

    def mode_values(self, takes: dict[str, Any]) -> dict[str, Any]:
        """The options for a mode taking the fields ``takes``: the OpenAI sampling fields it
        takes, then the ``muse`` keys (``muse.ground``'s object as the grounding options)."""
        values: dict[str, Any] = {}
        openai = {"max_tokens": self.max_completion_tokens or self.max_tokens, "temperature": self.temperature,
                  "seed": self.seed}
        values.update({k: v for k, v in openai.items() if v is not None and k in takes})
        if isinstance(self.muse.ground, GroundOptions):
            values.update(ground_kind=self.muse.ground.kind, ground_convention=self.muse.ground.convention)
        values.update(self.muse.mode_values())
        return values


class RenameBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=200)


def model_list(engine_model: str) -> dict[str, Any]:
    """``muse-<mode>`` for every registered mode (with its summary and options), and ``muse``."""
    from ..modes import mode_classes

    data = [{"id": PREFIX + name, "object": "model", "created": 0, "owned_by": "openmuse",
             "muse": {"mode": name, "summary": cls.summary, "engine_model": engine_model,
                      "options": sorted(cls.Options.model_fields)}}
            for name, cls in mode_classes().items()]
    data.append({"id": "muse", "object": "model", "created": 0, "owned_by": "openmuse",
                 "muse": {"mode": "by reasoning_effort", "engine_model": engine_model,
                          "reasoning_effort": EFFORT}})
    return {"object": "list", "data": data}
