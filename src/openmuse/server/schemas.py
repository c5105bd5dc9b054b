"""Request bodies of the HTTP API (the OpenAI chat-completions schema, plus one ``muse`` field).

Content parts are typed: a text part's text must be a string, a media part needs its object
(``image_url: {url}``, ``input_audio: {data, format}``, ...), an unknown part type is refused.
A bad part is a 400 naming where it is (``messages.0.content.1.text``); what a media part holds
(its bytes, format and size) is checked later by ``media/``."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr

from ..types import Message

MODELS = {"muse-instant": "instant", "muse-thinking": "thinking", "muse-contemplating": "contemplating"}
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
    """Visual grounding of the last user message's image (``media/grounding.py``)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["points", "boxes"] = "points"
    convention: Literal["auto", "qwen2.5-vl", "qwen3-vl", "molmo", "qwen2-vl"] = "auto"


class MuseOptions(BaseModel):
    """OpenMuse's own options, all optional, in the request's ``muse`` field."""

    model_config = ConfigDict(extra="forbid")

    agents: int | None = Field(default=None, ge=1, le=16)
    budget: int | None = Field(default=None, ge=1)
    early_stop: bool | None = None
    aggregator: Literal["synthesis", "confidence", "majority"] | None = None
    conversation_id: str | None = None  # append to this stored conversation
    store: bool = True  # keep the exchange in the conversation store
    # File names of the media parts of the last user message, in order (labels and errors use them)
    media_names: list[str] | None = Field(default=None, max_length=64)
    # Point at what the question names in its image: true, or {"kind": ..., "convention": ...}
    ground: bool | GroundOptions = False


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
        if self.model in MODELS:
            return MODELS[self.model]
        if self.model == "muse":
            return EFFORT.get(self.reasoning_effort or "low", "instant")
        return None


class RenameBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=200)


def model_list(engine_model: str) -> dict[str, Any]:
    return {"object": "list", "data": [
        {"id": name, "object": "model", "created": 0, "owned_by": "openmuse",
         "muse": {"mode": mode, "engine_model": engine_model}}
        for name, mode in [*MODELS.items(), ("muse", "by reasoning_effort")]
    ]}
