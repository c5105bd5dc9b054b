"""The legacy ``POST /v1/completions`` for old clients, over the same pipeline.

The prompt is served as one user turn of a chat completion (the modes are chat modes; raw
continuation of a text is not offered): ``text_completion`` objects come back, streamed as
``text_completion`` chunks. A list of prompts is refused (send one request each).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..assistant import Result
from ..types import Delta
from .chat import openai_finish, openai_usage, total_usage
from .chat_sse import Trim, sse
from .errors import APIError
from .schemas import ChatCompletionBody, MuseOptions


class CompletionsBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str
    prompt: str | list[str]
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    n: int | None = None
    stream: bool = False
    stop: str | list[str] | None = None
    seed: int | None = None
    stream_options: dict[str, Any] | None = None
    muse: MuseOptions = Field(default_factory=MuseOptions)

    def to_chat(self) -> ChatCompletionBody:
        prompt = self.prompt
        if isinstance(prompt, list):
            if len(prompt) != 1:
                raise APIError(400, "prompt must be one string (send one request per prompt)", param="prompt")
            prompt = prompt[0]
        return ChatCompletionBody(model=self.model, messages=[{"role": "user", "content": prompt}],
                                  max_tokens=self.max_tokens, temperature=self.temperature, top_p=self.top_p,
                                  n=self.n, stream=self.stream, stop=self.stop, seed=self.seed,
                                  stream_options=self.stream_options, muse=self.muse)


def response(body: CompletionsBody, results: list[Result]) -> dict[str, Any]:
    return {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion", "created": int(time.time()),
            "model": body.model,
            "choices": [{"index": i, "text": r.answer, "logprobs": None, "finish_reason": openai_finish(r)}
                        for i, r in enumerate(results)],
            "usage": openai_usage(total_usage(results))}


class CompletionsFormat:
    """``text_completion`` chunks: answer text as it comes, the finish reason, ``[DONE]``."""

    def __init__(self, body: CompletionsBody, n: int):
        self.body, self.id, self.created = body, f"cmpl-{uuid.uuid4().hex}", int(time.time())
        self.trims = [Trim() for _ in range(n)]
        self.usage = bool((body.stream_options or {}).get("include_usage"))

    def _chunk(self, i: int, text: str, finish: str | None = None) -> str:
        return sse({"id": self.id, "object": "text_completion", "created": self.created, "model": self.body.model,
                    "choices": [{"index": i, "text": text, "logprobs": None, "finish_reason": finish}]})

    def start(self) -> list[str]:
        return []

    def delta(self, i: int, d: Delta) -> list[str]:
        if d.kind != "answer":
            return []
        text = self.trims[i].feed(d.text)
        return [self._chunk(i, text)] if text else []

    def final(self, i: int, result: Result) -> list[str]:
        sent = self.trims[i].sent
        rest = result.answer[len(sent):] if result.answer.startswith(sent) else ""
        return [*([self._chunk(i, rest)] if rest else []), self._chunk(i, "", openai_finish(result))]

    def end(self, results: list[Result]) -> list[str]:
        usage = [sse({"id": self.id, "object": "text_completion", "created": self.created, "model": self.body.model,
                      "choices": [], "usage": openai_usage(total_usage(results))})] if self.usage else []
        return [*usage, "data: [DONE]\n\n"]

    def error(self, err: dict[str, Any]) -> list[str]:
        return [sse(err), "data: [DONE]\n\n"]
