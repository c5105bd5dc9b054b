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
from ..types import Message

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
    image_url: _URL


class InputAudioPart(_Strict):
    type: Literal["input_audio"]
    input_audio: _Audio


class AudioURLPart(_Strict):
    type: Literal["audio_url"]
    audio_url: _URL


class VideoURLPart(_Strict):
    type: Literal["video_url"]
    video_url: _URL


Part = Annotated[TextPart | ImagePart | InputAudioPart | AudioURLPart | VideoURLPart, Field(discriminator="type")]


class ChatMessage(BaseModel):
    """One message as a client sends it: a string, or a list of typed content parts."""

    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "user", "assistant", "tool"]
    content: StrictStr | list[Part]

    def to_message(self) -> Message:
        if isinstance(self.content, str):
            return Message(role=self.role, content=self.content)
        return Message(role=self.role, content=[p.model_dump(exclude_none=True) for p in self.content])


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

    def mode_values(self) -> dict[str, Any]:
        """The keys meant for the mode."""
        return dict(self.model_extra or {})


class StreamOptions(BaseModel):
    include_usage: bool = False


class ChatCompletionBody(BaseModel):
    """Fields OpenAI clients send that OpenMuse does not use are accepted and ignored."""

    model_config = ConfigDict(extra="ignore")

    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    n: int | None = None  # only 1 is served (checked by the handler: a 400 naming ``n``)
    stream: bool = False
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
