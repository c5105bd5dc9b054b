"""The one request type in and the one result type out, shared by engines, modes and front doors.

Requests follow the OpenAI chat format (``messages`` of ``{"role", "content"}``). A final
``assistant`` message is a *prefill*: the engine continues it instead of starting a new turn
(vLLM's ``continue_final_message``). Modes use it for budget forcing.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class ToolCall(BaseModel):
    """One function call the model made (OpenAI's ``tool_calls`` item, flattened):
    ``arguments`` is the JSON text of the arguments object."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    name: str
    arguments: str = "{}"

    def to_openai(self) -> dict[str, Any]:
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": self.arguments}}


class TokenLogprob(BaseModel):
    """One generated token with its log-probability and the most likely alternatives."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    token: str
    logprob: float
    bytes: list[int] | None = None
    top: list[tuple[str, float]] = Field(default_factory=list)


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Literal["system", "user", "assistant", "tool"]
    # A string, or a list of OpenAI content parts ({"type": "text", "text": ...}, ...).
    content: str | list[dict[str, Any]]
    name: str | None = None  # the speaker's name (OpenAI's ``name``)
    tool_calls: tuple[ToolCall, ...] = ()  # assistant: the calls it made
    tool_call_id: str | None = None  # tool: the call this message answers

    def text(self) -> str:
        """The text of this message; non-text parts are not text and are left out here."""
        if isinstance(self.content, str):
            return self.content
        return "".join(p.get("text", "") for p in self.content if p.get("type") == "text")


class ChatRequest(BaseModel):
    """One generation request. Sampling fields follow the OpenAI names."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    messages: tuple[Message, ...]
    max_tokens: int = Field(default=512, ge=1)
    temperature: float = Field(default=0.0, ge=0.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    top_k: int = Field(default=0, ge=0)
    seed: int | None = None
    stop: tuple[str, ...] = ()
    logprobs: bool = False
    top_logprobs: int = Field(default=0, ge=0, le=20)
    # Function calling and structured output, in OpenAI's request shapes (checked by
    # ``functions.spec``): the local engine renders the tools into the prompt and constrains the
    # output with a grammar; HTTP engines pass them through.
    tools: tuple[dict[str, Any], ...] = ()
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool = True
    response_format: dict[str, Any] | None = None
    # Keep generating past end-of-sequence until max_tokens (benchmarks want fixed lengths).
    ignore_eos: bool = False

    @field_validator("messages", mode="before")
    @classmethod
    def _coerce_messages(cls, v: Any) -> Any:
        return tuple(Message(**m) if isinstance(m, dict) else m for m in v)

    @field_validator("stop", mode="before")
    @classmethod
    def _coerce_stop(cls, v: Any) -> Any:
        if v is None:
            return ()
        if isinstance(v, str):
            return (v,)
        return tuple(v)

    @property
    def prefill(self) -> str | None:
        """Text of a final assistant message to continue, if the request ends with one."""
        if self.messages and self.messages[-1].role == "assistant":
            return self.messages[-1].text()
        return None

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0


class Usage(BaseModel):
    """Token counts. ``completion_tokens`` includes ``reasoning_tokens`` (the OpenAI convention).

    ``prefilled_tokens``: prompt tokens the engine computed; ``cached_tokens``: prompt tokens it
    found already in its cache (local engine). ``estimated``: the server reported no usage and
    the counts were estimated from the stream; ``reasoning_estimated``: the reasoning share was
    estimated from characters."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    prefilled_tokens: int = 0
    cached_tokens: int = 0
    estimated: bool = False
    reasoning_estimated: bool = False

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            reasoning_tokens=self.reasoning_tokens + other.reasoning_tokens,
            prefilled_tokens=self.prefilled_tokens + other.prefilled_tokens,
            cached_tokens=self.cached_tokens + other.cached_tokens,
            estimated=self.estimated or other.estimated,
            reasoning_estimated=self.reasoning_estimated or other.reasoning_estimated,
        )

    def to_openai(self) -> dict[str, Any]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
            "completion_tokens_details": {"reasoning_tokens": self.reasoning_tokens},
        }


# content_filter: a check answered; tool_calls: the answer is function calls
FinishReason = Literal["stop", "length", "budget", "content_filter", "tool_calls"]


class Completion(BaseModel):
    """What every engine call returns (modes return the typed ``assistant.result.Result``)."""

    text: str = ""  # the answer
    reasoning: str = ""  # reasoning kept apart from the answer
    finish_reason: FinishReason = "stop"
    usage: Usage = Field(default_factory=Usage)
    model: str = ""
    # wall_s always; engines add prompt_s / decode_s.
    timings: dict[str, float] = Field(default_factory=dict)
    # Log-probability of each generated token, when the request asked for them.
    token_logprobs: list[float] | None = None
    # The answer's tokens with their log-probabilities (and alternatives), when asked for.
    logprobs: list[TokenLogprob] | None = None
    tool_calls: list[ToolCall] = Field(default_factory=list)


DeltaKind = Literal["reasoning", "answer", "agent", "status"]


class Delta(BaseModel):
    """A piece of streamed text. ``index`` tells the sequence apart in ``generate_many``.

    Modes with several agents send ``agent`` pieces (``index`` is the agent) and ``status``
    events (``text`` is ``launched``, ``done`` or ``skipped``) so front doors can draw lanes; a
    ``status`` with ``index`` -1 is the mode's own progress (build: "checking in Chromium")."""

    model_config = ConfigDict(frozen=True)

    kind: DeltaKind
    text: str
    index: int = 0


# GGUF metadata key that `muse train compress` writes and the local engine reads into
# ``Capabilities.answers_in_reasoning``.
ANSWERS_IN_REASONING_KEY = "openmuse.thinking.answers_in_reasoning"


class Capabilities(BaseModel):
    model_config = ConfigDict(frozen=True)

    input_modalities: tuple[str, ...] = ("text",)
    logprobs: bool = False
    context_length: int | None = None
    parallel_sequences: int = 1
    # Continues a final assistant message (needed for budget forcing without a new turn).
    assistant_prefill: bool = False
    # The model reasons natively inside <think>...</think> or reasoning_content.
    native_reasoning: bool = False
    # The model was trained to end its reasoning with its answer (``muse train compress`` marks the
    # GGUF it writes): Thinking reads the answer there instead of forcing a separate answer phase.
    answers_in_reasoning: bool = False
    # Tools and response_format are held by a grammar in the engine (llama.cpp GBNF); other
    # engines pass them on to the server.
    grammar: bool = False
