"""Chat Completions' SSE: the standard chunks of every choice (and, asked for with
``muse.events``, OpenMuse's named events), and ``Trim``, which keeps streamed answer text equal to
the non-streamed answer (also used by the Responses and Completions streams)."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from ..assistant import Result
from ..types import Delta
from .chat import muse_field, openai_finish, openai_logprobs, openai_usage, total_usage
from .schemas import ChatCompletionBody


def sse(data: dict[str, Any], event: str | None = None) -> str:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data, ensure_ascii=False)}\n\n"


class Trim:
    """Streamed answer text as the non-streamed answer has it: leading whitespace dropped, and
    whitespace held back until more text follows it (so an answer's trailing whitespace, which
    the non-streamed answer strips, is never sent)."""

    def __init__(self):
        self.sent, self.held = "", ""

    def feed(self, text: str) -> str:
        text = self.held + text if self.sent else (self.held + text).lstrip()
        body = text.rstrip()
        self.held = text[len(body):]
        self.sent += body
        return body


class _Chunks:
    """One stream's ``chat.completion.chunk``s (every choice's), all with the same id."""

    def __init__(self, body: ChatCompletionBody):
        self.body, self.sid, self.created = body, f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        self.usage = bool(body.stream_options and body.stream_options.include_usage)

    def chunk(self, index: int, delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        data: dict[str, Any] = {"id": self.sid, "object": "chat.completion.chunk", "created": self.created,
                                "model": self.body.model,
                                "choices": [{"index": index, "delta": delta, "logprobs": extra.pop("logprobs", None),
                                             "finish_reason": finish}]}
        if self.usage:  # OpenAI: with include_usage every chunk has usage (null until the last)
            data["usage"] = None
        data.update(extra)
        return sse(data)

    def usage_chunk(self, results: list[Result]) -> str:
        return sse({"id": self.sid, "object": "chat.completion.chunk", "created": self.created,
                    "model": self.body.model, "choices": [], "usage": openai_usage(total_usage(results))})


class _Choice:
    """One choice of a stream: its deltas as chunks. Answer text streams as ``content`` (its
    leading whitespace dropped, as the non-streamed answer's is), reasoning as
    ``reasoning_content``. Contemplating's agents and synthesis go out as named events when the
    client asked for them (``muse.events``: the web app), else as short ``reasoning_content``
    lines; the final answer then comes whole at the end. Tool calls come at the end too."""

    def __init__(self, chunks: _Chunks, index: int, events: bool, structured: bool = False):
        self.c, self.i, self.events, self.agents = chunks, index, events, False
        self.structured = structured  # JSON or tool calls asked: a check's refusal goes in ``refusal``
        self.trim = Trim()  # answer text already sent as content chunks: ``trim.sent``

    def delta(self, d: Delta) -> str | None:
        c, i = self.c, self.i
        if d.kind == "reasoning":
            return c.chunk(i, {"reasoning_content": d.text})
        if d.kind == "status" and d.index < 0:  # the mode's own progress (build): not an agent's
            if self.events:
                return sse({"status": d.text, "choice": i}, "muse.status")
            return c.chunk(i, {"reasoning_content": f"{d.text}.\n"})
        if d.kind in ("agent", "status"):
            self.agents = True
            if self.events:
                key = "text" if d.kind == "agent" else "status"
                return sse({"agent": d.index, key: d.text, "choice": i}, "muse.agent")
            return c.chunk(i, {"reasoning_content": f"Agent {d.index + 1} {d.text}.\n"}) if d.kind == "status" else None
        if self.agents:
            if self.events:
                return sse({"text": d.text, "choice": i}, "muse.synthesis")
            return c.chunk(i, {"reasoning_content": d.text})
        text = self.trim.feed(d.text)
        return c.chunk(i, {"content": text}) if text else None

    def final(self, result: Result, conv_id: str | None, logprobs: bool) -> list[str]:
        c, i, out = self.c, self.i, []
        answer, self.sent = result.answer, self.trim.sent
        if self.structured and result.finish_reason == "content_filter" and not self.sent:
            out.append(c.chunk(i, {"refusal": answer}))
        elif self.agents or not self.sent:
            if answer:
                out.append(c.chunk(i, {"content": answer}))
        elif answer != self.sent:
            if answer.startswith(self.sent):  # a check added to the end
                out.append(c.chunk(i, {"content": answer[len(self.sent):]}))
            else:
                # a check (safety, health) rewrote text the client has already seen: the whole
                # answer in muse.replaced (the web app shows only it), and for plain OpenAI
                # clients as a marked continuation
                if self.events:
                    out.append(sse({"content": answer, "finish_reason": openai_finish(result), "choice": i},
                                   "muse.replaced"))
                out.append(c.chunk(i, {"content": "\n\n[revised by a check]\n" + answer}))
        if result.tool_calls:
            out.append(c.chunk(i, {"tool_calls": [{"index": k, **call.to_openai()}
                                                  for k, call in enumerate(result.tool_calls)]}))
        extra: dict[str, Any] = {"muse": muse_field(result, conv_id)}
        if logprobs:
            extra["logprobs"] = openai_logprobs(result)
        out.append(c.chunk(i, {}, openai_finish(result), **extra))
        return out


class ChatFormat:
    """Chat Completions' SSE: the chunks of every choice, then (asked for) ``muse.result``
    and the usage chunk, then ``[DONE]``."""

    def __init__(self, body: ChatCompletionBody, n: int, conv_id: str | None):
        self.body, self.conv_id = body, conv_id
        self.chunks = _Chunks(body)
        structured = body.output().active
        self.choices = [_Choice(self.chunks, i, body.muse.events, structured) for i in range(n)]

    def start(self) -> list[str]:
        return [self.chunks.chunk(i, {"role": "assistant", "content": ""}) for i in range(len(self.choices))]

    def delta(self, i: int, d: Delta) -> list[str]:
        piece = self.choices[i].delta(d)
        return [piece] if piece else []

    def final(self, i: int, result: Result) -> list[str]:
        return self.choices[i].final(result, self.conv_id, self.body.logprobs)

    def end(self, results: list[Result]) -> list[str]:
        out = [sse(muse_field(results[0], self.conv_id), "muse.result")] if self.body.muse.events else []
        if self.chunks.usage:
            out.append(self.chunks.usage_chunk(results))
        return [*out, "data: [DONE]\n\n"]

    def error(self, err: dict[str, Any]) -> list[str]:
        return [sse(err), "data: [DONE]\n\n"]
