"""The OpenAI-compatible HTTP server and the web app (FastAPI).

Handlers stay thin: parse, dispatch to a mode, serialise, store. Streaming follows the OpenAI
SSE format; Contemplating's agent progress goes out as named events (``event: muse.agent``,
``muse.synthesis``, ``muse.result``) that OpenAI clients skip. Every error is an OpenAI error
object. Requests reaching the local engine at the same time queue on its lock: one llama.cpp
context is never used by two requests at once.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from importlib.resources import files
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from markdown_it import MarkdownIt
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..engines import Engine, EngineSettings, create_engine
from ..errors import ConfigError, ContextOverflow, EngineUnavailable, ModelNotFound, MuseError
from ..media import MediaSettings, prepare_media
from ..modes import ModeSettings, create_mode
from ..modes.base import Mode, has_media
from ..types import Completion, Delta, Message, Usage
from .schemas import ChatCompletionBody, GroundOptions, RenameBody, model_list
from .store import Store

STATIC = files("openmuse.server").joinpath("static")
_md = MarkdownIt("commonmark", {"html": False}).enable("table")


@dataclass(frozen=True)
class ServerConfig:
    engine: EngineSettings = field(default_factory=EngineSettings)
    database_url: str = "sqlite:///openmuse.db"
    api_keys: tuple[str, ...] = ()
    max_body_bytes: int = 8 * 1024 * 1024
    defaults: ModeSettings = field(default_factory=ModeSettings)
    media: MediaSettings = field(default_factory=MediaSettings)


class APIError(Exception):
    def __init__(self, status: int, message: str, type_: str = "invalid_request_error",
                 code: str | None = None, param: str | None = None):
        self.status, self.message, self.type, self.code, self.param = status, message, type_, code, param


def error_body(message: str, type_: str, code: str | None = None, param: str | None = None) -> dict:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


_MUSE_STATUS = {ConfigError: 400, ContextOverflow: 400, ModelNotFound: 404, EngineUnavailable: 502}


def _muse_status(e: MuseError) -> int:
    return next((s for cls, s in _MUSE_STATUS.items() if isinstance(e, cls)), 500)


class BodyLimit:
    """ASGI middleware: refuse request bodies over ``limit`` bytes with 413, whether the
    client declared the length or streams the body."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await self._too_large(send)
        seen = 0

        async def counted():
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge()
            return msg

        try:
            await self.app(scope, counted, send)
        except _TooLarge:
            await self._too_large(send)

    async def _too_large(self, send):
        body = json.dumps(error_body(f"request body over {self.limit} bytes", "invalid_request_error",
                                     "request_too_large")).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    pass


def create_app(config: ServerConfig, engine: Engine | None = None) -> FastAPI:
    """The app. ``engine`` may be given (tests, embedding); otherwise it is created at start."""
    store = Store(config.database_url)
    state: dict[str, Any] = {"engine": engine}

    def get_engine() -> Engine:
        if state["engine"] is None:
            state["engine"] = create_engine(config.engine)
        return state["engine"]

    app = FastAPI(title="OpenMuse", version="0.1.0", docs_url="/docs", redoc_url=None)
    app.add_middleware(BodyLimit, limit=config.max_body_bytes)
    app.state.store = store

    # -- errors -----------------------------------------------------------------------------
    @app.exception_handler(APIError)
    async def _api_error(_r, e: APIError):
        return JSONResponse(error_body(e.message, e.type, e.code, e.param), status_code=e.status)

    @app.exception_handler(MuseError)
    async def _muse_error(_r, e: MuseError):
        status = _muse_status(e)
        return JSONResponse(error_body(str(e), "server_error" if status >= 500 else "invalid_request_error",
                                       e.code), status_code=status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_r, e: RequestValidationError):
        errs = e.errors()
        first = errs[0] if errs else {"msg": "invalid request", "loc": ()}
        if first.get("type") == "json_invalid":
            return JSONResponse(error_body("the body is not valid JSON", "invalid_request_error",
                                           "invalid_json"), status_code=400)
        loc = [str(x) for x in first.get("loc", ()) if x != "body"]
        where = ".".join(loc) or None
        msg = f"{where}: {first['msg']}" if where else first["msg"]
        return JSONResponse(error_body(msg, "invalid_request_error", "invalid_value", where), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_r, e: StarletteHTTPException):
        return JSONResponse(error_body(str(e.detail), "invalid_request_error", None), status_code=e.status_code)

    @app.exception_handler(Exception)
    async def _unexpected(_r, e: Exception):
        return JSONResponse(error_body(f"internal error: {type(e).__name__}", "server_error", "internal_error"),
                            status_code=500)

    # -- auth -------------------------------------------------------------------------------
    async def auth(request: Request) -> None:
        if not config.api_keys:
            return
        header = request.headers.get("authorization", "")
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "bearer" or key.strip() not in config.api_keys:
            raise APIError(401, "a valid API key is needed (Authorization: Bearer KEY)",
                           "invalid_request_error", "invalid_api_key")

    # -- routes -----------------------------------------------------------------------------
    @app.get("/health")
    async def health():
        e = state["engine"]
        return {"status": "ok", "engine": config.engine.engine, "model": e.model if e else None,
                "loaded": e is not None}

    @app.get("/v1/models", dependencies=[Depends(auth)])
    async def models():
        return model_list(get_engine().model)

    @app.post("/v1/chat/completions", dependencies=[Depends(auth)])
    async def chat(body: ChatCompletionBody):
        mode_name = body.mode_name()
        if mode_name is None:
            raise APIError(404, f"unknown model '{body.model}' (use muse-instant, muse-thinking, "
                                "muse-contemplating, or muse with reasoning_effort)",
                           "invalid_request_error", "model_not_found", "model")
        mode: Mode = create_mode(mode_name, _mode_settings(config.defaults, body))
        messages = list(body.messages)
        if not any(m.role == "user" and (m.text().strip() or has_media(m)) for m in messages):
            raise APIError(400, "the conversation has no user message with text or media", param="messages")
        if body.muse.conversation_id and not await run_in_threadpool(store.exists, body.muse.conversation_id):
            raise APIError(404, f"no conversation '{body.muse.conversation_id}'",
                           code="conversation_not_found", param="muse.conversation_id")
        eng = await run_in_threadpool(get_engine)
        # every media part is checked and prepared before the mode runs or anything is stored
        prepared = await run_in_threadpool(prepare_media, messages, eng.capabilities, config.media,
                                           body.media_names())
        media = prepared.report()
        if body.muse.ground:
            mode = _grounding_mode(body, messages, eng)
        if body.stream:
            return StreamingResponse(
                _stream(eng, mode, messages, prepared.messages, media, body, store),
                media_type="text/event-stream", headers={"cache-control": "no-cache"},
            )
        result = await run_in_threadpool(_run, mode, eng, prepared.messages, media)
        conv_id = await run_in_threadpool(_persist, store, body, messages, result)
        return _response(body, result, conv_id)

    @app.get("/v1/conversations", dependencies=[Depends(auth)])
    async def list_conversations():
        return {"object": "list", "data": await run_in_threadpool(store.list)}

    @app.get("/v1/conversations/{cid}", dependencies=[Depends(auth)])
    async def get_conversation(cid: str):
        conv = await run_in_threadpool(store.get, cid)
        if conv is None:
            raise APIError(404, f"no conversation '{cid}'", code="conversation_not_found")
        for m in conv["messages"]:
            m["html"] = _md.render(m["content"]) if m["role"] == "assistant" else None
        return conv

    @app.patch("/v1/conversations/{cid}", dependencies=[Depends(auth)])
    async def rename_conversation(cid: str, body: RenameBody):
        conv = await run_in_threadpool(store.rename, cid, body.title)
        if conv is None:
            raise APIError(404, f"no conversation '{cid}'", code="conversation_not_found")
        return conv

    @app.delete("/v1/conversations/{cid}", dependencies=[Depends(auth)])
    async def delete_conversation(cid: str):
        if not await run_in_threadpool(store.delete, cid):
            raise APIError(404, f"no conversation '{cid}'", code="conversation_not_found")
        return {"id": cid, "object": "conversation.deleted", "deleted": True}

    @app.get("/", include_in_schema=False)
    async def index():
        return FileResponse(str(STATIC.joinpath("index.html")))

    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    return app


# -- helpers --------------------------------------------------------------------------------
def _mode_settings(defaults: ModeSettings, body: ChatCompletionBody) -> ModeSettings:
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


class GroundingMode(Mode):
    """``muse.ground``: one grounding request for the last user message's image; the answer is
    the count and the points, ``muse.grounding`` the annotations (0-1 of the image) and
    ``muse.grounding_image`` the annotated PNG as a data URL."""

    name = "grounding"

    def __init__(self, options: GroundOptions, part: dict[str, Any], question: str):
        super().__init__()
        self.options, self.part, self.question = options, part, question

    def run(self, engine: Engine, messages, on_event=None) -> Completion:
        import base64

        from ..media.grounding import ground, render, to_png

        g = ground(engine, self.part, self.question, convention=self.options.convention, kind=self.options.kind)
        png = to_png(render(self.part, g))
        text = "\n".join(g.lines())
        if on_event:
            on_event(Delta(kind="answer", text=text))
        return Completion(text=text, usage=g.usage or Usage(), model=g.model or engine.model, mode=self.name,
                          extra={"grounding": g.to_json(),
                                 "grounding_image": "data:image/png;base64," + base64.b64encode(png).decode()})


def _grounding_mode(body: ChatCompletionBody, messages: list[Message], engine: Engine) -> GroundingMode:
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


def _run(mode, engine, messages: list[Message], media: dict | None, on_event=None) -> Completion:
    result = mode.run(engine, messages, on_event)
    if media:
        result.extra["media"] = media
    return result


def _persist(store: Store, body: ChatCompletionBody, messages: list[Message], result: Completion) -> str | None:
    """Store the exchange (the last user message and the answer) once the answer exists, in
    the given conversation or a new one titled after the first question. Returns its id."""
    if not body.muse.store:
        return None
    cid = body.muse.conversation_id
    if cid is None:
        first = next((m.text() for m in messages if m.role == "user" and m.text().strip()), "")
        title = " ".join(first.split()) or _media_title(result)
        cid = store.create(title[:60] + ("…" if len(title) > 60 else ""))["id"]
    last_user = next(m for m in reversed(messages) if m.role == "user")
    extra = {**_public_extra(result), "timings": result.timings}
    user: dict[str, Any] = {"role": "user", "content": last_user.text()}
    refs = _media_refs(result, last_user)
    if refs:  # a reference to each part (name, size, hash, how it was seen), not its bytes
        user["extra"] = {"media": refs}
    store.add_messages(cid, [
        user,
        {"role": "assistant", "content": result.text, "reasoning": result.reasoning, "mode": result.mode,
         "model": result.model, "usage": result.usage.to_openai(),
         "agents": [a.to_json() for a in result.agents] or None, "extra": extra},
    ])
    return cid


def _media_refs(result: Completion, last_user: Message) -> list[dict[str, Any]]:
    """The report entries of the media parts in the stored user message."""
    parts = (result.extra.get("media") or {}).get("parts") or []
    n = 0 if isinstance(last_user.content, str) else sum(1 for p in last_user.content if p.get("type") != "text")
    keep = ("part", "kind", "name", "format", "bytes", "sha256", "url", "width", "height", "duration_s", "seen", "via")
    return [{k: p[k] for k in keep if k in p} for p in parts[len(parts) - n:]] if n else []


def _media_title(result: Completion) -> str:
    parts = (result.extra.get("media") or {}).get("parts") or []
    return ", ".join(p["name"] for p in parts) or "Media"


def _public_extra(result: Completion) -> dict[str, Any]:
    """A result's extra fields less the engine's cache bookkeeping."""
    return {k: v for k, v in result.extra.items() if k not in ("prefilled_tokens", "cached_tokens")}


def _muse_field(result: Completion, conv_id: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {"mode": result.mode, "engine_model": result.model, "conversation_id": conv_id,
                           "timings": result.timings}
    if result.agents:
        out["agents"] = [a.to_json() for a in result.agents]
    out.update(_public_extra(result))
    return out


def _response(body: ChatCompletionBody, result: Completion, conv_id: str | None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": result.text}
    if result.reasoning:
        message["reasoning_content"] = result.reasoning
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
        "model": body.model,
        "choices": [{"index": 0, "message": message, "logprobs": None,
                     "finish_reason": "length" if result.finish_reason == "length" else "stop"}],
        "usage": result.usage.to_openai(),
        "muse": _muse_field(result, conv_id),
    }


def _sse(data: dict[str, Any], event: str | None = None) -> str:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data, ensure_ascii=False)}\n\n"


async def _stream(engine, mode, messages, prepared, media, body: ChatCompletionBody,
                  store: Store) -> AsyncIterator[str]:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    cid = f"chatcmpl-{uuid.uuid4().hex}"
    created = int(time.time())
    several = mode.name == "contemplating"

    def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
        return _sse({"id": cid, "object": "chat.completion.chunk", "created": created, "model": body.model,
                     "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]})

    def on_event(d: Delta) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, ("delta", d))

    def work() -> None:
        try:
            result = _run(mode, engine, prepared, media, on_event)
            conv_id = _persist(store, body, messages, result)
            loop.call_soon_threadsafe(queue.put_nowait, ("done", (result, conv_id)))
        except Exception as e:  # reported to the client as an error event
            loop.call_soon_threadsafe(queue.put_nowait, ("error", e))

    loop.run_in_executor(None, work)
    yield chunk({"role": "assistant", "content": ""})
    while True:
        kind, item = await queue.get()
        if kind == "delta":
            d: Delta = item
            if d.kind == "reasoning":
                yield chunk({"reasoning_content": d.text})
            elif d.kind == "answer" and not several:
                yield chunk({"content": d.text})
            elif d.kind == "answer":
                yield _sse({"text": d.text}, "muse.synthesis")
            elif d.kind == "agent":
                yield _sse({"agent": d.index, "text": d.text}, "muse.agent")
            else:
                yield _sse({"agent": d.index, "status": d.text}, "muse.agent")
        elif kind == "done":
            result, conv_id = item
            if several:
                yield chunk({"content": result.text})
            yield chunk({}, "length" if result.finish_reason == "length" else "stop")
            if body.stream_options and body.stream_options.include_usage:
                yield _sse({"id": cid, "object": "chat.completion.chunk", "created": created,
                            "model": body.model, "choices": [], "usage": result.usage.to_openai()})
            yield _sse(_muse_field(result, conv_id), "muse.result")
            yield "data: [DONE]\n\n"
            return
        else:
            e = item
            if isinstance(e, MuseError):
                err = error_body(str(e), "server_error", e.code)
            else:
                err = error_body(f"internal error: {type(e).__name__}", "server_error", "internal_error")
            yield _sse(err)
            yield "data: [DONE]\n\n"
            return
