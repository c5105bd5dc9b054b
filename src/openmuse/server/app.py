"""The OpenAI-compatible HTTP server and the web app (FastAPI).

Handlers stay thin: parse, check, dispatch to a mode (``chat.py``), serialise, store. Streaming
follows the OpenAI SSE format; Contemplating's agent progress goes out as named events
(``event: muse.agent``, ``muse.synthesis``, ``muse.result``) that OpenAI clients skip. Every
error is an OpenAI error object (``errors.py``). Requests reaching the local engine at the same
time queue on its lock: one llama.cpp context is never used by two requests at once.

Guards (``security.py``): API keys checked in constant time, each key seeing only its own
conversations (``store.py``); a Host allow-list against DNS rebinding; security headers and a
Content-Security-Policy on every response; a body limit (413) however the body arrives. The
interactive API docs (``/docs``, ``/redoc``) are off: they load third-party scripts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib.resources import files
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import FileResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from ..engines import Engine, EngineSettings, create_engine
from ..media import MediaSettings, prepare_media
from ..modes import ModeSettings, create_mode
from ..modes.base import Mode, has_media
from . import chat, errors
from .errors import APIError, muse_error_body
from .grounding import grounding_mode
from .render import render
from .schemas import ChatCompletionBody, RenameBody, model_list
from .security import LOOPBACK_HOSTS, BodyLimit, HostGuard, Keys, SecurityHeaders
from .store import LOCAL_OWNER, Store, owner_of

STATIC = files("openmuse.server").joinpath("static")


@dataclass(frozen=True)
class ServerConfig:
    engine: EngineSettings = field(default_factory=EngineSettings)
    database_url: str = "sqlite:///openmuse.db"
    api_keys: tuple[str, ...] = ()
    max_body_bytes: int = 8 * 1024 * 1024
    defaults: ModeSettings = field(default_factory=ModeSettings)
    media: MediaSettings = field(default_factory=MediaSettings)
    # Host header names served (the loopback names always are); "*" serves any
    allowed_hosts: tuple[str, ...] = LOOPBACK_HOSTS


def create_app(config: ServerConfig, engine: Engine | None = None) -> FastAPI:
    """The app. ``engine`` may be given (tests, embedding); otherwise it is created at start.
    Conversations stored before owners existed go to the first key's owner (or the local one)."""
    legacy = owner_of(config.api_keys[0]) if config.api_keys else LOCAL_OWNER
    store = Store(config.database_url, legacy_owner=legacy)
    state: dict[str, Any] = {"engine": engine}
    keys = Keys(config.api_keys)
    running = chat.Running()

    def get_engine() -> Engine:
        if state["engine"] is None:
            state["engine"] = create_engine(config.engine)
        return state["engine"]

    app = FastAPI(title="OpenMuse", version="0.1.0", docs_url=None, redoc_url=None)
    app.add_middleware(BodyLimit, limit=config.max_body_bytes)
    app.add_middleware(HostGuard, allowed=config.allowed_hosts)
    app.add_middleware(SecurityHeaders)
    app.state.store = store
    errors.install(app)

    async def owner(request: Request) -> str:
        found = keys.owner(request.headers.get("authorization", ""))
        if found is None:
            raise APIError(401, "a valid API key is needed (Authorization: Bearer KEY)",
                           "invalid_request_error", "invalid_api_key")
        return found

    @app.get("/health")
    async def health():
        e = state["engine"]
        return {"status": "ok", "engine": config.engine.engine, "model": e.model if e else None,
                "loaded": e is not None}

    @app.get("/v1/models", dependencies=[Depends(owner)])
    async def models():
        return model_list(get_engine().model)

    @app.post("/v1/chat/completions")
    async def completions(body: ChatCompletionBody, who: str = Depends(owner)):
        return await _chat(config, store, running, get_engine, body, who)

    _conversation_routes(app, store, running, owner)

    @app.get("/", include_in_schema=False)
    async def index():
        return FileResponse(str(STATIC.joinpath("index.html")))

    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    return app


def _conversation_routes(app: FastAPI, store: Store, running: chat.Running, owner) -> None:
    """List, read, rename and delete: each acts only on the caller's own conversations, and
    another key's conversation is a 404 as a missing one is."""

    def missing(cid: str) -> APIError:
        return APIError(404, f"no conversation '{cid}'", code="conversation_not_found")

    @app.get("/v1/conversations")
    async def list_conversations(who: str = Depends(owner)):
        return {"object": "list", "data": await run_in_threadpool(lambda: store.list(owner=who))}

    @app.get("/v1/conversations/{cid}")
    async def get_conversation(cid: str, who: str = Depends(owner)):
        conv = await run_in_threadpool(lambda: store.get(cid, owner=who))
        if conv is None:
            raise missing(cid)
        for m in conv["messages"]:
            m["html"] = render(m["content"]) if m["role"] == "assistant" else None
        return conv

    @app.patch("/v1/conversations/{cid}")
    async def rename_conversation(cid: str, body: RenameBody, who: str = Depends(owner)):
        conv = await run_in_threadpool(lambda: store.rename(cid, body.title, owner=who))
        if conv is None:
            raise missing(cid)
        return conv

    @app.delete("/v1/conversations/{cid}")
    async def delete_conversation(cid: str, who: str = Depends(owner)):
        if not await run_in_threadpool(lambda: store.delete(cid, owner=who)):
            raise missing(cid)
        running.deleted(cid)  # a stream answering into it ends now
        return {"id": cid, "object": "conversation.deleted", "deleted": True}


async def _chat(config: ServerConfig, store: Store, running: chat.Running, get_engine,
                body: ChatCompletionBody, who: str):
    """Check, prepare the media, store the question, then answer (streamed or not)."""
    mode_name = body.mode_name()
    if mode_name is None:
        raise APIError(404, f"unknown model '{body.model}' (use muse-instant, muse-thinking, "
                            "muse-contemplating, or muse with reasoning_effort)",
                       "invalid_request_error", "model_not_found", "model")
    if body.n not in (None, 1):
        raise APIError(400, "n must be 1: OpenMuse returns one choice (ask again, or use muse-contemplating "
                            "for several agents)", code="unsupported_value", param="n")
    mode: Mode = create_mode(mode_name, chat.mode_settings(config.defaults, body))
    messages = body.chat_messages()
    if not any(m.role == "user" and (m.text().strip() or has_media(m)) for m in messages):
        raise APIError(400, "the conversation has no user message with text or media", param="messages")
    cid = body.muse.conversation_id
    if cid and not await run_in_threadpool(lambda: store.exists(cid, owner=who)):
        raise APIError(404, f"no conversation '{cid}'", code="conversation_not_found", param="muse.conversation_id")
    eng = await run_in_threadpool(get_engine)
    # every media part is checked and prepared before the mode runs or anything is stored
    prepared = await run_in_threadpool(prepare_media, messages, eng.capabilities, config.media, body.media_names())
    media = prepared.report()
    if body.muse.ground:
        mode = grounding_mode(body, messages, eng)
    conv_id = await run_in_threadpool(chat.begin, store, who, body, messages, media)
    if body.stream:
        return StreamingResponse(chat.stream(eng, mode, prepared.messages, media, body, store, who, conv_id, running),
                                 media_type="text/event-stream", headers={"cache-control": "no-cache"})
    try:
        result = await run_in_threadpool(chat.run, mode, eng, prepared.messages, media)
    except Exception as e:  # the question stays, with the error beside it; the client gets the error
        await run_in_threadpool(chat.fail, store, who, conv_id, mode.name, muse_error_body(e)[1])
        raise
    if not await run_in_threadpool(chat.finish, store, who, conv_id, result):
        raise chat.deleted_error()
    return chat.response(body, result, conv_id)
