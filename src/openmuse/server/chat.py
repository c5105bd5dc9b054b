"""One chat completion on the server: store the question, run the mode, store the answer, and
serialise it (a JSON response, or OpenAI's SSE with OpenMuse's named events).

Durability: the user message is stored before the mode runs; the answer after. A failed
generation leaves the question and an assistant message with ``extra.error`` (the error object
the client got), so nothing the user sent is lost. Deleting the conversation while its answer is
generating ends that request cleanly (a ``conversation_deleted`` error, 409 or an SSE error
event) and the answer, when it comes, is discarded rather than stored. The engine's own work is
not interrupted: it finishes in the background and its result is dropped.
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

from ..modes import ModeSettings
from ..types import Completion, Delta, Message
from .errors import APIError, error_body, muse_error_body
from .schemas import ChatCompletionBody
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


def mode_settings(defaults: ModeSettings, body: ChatCompletionBody) -> ModeSettings:
    update: dict[str, Any] = {}
    max_tokens = body.max_completion_tokens or body.max_tokens
    if max_tokens:
        update["max_tokens"] = max_tokens
    if body.temperature is not None:
        update["temperature"] = body.temperature
    if body.seed is not None:
        update["seed"] = body.seed
    for k in ("agents", "budget", "early_stop", "aggregator"):
        v = getattr(body.muse, k)
        if v is not None:
            update[k] = v
    return ModeSettings(**{**defaults.model_dump(), **update})


def run(mode, engine, messages: list[Message], media: dict | None, on_event=None) -> Completion:
    result = mode.run(engine, messages, on_event)
    if media:
        result.extra["media"] = media
    return result


# -- the store ------------------------------------------------------------------------------
def begin(store: Store, owner: str, body: ChatCompletionBody, messages: list[Message],
          media: dict | None) -> str | None:
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


def finish(store: Store, owner: str, cid: str | None, result: Completion) -> bool:
    """Store the answer; False when the conversation was deleted meanwhile (the answer is dropped)."""
    if cid is None:
        return True
    try:
        store.add_messages(cid, [{
            "role": "assistant", "content": result.text, "reasoning": result.reasoning, "mode": result.mode,
            "model": result.model, "usage": result.usage.to_openai(),
            "agents": [a.to_json() for a in result.agents] or None, "extra": stored_extra(result)}], owner=owner)
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


def stored_extra(result: Completion) -> dict[str, Any]:
    """What the store keeps of a result's extra fields: a data URL (the grounding PNG) becomes
    its hash and size."""
    out: dict[str, Any] = {}
    for k, v in public_extra(result).items():
        if isinstance(v, str) and v.startswith("data:") and "," in v:
            head, data = v[5:].split(",", 1)
            out[k] = {"media_type": head.split(";")[0], "sha256": hashlib.sha256(data.encode()).hexdigest(),
                      "chars": len(data), "stored": False}
        else:
            out[k] = v
    return {**out, "timings": result.timings}


def _media_refs(media: dict | None, last_user: Message) -> list[dict[str, Any]]:
    """The report entries of the media parts in the stored user message."""
    parts = (media or {}).get("parts") or []
    n = 0 if isinstance(last_user.content, str) else sum(1 for p in last_user.content if p.get("type") != "text")
    keep = ("part", "kind", "name", "format", "bytes", "sha256", "url", "width", "height", "duration_s", "seen", "via")
    return [{k: p[k] for k in keep if k in p} for p in parts[len(parts) - n:]] if n else []


def _media_title(media: dict | None) -> str:
    parts = (media or {}).get("parts") or []
    return ", ".join(p["name"] for p in parts) or "Media"


# -- the response ---------------------------------------------------------------------------
def public_extra(result: Completion) -> dict[str, Any]:
    """A result's extra fields less the engine's cache bookkeeping."""
    return {k: v for k, v in result.extra.items() if k not in ("prefilled_tokens", "cached_tokens")}


def muse_field(result: Completion, conv_id: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {"mode": result.mode, "engine_model": result.model, "conversation_id": conv_id,
                           "timings": result.timings}
    if result.agents:
        out["agents"] = [a.to_json() for a in result.agents]
    out.update(public_extra(result))
    return out


def response(body: ChatCompletionBody, result: Completion, conv_id: str | None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": result.text}
    if result.reasoning:
        message["reasoning_content"] = result.reasoning
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
        "model": body.model,
        "choices": [{"index": 0, "message": message, "logprobs": None,
                     "finish_reason": "length" if result.finish_reason == "length" else "stop"}],
        "usage": result.usage.to_openai(),
        "muse": muse_field(result, conv_id),
    }


def sse(data: dict[str, Any], event: str | None = None) -> str:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data, ensure_ascii=False)}\n\n"


async def stream(engine, mode, prepared: list[Message], media, body: ChatCompletionBody, store: Store,
                 owner: str, conv_id: str | None, running: Running) -> AsyncIterator[str]:
    """The SSE stream of one answer; the question is already stored under ``conv_id``."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    sid, created, several = f"chatcmpl-{uuid.uuid4().hex}", int(time.time()), mode.name == "contemplating"

    def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
        return sse({"id": sid, "object": "chat.completion.chunk", "created": created, "model": body.model,
                    "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]})

    def put(kind: str, item: Any) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, (kind, item))

    def work() -> None:
        try:
            result = run(mode, engine, prepared, media, lambda d: put("delta", d))
        except Exception as e:  # stored as the error marker, and reported as an error event
            err = muse_error_body(e)[1]
            fail(store, owner, conv_id, mode.name, err)
            return put("error", err)
        if finish(store, owner, conv_id, result):
            put("done", result)
        else:
            put("deleted", None)

    def on_delete() -> None:
        loop.call_soon_threadsafe(queue.put_nowait, ("deleted", None))

    if conv_id:
        running.add(conv_id, on_delete)
    loop.run_in_executor(None, work)
    try:
        yield chunk({"role": "assistant", "content": ""})
        while True:
            kind, item = await queue.get()
            if kind == "delta":
                yield _delta_event(item, several, chunk)
                continue
            if kind == "done":
                for piece in _final_events(item, body, conv_id, several, chunk, sid, created):
                    yield piece
            elif kind == "deleted":
                e = deleted_error()
                yield sse(error_body(e.message, e.type, e.code, e.param))
            else:
                yield sse(item)
            yield "data: [DONE]\n\n"
            return
    finally:
        if conv_id:
            running.remove(conv_id, on_delete)


def _delta_event(d: Delta, several: bool, chunk) -> str:
    if d.kind == "reasoning":
        return chunk({"reasoning_content": d.text})
    if d.kind == "answer" and not several:
        return chunk({"content": d.text})
    if d.kind == "answer":
        return sse({"text": d.text}, "muse.synthesis")
    if d.kind == "agent":
        return sse({"agent": d.index, "text": d.text}, "muse.agent")
    return sse({"agent": d.index, "status": d.text}, "muse.agent")


def _final_events(result: Completion, body: ChatCompletionBody, conv_id, several, chunk, sid, created) -> list[str]:
    out = [chunk({"content": result.text})] if several else []
    out.append(chunk({}, "length" if result.finish_reason == "length" else "stop"))
    if body.stream_options and body.stream_options.include_usage:
        out.append(sse({"id": sid, "object": "chat.completion.chunk", "created": created,
                        "model": body.model, "choices": [], "usage": result.usage.to_openai()}))
    out.append(sse(muse_field(result, conv_id), "muse.result"))
    return out
