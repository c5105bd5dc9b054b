"""``muse.ground`` on the server: the grounding mode for the last user message's image."""

from __future__ import annotations

import base64
from typing import Any

from ..engines import Engine
from ..modes.base import Mode
from ..types import Completion, Delta, Message, Usage
from .errors import APIError
from .schemas import ChatCompletionBody, GroundOptions


class GroundingMode(Mode):
    """``muse.ground``: one grounding request for the last user message's image; the answer is
    the count and the points, ``muse.grounding`` the annotations (0-1 of the image) and
    ``muse.grounding_image`` the annotated PNG as a data URL (returned, not stored: the store
    keeps its hash and size)."""

    name = "grounding"

    def __init__(self, options: GroundOptions, part: dict[str, Any], question: str):
        super().__init__()
        self.options, self.part, self.question = options, part, question

    def run(self, engine: Engine, messages, on_event=None) -> Completion:
        from ..media.grounding import ground, render, to_png

        g = ground(engine, self.part, self.question, convention=self.options.convention, kind=self.options.kind)
        png = to_png(render(self.part, g))
        text = "\n".join(g.lines())
        if on_event:
            on_event(Delta(kind="answer", text=text))
        return Completion(text=text, usage=g.usage or Usage(), model=g.model or engine.model, mode=self.name,
                          extra={"grounding": g.to_json(),
                                 "grounding_image": "data:image/png;base64," + base64.b64encode(png).decode()})


def grounding_mode(body: ChatCompletionBody, messages: list[Message], engine: Engine) -> GroundingMode:
    last = next(m for m in reversed(messages) if m.role == "user")
    images = [p for p in (last.content if isinstance(last.content, list) else []) if p.get("type") == "image_url"]
    if len(images) != 1:
        raise APIError(400, "muse.ground needs exactly one image_url part in the last user message",
                       param="muse.ground")
    if "image" not in engine.capabilities.input_modalities:
        raise APIError(400, f"muse.ground needs an engine that sees images; {engine.model} takes only "
                            f"{', '.join(engine.capabilities.input_modalities)}", param="muse.ground")
    if not last.text().strip():
        raise APIError(400, "muse.ground needs a question naming what to point at", param="messages")
    opts = body.muse.ground if isinstance(body.muse.ground, GroundOptions) else GroundOptions()
    return GroundingMode(opts, images[0], last.text())
