"""One chat completion on the server: store the question, answer through the ``Assistant``,
store the answer, and serialise the typed ``Result`` (a JSON response whose ``muse`` object is
``Result.to_json()``, or a stream in the shape of a format object: ``chat_sse.ChatFormat``, the
Responses API's events, legacy completion chunks).

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
from ..types import Message, Usage
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


async def answer(assistant: Assistant, reqs: list[Request], control: RequestControl, store: Store, owner: str,
                 cid: str | None, running: Running, http: Any) -> list[Result]:
    """The non-streamed answer (one ``Result`` per choice, answered together); a client that
    disconnects meanwhile cancels them. The first choice is stored."""
    loop = asyncio.get_running_loop()
    if cid:
        running.add(cid, control.cancel)
    try:
        futs = [loop.run_in_executor(None, lambda r=r: assistant.run(r, control=control)) for r in reqs]
        while not all(f.done() for f in futs):
            await asyncio.wait(futs, timeout=0.25)
            if not all(f.done() for f in futs) and await http.is_disconnected():
                control.cancel()
        try:
            results = [f.result() for f in futs]
        except Exception as e:  # the question stays, with the error beside it; the client gets the error
            if control.cancelled and cid and not await run_in_threadpool(store.exists, cid, owner=owner):
                raise deleted_error() from None
            await run_in_threadpool(fail, store, owner, cid, reqs[0].mode.name, muse_error_body(e)[1])
            raise
    finally:
        if cid:
            running.remove(cid, control.cancel)
    if not await run_in_threadpool(finish, store, owner, cid, results[0]):
        raise deleted_error()
    return results


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
    out = {k: v for k, v in result.to_json().items()
           if k not in ("answer", "reasoning", "usage", "mode", "model", "logprobs")}
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


def total_usage(results: list[Result]) -> Usage:
    """The usage of all choices: the prompt once, every choice's completion."""
    u = results[0].usage
    for r in results[1:]:
        u = u + r.usage.model_copy(update={"prompt_tokens": 0, "cached_tokens": 0, "prefilled_tokens": 0})
    return u


def muse_field(result: Result, conv_id: str | None) -> dict[str, Any]:
    """The ``muse`` object: ``Result.to_json()`` less what the message already carries."""
    return {"conversation_id": conv_id,
            **{k: v for k, v in result.to_json().items() if k not in ("answer", "reasoning", "tool_calls", "logprobs")}}


def openai_logprobs(result: Result) -> dict[str, Any] | None:
    if result.logprobs is None:
        return None
    return {"content": [{"token": t.token, "logprob": t.logprob, "bytes": t.bytes,
                         "top_logprobs": [{"token": tok, "logprob": lp, "bytes": list(tok.encode())}
                                          for tok, lp in t.top]} for t in result.logprobs], "refusal": None}


def message_of(result: Result, structured: bool = False) -> dict[str, Any]:
    """The assistant message of a choice. A check's refusal of a request that asked for JSON
    or a tool call goes in ``refusal`` with no content (OpenAI's structured-output refusal),
    so that a client parsing the content never parses a refusal."""
    refused = structured and result.finish_reason == "content_filter"
    content = None if refused or (result.tool_calls and not result.answer) else result.answer
    message: dict[str, Any] = {"role": "assistant", "content": content,
                               "refusal": result.answer if refused else None}
    if result.tool_calls:
        message["tool_calls"] = [c.to_openai() for c in result.tool_calls]
    if result.reasoning:
        message["reasoning_content"] = result.reasoning
    return message


def response(body: ChatCompletionBody, results: list[Result], conv_id: str | None) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
        "model": body.model,
        "choices": [{"index": i, "message": message_of(r, body.output().active), "logprobs": openai_logprobs(r) if body.logprobs else None,
                     "finish_reason": openai_finish(r)} for i, r in enumerate(results)],
        "usage": openai_usage(total_usage(results)),
        "muse": muse_field(results[0], conv_id),
    }


def openai_finish(result: Result) -> str:
    """OpenAI's finish_reason: tool_calls, length, content_filter (a check answered or
    replaced), else stop."""
    if result.tool_calls:
        return "tool_calls"
    return result.finish_reason if result.finish_reason in ("length", "content_filter") else "stop"


async def stream(assistant: Assistant, reqs: list[Request], control: RequestControl, fmt: Any,
                 store: Store, owner: str, conv_id: str | None, running: Running) -> AsyncIterator[str]:
    """The SSE stream of one answer in ``fmt``'s shape (``ChatFormat``, or the Responses API's
    events); the question is already stored under ``conv_id``. A client that goes away (the
    generator is closed) or a deleted conversation cancels the generation."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()

    def put(kind: str, item: Any, i: int = 0) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, (kind, item, i))

    def work(i: int) -> None:
        try:
            result = assistant.run(reqs[i], lambda d: put("delta", d, i), control=control)
        except Exception as e:  # stored as the error marker (a no-op once the conversation is gone)
            err = muse_error_body(e)[1]
            if i == 0:
                fail(store, owner, conv_id, reqs[0].mode.name, err)
            # cancelled: the conversation was deleted (say so) or the client left (nobody reads it)
            return put("deleted", None, i) if control.cancelled else put("error", err, i)
        if i == 0 and not finish(store, owner, conv_id, result):
            return put("deleted", None, i)
        put("done", result, i)

    if conv_id:
        running.add(conv_id, control.cancel)
    for i in range(len(reqs)):
        loop.run_in_executor(None, work, i)
    results: dict[int, Result] = {}
    try:
        for piece in fmt.start():
            yield piece
        while len(results) < len(reqs):
            kind, item, i = await queue.get()
            if kind in ("delta", "done"):
                if kind == "done":
                    results[i] = item
                for piece in fmt.delta(i, item) if kind == "delta" else fmt.final(i, item):
                    yield piece
                continue
            if kind == "deleted":
                e = deleted_error()
                item = error_body(e.message, e.type, e.code, e.param)
            for piece in fmt.error(item):
                yield piece
            return
        for piece in fmt.end([results[i] for i in range(len(reqs))]):
            yield piece
    finally:
        control.cancel()  # a no-op once the answer is done; frees the engine if the client left
        if conv_id:
            running.remove(conv_id, control.cancel)
