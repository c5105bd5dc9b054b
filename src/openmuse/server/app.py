"""The OpenAI-compatible HTTP server and the web app (FastAPI).

Handlers stay thin: parse, check, answer through the ``Assistant`` (``chat.py``), serialise,
store. Streaming follows the OpenAI SSE format; agent progress goes out as named events
(``event: muse.agent``, ``muse.synthesis``, ``muse.result``) that OpenAI clients skip. Every
error is an OpenAI error object (``errors.py``). Concurrent requests share the engine through
its scheduler; each carries a ``RequestControl``: a client that disconnects (or deletes the
conversation) cancels its generation, a request that waits past ``queue_timeout_s`` gets a 503,
and ``max_request_tokens`` caps what one request may ask of the engine.

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

from .. import registry
from ..assistant import Assistant
from ..engines import Engine, EngineSettings, create_engine
from ..media import MediaSettings
from ..modes.base import has_media
from ..safety.settings import SafetySettings
from ..tools.base import ToolSettings
from . import chat, chat_sse, completions, errors, responses
from .errors import APIError
from .render import render
from .schemas import MAX_N, PREFIX, ChatCompletionBody, RenameBody, model_list
from .previews import preview_routes
from .security import LOOPBACK_HOSTS, BodyLimit, HostGuard, Keys, SecurityHeaders
from .store import LOCAL_OWNER, Store, owner_of

STATIC = files("openmuse.server").joinpath("static")


@dataclass(frozen=True)
class ServerConfig:
    engine: EngineSettings = field(default_factory=EngineSettings)
    database_url: str = "sqlite:///openmuse.db"
    api_keys: tuple[str, ...] = ()
    max_body_bytes: int = 8 * 1024 * 1024
    media: MediaSettings = field(default_factory=MediaSettings)
    # Each request's hold on the engine (engines/control.py): the longest wait in its queue
    # before a 503, and the most tokens (prompts + max_tokens of all its sequences) it may ask for.
    queue_timeout_s: float | None = 60.0
    max_request_tokens: int | None = None
    # Host header names served (the loopback names always are); "*" serves any
    allowed_hosts: tuple[str, ...] = LOOPBACK_HOSTS
    # The safety layer and the health profile's default (a client may ask for a profile only)
    safety: SafetySettings = field(default_factory=SafetySettings)
    # The operator's tool limits and switches (sandbox, fetch, MCP servers) for the agent mode
    tools: ToolSettings = field(default_factory=ToolSettings)


def create_app(config: ServerConfig, engine: Engine | None = None) -> FastAPI:
    """The app. ``engine`` may be given (tests, embedding); otherwise it is created at start.
    Conversations stored before owners existed go to the first key's owner (or the local one)."""
    legacy = owner_of(config.api_keys[0]) if config.api_keys else LOCAL_OWNER
    store = Store(config.database_url, legacy_owner=legacy)
    state: dict[str, Any] = {"engine": engine, "assistant": None}
    keys = Keys(config.api_keys)
    running = chat.Running()
    memory = responses.Memory()

    def get_engine() -> Engine:
        if state["engine"] is None:
            state["engine"] = create_engine(config.engine)
        return state["engine"]

    def get_assistant() -> Assistant:
        if state["assistant"] is None:
            state["assistant"] = Assistant(get_engine(), config.media, queue_timeout_s=config.queue_timeout_s,
                                           max_request_tokens=config.max_request_tokens, safety=config.safety,
                                           tools=config.tools)
        return state["assistant"]

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

    @app.get("/v1/models/{model_id}", dependencies=[Depends(owner)])
    async def model(model_id: str):
        found = next((m for m in model_list(get_engine().model)["data"] if m["id"] == model_id), None)
        if found is None:
            raise APIError(404, f"no model '{model_id}' (use {', '.join(model_names())}, or muse)",
                           code="model_not_found", param="model")
        return found

    @app.post("/v1/chat/completions")
    async def chat_completions(body: ChatCompletionBody, request: Request, who: str = Depends(owner)):
        return await _chat(config, store, running, get_assistant, body, who, request)

    @app.post("/v1/responses")
    async def create_response(body: responses.ResponsesBody, request: Request, who: str = Depends(owner)):
        earlier = memory.get(who, body.previous_response_id) if body.previous_response_id else []
        chat_body = responses.to_chat(body, earlier)
        b = await begin(store, get_assistant, chat_body, who)
        shaper = responses.Shaper(body, b.conv_id)
        sent = [m.model_dump(exclude_none=True) for m in chat_body.messages]

        def remember(result) -> None:
            if body.store:
                memory.put(who, shaper.id, responses.history(sent, result))

        if body.stream:
            fmt = responses.ResponsesFormat(shaper, on_done=remember)
            return StreamingResponse(chat.stream(b.assistant, b.reqs, b.control, fmt, store, who, b.conv_id,
                                                 running), media_type="text/event-stream",
                                     headers={"cache-control": "no-cache"})
        results = await chat.answer(b.assistant, b.reqs, b.control, store, who, b.conv_id, running, request)
        remember(results[0])
        return shaper.response(results[0])

    @app.post("/v1/completions")
    async def text_completions(body: completions.CompletionsBody, request: Request, who: str = Depends(owner)):
        b = await begin(store, get_assistant, body.to_chat(), who)
        if body.stream:
            fmt = completions.CompletionsFormat(body, len(b.reqs))
            return StreamingResponse(chat.stream(b.assistant, b.reqs, b.control, fmt, store, who, b.conv_id,
                                                 running), media_type="text/event-stream",
                                     headers={"cache-control": "no-cache"})
        results = await chat.answer(b.assistant, b.reqs, b.control, store, who, b.conv_id, running, request)
        return completions.response(body, results)

    _conversation_routes(app, store, running, owner)
    preview_routes(app, owner)

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


@dataclass
class Begun:
    """A request checked, its media prepared and its question stored: ready to answer."""

    assistant: Assistant
    reqs: list  # one prepared ``Request`` per choice
    conv_id: str | None
    control: Any


async def begin(store: Store, get_assistant, body: ChatCompletionBody, who: str) -> Begun:
    """Check, prepare the media (the Assistant), store the question: every front door of the
    API (Chat Completions, Responses, Completions) goes through here."""
    mode_name = body.mode_name()
    if mode_name is None:
        raise APIError(404, f"unknown model '{body.model}' (use {', '.join(model_names())}, or muse with "
                            "reasoning_effort)", "invalid_request_error", "model_not_found", "model")
    n = 1 if body.n is None else body.n
    if not 1 <= n <= MAX_N:
        raise APIError(400, f"n must be from 1 to {MAX_N} (each choice is a whole answer of the mode)",
                       code="invalid_value", param="n")
    options = chat.mode_options(mode_name, body)
    output, fields = body.output(), body.answer_fields()
    messages = body.chat_messages()
    if not any(m.role == "user" and (m.text().strip() or has_media(m)) for m in messages):
        raise APIError(400, "the conversation has no user message with text or media", param="messages")
    cid = body.muse.conversation_id
    if cid and not await run_in_threadpool(lambda: store.exists(cid, owner=who)):
        raise APIError(404, f"no conversation '{cid}'", code="conversation_not_found", param="muse.conversation_id")
    assistant: Assistant = await run_in_threadpool(get_assistant)
    # every media part is checked and prepared before the mode runs or anything is stored
    req = await run_in_threadpool(lambda: assistant.prepare(messages, mode_name, options,
                                                            media_names=body.media_names(),
                                                            profile=body.muse.profile, output=output,
                                                            answer_fields=fields))
    reqs = [req, *(assistant.fork(req, i) for i in range(1, n))]
    conv_id = await run_in_threadpool(chat.begin, store, who, body, messages, req.media)
    return Begun(assistant, reqs, conv_id, assistant.control())


async def _chat(config: ServerConfig, store: Store, running: chat.Running, get_assistant,
                body: ChatCompletionBody, who: str, request: Request):
    """Check, prepare, store the question, then answer (streamed or not)."""
    b = await begin(store, get_assistant, body, who)
    if body.stream:
        fmt = chat_sse.ChatFormat(body, len(b.reqs), b.conv_id)
        return StreamingResponse(chat.stream(b.assistant, b.reqs, b.control, fmt, store, who, b.conv_id, running),
                                 media_type="text/event-stream", headers={"cache-control": "no-cache"})
    results = await chat.answer(b.assistant, b.reqs, b.control, store, who, b.conv_id, running, request)
    return chat.response(body, results, b.conv_id)


def model_names() -> list[str]:
    return [PREFIX + n for n in registry.names("mode")]
