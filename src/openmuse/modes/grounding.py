"""Grounding mode: point at what the question names in the last user message's one image.

One greedy request to an engine that sees images (``media/grounding.py`` asks in the model's
coordinate convention and parses any of them); the answer is the count and one line per
object, the trace (``GroundingTrace``) holds the annotations (0-1 of the image) and the
annotated PNG as a data URL. Registered as the mode ``ground`` (``muse --ground``, ``--mode
ground``, the model ``muse-ground``, or ``muse.ground`` on the server).
"""

from __future__ import annotations

import base64
import time
from collections.abc import Sequence
from typing import Literal

from pydantic import Field

from ..assistant.result import GroundingTrace, Result
from ..engines.base import Engine
from ..errors import ConfigError
from ..types import Delta, Message, Usage
from .base import Mode, ModeOptions, OnEvent, last_question


class GroundOptions(ModeOptions):
    max_tokens: int = Field(default=2048, ge=1, description="Most tokens in the model's list of objects.")
    ground_kind: Literal["points", "boxes"] = Field(default="points", description="Ask for points or for boxes.")
    ground_convention: Literal["auto", "qwen2.5-vl", "qwen3-vl", "molmo", "qwen2-vl"] = Field(
        default="auto", description="How the model writes coordinates (auto: from its name and its reply).")


class GroundingMode(Mode):
    name = "ground"
    summary = "count and point at what the question names in one image (a vision engine)"
    Options = GroundOptions
    options: GroundOptions

    def run(self, engine: Engine, messages: Sequence[Message], on_event: OnEvent | None = None) -> Result:
        from ..media.grounding import ground, render, to_png

        t0 = time.perf_counter()
        part, question = self.image_and_question(engine, messages)
        o = self.options
        g = ground(engine, part, question, convention=o.ground_convention, kind=o.ground_kind,
                   max_tokens=o.max_tokens)
        png = to_png(render(part, g))
        text = "\n".join(g.lines())
        if on_event:
            on_event(Delta(kind="answer", text=text))
        return Result(answer=text, usage=g.usage or Usage(), model=g.model or engine.model, mode=self.name,
                      timings={"wall_s": time.perf_counter() - t0},
                      trace=GroundingTrace(grounding=g, image="data:image/png;base64," + base64.b64encode(png).decode()))

    @staticmethod
    def image_and_question(engine: Engine, messages: Sequence[Message]) -> tuple[dict, str]:
        """The one image part of the last user message and its question; ``ConfigError`` otherwise."""
        last = next(m for m in reversed(messages) if m.role == "user")
        parts = last.content if isinstance(last.content, list) else []
        images = [p for p in parts if p.get("type") == "image_url"]
        if len(images) != 1 or any(p.get("type") not in ("text", "image_url") for p in parts):
            raise ConfigError("grounding needs exactly one image (and no audio or video) in the last user message")
        if "image" not in engine.capabilities.input_modalities:
            raise ConfigError(f"grounding needs an engine that sees images; {engine.model} takes only "
                              f"{', '.join(engine.capabilities.input_modalities)} (serve a vision model and use "
                              "--engine openai --modalities text,image)")
        question = last_question(messages)
        if not question.strip():
            raise ConfigError("grounding needs a question naming what to point at")
        return images[0], question
