"""One chat completion on the server: store the question, answer through the ``Assistant``,
store the answer, and serialise the typed ``Result`` (a JSON response whose ``muse`` object is
``Result.to_json()``, or OpenAI's SSE with OpenMuse's named events).

Durability: the user message is stored before the mode runs; the answer after. A failed
generation leaves the question and an assistant message with ``extra.error`` (the error object
the client got), so nothing the user sent is lost. Deleting the conversation while its answer is
generating ends that request cleanly (a ``conversation_deleted`` error, 409 or an SSE error
event) and cancels its generation; a client that disconnects cancels it too, so its sequences
leave the engine's batch within a decode step.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.concurrency import run_in_threadpool

from ..assistant import Assistant, MediaReport, Request, Result, resolve_mode
from ..engines.control import RequestControl
from ..errors import OptionError
from ..modes import ModeOptions
from ..types import Delta, Message, Usage
from .errors import APIError, error_body, muse_error_body
from .schemas import PREFIX, ChatCompletionBody
from .store import Store


class Running:
    """Callbacks to run when a conversation is deleted while an answer for it is generating."""

    def __init__(self):
        self._lock = threading.Lock()
        self._waiting: dict[str, list[Callable[[], None]]] = {}

    def add(self, cid: str, on_delete: Callable[[], None]) -> None:
        with self._lock:
            self._waiting.setdefault(cid, []).append(on_delete)

    def remove(self, cid: str, on_delete: Callable[[], None]) -> None:
        with self._lock:
            left = [f for f in self._waiting.get(cid, []) if f is not on_delete]
            self._waiting[cid] = left
            if not left:
                self._waiting.pop(cid, None)

    def deleted(self, cid: str) -> None:
        with self._lock:
            calls = self._waiting.pop(cid, [])
        for f in calls:
            f()


def deleted_error() -> APIError:
    return APIError(409, "the conversation was deleted while its answer was generating; the answer was "
                         "discarded", code="conversation_deleted", param="muse.conversation_id")


def mode_options(mode: str, body: ChatCompletionBody) -> ModeOptions:
    """The request's options validated against ``mode``'s own ``Options``: a 400 naming the
    first unknown or bad one (``muse.agents``)."""
    takes = resolve_mode(mode).Options.model_fields
    try:
        return resolve_mode(mode, body.mode_values(takes)).options
    except OptionError as e:
        where = e.field if e.field in ("max_tokens", "temperature", "seed") else f"muse.{e.field}"
        msg = f"unknown option '{e.field}' for {PREFIX}{mode} (it takes {', '.join(takes)})" if e.unknown else str(e)
        raise APIError(400, msg, code="unknown_parameter" if e.unknown else "invalid_value", param=where) from None


async def answer(assistant: Assistant, req: Request, control: RequestControl, store: Store, owner: str,
                 cid: str | None, running: Running, http: Any) -> Result:
    """The non-streamed answer; a client that disconnects meanwhile cancels it."""
    loop = asyncio.get_running_loop()
    if cid:
        running.add(cid, control.cancel)
    try:
        fut = loop.run_in_executor(None, lambda: assistant.run(req, control=control))
        while not fut.done():
            await asyncio.wait({fut}, timeout=0.25)
            if not fut.done() and await http.is_disconnected():
                control.cancel()
        try:
            result = fut.result()
        except Exception as e:  # the question stays, with the error beside it; the client gets the error
            if control.cancelled and cid and not await run_in_threadpool(store.exists, cid, owner=owner):
                raise deleted_error() from None
            await run_in_threadpool(fail, store, owner, cid, req.mode.name, muse_error_body(e)[1])
            raise
    finally:
        if cid:
            running.remove(cid, control.cancel)
    if not await run_in_threadpool(finish, store, owner, cid, result):
        raise deleted_error()
    return result


# -- the store ------------------------------------------------------------------------------
def begin(store: Store, owner: str, body: ChatCompletionBody, messages: list[Message],
          media: MediaReport | None) -> str | None:
    """Store the last user message before anything runs, in the given conversation or a new
    one titled after the first question. Its id, or None when the request keeps nothing."""
    if not body.muse.store:
        return None
    cid = body.muse.conversation_id
    if cid is None:
        first = next((m.text() for m in messages if m.role == "user" and m.text().strip()), "")
        title = " ".join(first.split()) or _media_title(media)
        cid = store.create(title[:60] + ("…" if len(title) > 60 else ""), owner=owner)["id"]
    last_user = next(m for m in reversed(messages) if m.role == "user")
    user: dict[str, Any] = {"role": "user", "content": last_user.text()}
    refs = _media_refs(media, last_user)
    if refs:  # a reference to each part (name, size, hash, how it was seen), not its bytes
        user["extra"] = {"media": refs}
    try:
        store.add_messages(cid, [user], owner=owner)
    except KeyError:  # deleted between the check and now
        raise APIError(404, f"no conversation '{cid}'", code="conversation_not_found",
                       param="muse.conversation_id") from None
    return cid


def finish(store: Store, owner: str, cid: str | None, result: Result) -> bool:
    """Store the answer; False when the conversation was deleted meanwhile (the answer is dropped)."""
    if cid is None:
        return True
    try:
        store.add_messages(cid, [{
            "role": "assistant", "content": result.answer, "reasoning": result.reasoning, "mode": result.mode,
            "model": result.model, "usage": openai_usage(result.usage),
            "agents": [a.model_dump(mode="json") for a in result.agents] or None,
            "extra": stored_extra(result)}], owner=owner)
    except KeyError:
        return False
    return True


def fail(store: Store, owner: str, cid: str | None, mode: str, error: dict[str, Any]) -> None:
    """Store the error marker after a failed generation (nothing when the conversation is gone)."""
    if cid is None:
        return
    try:
        store.add_messages(cid, [{"role": "assistant", "content": "", "mode": mode,
                                  "extra": {"error": error["error"]}}], owner=owner)
    except KeyError:
        pass


def stored_extra(result: Result) -> dict[str, Any]:
    """What the store keeps of a result besides the answer: the trace (its agents go in their
    own column), media, engine, checks and timings; the grounding PNG becomes its hash and size."""
    out = {k: v for k, v in result.to_json().items() if k not in ("answer", "reasoning", "usage", "mode", "model")}
    trace = out.get("trace") or {}
    trace.pop("agents", None)
    image = trace.get("image")
    if isinstance(image, str) and image.startswith("data:") and "," in image:
        head, data = image[5:].split(",", 1)
        trace["image"] = {"media_type": head.split(";")[0], "sha256": hashlib.sha256(data.encode()).hexdigest(),
                          "chars": len(data), "stored": False}
    return out


def _media_refs(media: MediaReport | None, last_user: Message) -> list[dict[str, Any]]:
    """The report entries of the media parts in the stored user message."""
    parts = [p.model_dump() for p in media.parts] if media else []
    n = 0 if isinstance(last_user.content, str) else sum(1 for p in last_user.content if p.get("type") != "text")
    keep = ("part", "kind", "name", "format", "bytes", "sha256", "url", "width", "height", "duration_s", "seen", "via")
    return [{k: p[k] for k in keep if k in p} for p in parts[len(parts) - n:]] if n else []


def _media_title(media: MediaReport | None) -> str:
    return ", ".join(p.name for p in (media.parts if media else [])) or "Media"


# -- the response ---------------------------------------------------------------------------
def openai_usage(u: Usage) -> dict[str, Any]:
    return {"prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens,
            "total_tokens": u.total_tokens, "completion_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
            "prompt_tokens_details": {"cached_tokens": u.cached_tokens}}


def muse_field(result: Result, conv_id: str | None) -> dict[str, Any]:
    """The ``muse`` object: ``Result.to_json()`` less what the message already carries."""
    return {"conversation_id": conv_id,
            **{k: v for k, v in result.to_json().items() if k not in ("answer", "reasoning")}}


def response(body: ChatCompletionBody, result: Result, conv_id: str | None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": result.answer}
    if result.reasoning:
        message["reasoning_content"] = result.reasoning
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
        "model": body.model,
        "choices": [{"index": 0, "message": message, "logprobs": None,
                     "finish_reason": openai_finish(result)}],
        "usage": openai_usage(result.usage),
        "muse": muse_field(result, conv_id),
    }


def openai_finish(result: Result) -> str:
    """OpenAI's finish_reason: length, content_filter (a check answered or replaced), else stop."""
    return result.finish_reason if result.finish_reason in ("length", "content_filter") else "stop"


def sse(data: dict[str, Any], event: str | None = None) -> str:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data, ensure_ascii=False)}\n\n"


class _Events:
    """Deltas as SSE: answer text as OpenAI chunks; agent pieces and states as ``muse.agent``
    events. Once agents have spoken, answer text is the synthesis (``muse.synthesis``) and the
    final answer is sent whole at the end."""

    def __init__(self, body: ChatCompletionBody):
        self.body, self.sid, self.created, self.agents = body, f"chatcmpl-{uuid.uuid4().hex}", int(time.time()), False
        self.sent = ""  # answer text already sent as content chunks

    def chunk(self, delta: dict[str, Any], finish: str | None = None) -> str:
        return sse({"id": self.sid, "object": "chat.completion.chunk", "created": self.created,
                    "model": self.body.model,
                    "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]})

    def delta(self, d: Delta) -> str:
        if d.kind == "reasoning":
            return self.chunk({"reasoning_content": d.text})
        if d.kind in ("agent", "status"):
            self.agents = True
            if d.kind == "agent":
                return sse({"agent": d.index, "text": d.text}, "muse.agent")
            return sse({"agent": d.index, "status": d.text}, "muse.agent")
        if self.agents:
            return sse({"text": d.text}, "muse.synthesis")
        self.sent += d.text
        return self.chunk({"content": d.text})

    def final(self, result: Result, conv_id: str | None) -> list[str]:
        out = [self.chunk({"content": result.answer})] if self.agents else []
        if not self.agents and (result.revised_by or not self.sent) and result.answer != self.sent:
            if result.answer.startswith(self.sent):  # a check added to the end
                out.append(self.chunk({"content": result.answer[len(self.sent):]}))
            else:
                # a check (safety, health) rewrote text the client has already seen: the whole
                # answer again in muse.replaced (the web app shows only it), and for plain
                # OpenAI clients as a marked continuation
                if self.sent:
                    out.append(sse({"content": result.answer, "finish_reason": openai_finish(result)},
                                   "muse.replaced"))
                head = "\n\n[revised by a check]\n" if self.sent else ""
                out.append(self.chunk({"content": head + result.answer}))
        out.append(self.chunk({}, openai_finish(result)))
        if self.body.stream_options and self.body.stream_options.include_usage:
            out.append(sse({"id": self.sid, "object": "chat.completion.chunk", "created": self.created,
                            "model": self.body.model, "choices": [], "usage": openai_usage(result.usage)}))
        out.append(sse(muse_field(result, conv_id), "muse.result"))
        return out


async def stream(assistant: Assistant, req: Request, control: RequestControl, body: ChatCompletionBody,
                 store: Store, owner: str, conv_id: str | None, running: Running) -> AsyncIterator[str]:
    """The SSE stream of one answer; the question is already stored under ``conv_id``. A client
    that goes away (the generator is closed) or a deleted conversation cancels the generation."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    events = _Events(body)

    def put(kind: str, item: Any) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, (kind, item))

    def work() -> None:
        try:
            result = assistant.run(req, lambda d: put("delta", d), control=control)
        except Exception as e:  # stored as the error marker (a no-op once the conversation is gone)
            err = muse_error_body(e)[1]
            fail(store, owner, conv_id, req.mode.name, err)
            # cancelled: the conversation was deleted (say so) or the client left (nobody reads it)
            return put("deleted", None) if control.cancelled else put("error", err)
        put("done", result) if finish(store, owner, conv_id, result) else put("deleted", None)

    if conv_id:
        running.add(conv_id, control.cancel)
    loop.run_in_executor(None, work)
    try:
        yield events.chunk({"role": "assistant", "content": ""})
        while True:
            kind, item = await queue.get()
            if kind == "delta":
                yield events.delta(item)
                continue
            if kind == "done":
                for piece in events.final(item, conv_id):
                    yield piece
            elif kind == "deleted":
                e = deleted_error()
                yield sse(error_body(e.message, e.type, e.code, e.param))
            else:
                yield sse(item)
            yield "data: [DONE]\n\n"
            return
    finally:
        control.cancel()  # a no-op once the answer is done; frees the engine if the client left
        if conv_id:
            running.remove(conv_id, control.cancel)
