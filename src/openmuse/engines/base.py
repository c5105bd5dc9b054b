"""The engine contract: everything a mode may ask of a model, and nothing more.

- ``generate(request) -> Completion``
- ``stream(request, control=None) -> Iterator[Delta | Completion]``: text and reasoning deltas,
  then the finished ``Completion`` (with usage) as the last item.
- ``generate_many(requests, on_delta=None, control=None) -> list[Completion]``: all requests as
  one batch where the engine can; ``on_delta(delta)`` sees every piece as it is decoded
  (``delta.index`` is the request's position), so a front door can draw one live lane per
  request. ``control`` (``control.py``) carries the request's cancellation, queue deadline and
  work cap; modes never pass it: the ``Assistant`` gives them a bound engine that does.
- ``capabilities``
- ``count_tokens(text)`` / ``count_prompt(request)``: token counts where the engine has the
  tokenizer (None otherwise), so modes can check a whole budget before decoding.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..types import Capabilities, ChatRequest, Completion, Delta
from .control import RequestControl

OnDelta = Callable[[Delta], None]


class EngineSettings(BaseModel):
    """How to reach a model. Every field has a CLI flag and a ``MUSE_*`` variable."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    engine: str = "local"
    # local: a GGUF path (default: the packaged SmolLM2-135M-Instruct); openai: the model name.
    model: str | None = None
    base_url: str | None = None
    api_key: str | None = None
    n_ctx: int = Field(default=8192, ge=256)
    # local: CPU threads; None follows the cores other processes leave free (engines/cpu.py).
    n_threads: int | None = Field(default=None, ge=1)
    # local: llama.cpp's extra weight buffer types (AMX, repacking); "auto" skips known-bad ones.
    extra_buffers: Literal["auto", "on", "off"] = "auto"
    n_seq_max: int = Field(default=16, ge=1, le=64)
    # local: greedy answers that do not depend on what else the engine decodes (no prefix reuse,
    # a lone token padded); see engines/local.py. For evaluations that compare runs.
    reproducible: bool = False
    timeout_s: float = Field(default=600.0, gt=0)
    # Whether the endpoint continues a final assistant message ("auto": assume yes for openai).
    prefill: Literal["auto", "yes", "no"] = "auto"
    reasoning: Literal["auto", "native", "prompted"] = "auto"
    # openai: the input modalities the served model takes (it cannot be probed); text always.
    modalities: tuple[Literal["text", "image", "audio", "video"], ...] = ("text",)

    @field_validator("modalities", mode="before")
    @classmethod
    def _coerce_modalities(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = [x.strip().lower() for x in v.split(",") if x.strip()]
        v = tuple(dict.fromkeys(["text", *v]))
        return v


class Engine(ABC):
    name: str = ""

    @property
    @abstractmethod
    def model(self) -> str: ...

    @property
    @abstractmethod
    def capabilities(self) -> Capabilities: ...

    @abstractmethod
    def generate_many(
        self, requests: Sequence[ChatRequest], on_delta: OnDelta | None = None,
        control: RequestControl | None = None,
    ) -> list[Completion]: ...

    @abstractmethod
    def stream(self, request: ChatRequest, control: RequestControl | None = None) -> Iterator[Delta | Completion]: ...

    def generate(self, request: ChatRequest, control: RequestControl | None = None) -> Completion:
        return self.generate_many([request], control=control)[0]

    def count_tokens(self, text: str) -> int | None:
        """Tokens in ``text`` by the model's tokenizer, where the engine has one."""
        return None

    def count_prompt(self, request: ChatRequest) -> int | None:
        """Tokens of ``request``'s whole prompt (template included), where the engine can tell."""
        return None

    def close(self) -> None:  # noqa: B027 - optional hook
        pass
