"""Tools from Model Context Protocol servers, wrapped into the shape of a built-in tool.

The servers are named in a JSON file (``ToolSettings.mcp_config``) in the shape other MCP
clients use::

    {"mcpServers": {
        "files": {"command": "npx", "args": ["-y", "some-mcp-server"], "env": {"KEY": "v"}, "cwd": "."},
        "web":   {"url": "http://127.0.0.1:8931/mcp", "headers": {"Authorization": "Bearer …"}}}}

A ``command`` entry is spawned and spoken to over stdio (its environment is the SDK's safe
subset — HOME, PATH, … — plus ``env``; a relative ``cwd`` is taken from the file's folder; its
stderr goes to a temporary file whose last line explains a failed start). A ``url`` entry is
reached over streamable HTTP. Optional keys: ``type`` (``stdio``/``http``/``streamable-http``;
``sse`` is refused), ``timeout`` (seconds to connect and list tools, default 30) and
``disabled: true``; other keys (other clients' settings) are ignored. A bad file or entry, and
a server that cannot be started or reached, is a one-line ``ConfigError`` naming both.

Naming: every MCP tool is ``<server>__<tool>`` (always prefixed, so a name does not depend on
the other servers), characters outside ``[A-Za-z0-9_-]`` made ``_`` (OpenAI refuses dots), cut
to 64 with a short hash when longer; two tools ending up with one name are a ``ConfigError``.

The SDK is async and tool calls are sync, from any thread: one background thread runs an event
loop owning every session, each in one task (opened through an ``AsyncExitStack`` under a
connect deadline, held open until ``close``). Calls go in with ``run_coroutine_threadsafe``,
bounded by ``timeout_s`` (the session's read timeout, which also cancels the call on the
server), so ``own_deadline`` is True. ``close`` ends the sessions (stdio children: stdin
closed, then SIGTERM/SIGKILL) and the loop. Capping output and flagging injection are ToolBox's.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import json
import logging
import math
import os
import re
import tempfile
import threading
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx2
from mcp import Client, Implementation, MCPError, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import REQUEST_TIMEOUT

from .. import __version__
from ..errors import ConfigError
from ..functions.spec import Tool
from .base import Observation, ToolError, ToolSettings

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 30.0  # connect + list tools, per server, unless its entry says "timeout"
CLOSE_TIMEOUT_S = 10.0  # the SDK's stdio shutdown is bounded at ~6 s (2 s grace, TERM, KILL)
GRACE_S = 2.0  # past the read timeout, before the caller stops waiting on the loop
_BAD_CHARS = re.compile(r"[^A-Za-z0-9_-]")
_HTTP_TYPES = ("http", "streamable-http", "streamableHttp", "streamable_http")


@dataclass(frozen=True)
class ServerConfig:
    """One entry of ``mcpServers``: either ``command`` (stdio) or ``url`` (streamable HTTP)."""

    name: str
    source: str  # the config file, for messages
    command: str | None = None
    args: tuple[str, ...] = ()
    env: dict[str, str] | None = None
    cwd: str | None = None
    url: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    timeout_s: float = CONNECT_TIMEOUT_S


def read_config(path: Path | str) -> list[ServerConfig]:
    """The enabled servers of an MCP config file; a ``ConfigError`` for anything malformed."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(f"MCP config {path}: cannot read it ({e.strerror or e})") from None
    except ValueError as e:  # bad JSON, or bytes that are not UTF-8
        why = f"{e.msg}, line {e.lineno}" if isinstance(e, json.JSONDecodeError) else "not UTF-8"
        raise ConfigError(f"MCP config {path}: not valid JSON ({why})") from None
    servers = data.get("mcpServers") if isinstance(data, dict) else None
    if not isinstance(servers, dict):
        raise ConfigError(f'MCP config {path}: expected an object {{"mcpServers": {{"<name>": {{…}}}}}}')
    return [_entry(path, name, raw) for name, raw in servers.items()
            if not (isinstance(raw, dict) and raw.get("disabled") is True)]


def _entry(path: Path, name: str, raw: Any) -> ServerConfig:
    def bad(problem: str) -> ConfigError:
        return ConfigError(f"MCP config {path}: server '{name}': {problem}")

    def strings(key: str, kind: type) -> Any:
        value = raw.get(key)
        if value is None:
            return None
        ok = (isinstance(value, list) and all(isinstance(v, str) for v in value) if kind is list else
              isinstance(value, dict) and all(isinstance(v, str) for v in value.values()) if kind is dict else
              isinstance(value, str) and value.strip() != "")
        if not ok:
            want = {list: "a list of strings", dict: "an object of strings", str: "a non-empty string"}[kind]
            raise bad(f'"{key}" must be {want}')
        return value

    if not name.strip():
        raise ConfigError(f"MCP config {path}: a server has an empty name")
    if not isinstance(raw, dict):
        raise bad("expected an object with \"command\" or \"url\"")
    if (kind := raw.get("type")) == "sse":
        raise bad('the SSE transport is not supported; give the server\'s streamable HTTP "url"')
    if kind not in (None, "stdio", *_HTTP_TYPES):
        raise bad(f"unknown \"type\" {kind!r} (stdio or http)")
    command, url = strings("command", str), strings("url", str)
    if bool(command) == bool(url):
        raise bad('needs exactly one of "command" (stdio) or "url" (streamable HTTP)')
    if (kind == "stdio" and url) or (kind in _HTTP_TYPES and command):
        raise bad(f'"type" {kind!r} does not fit its "{"url" if url else "command"}"')
    if url and not url.startswith(("http://", "https://")):
        raise bad(f'"url" must start with http:// or https:// (got {url!r})')
    timeout = raw.get("timeout", CONNECT_TIMEOUT_S)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout <= 600:
        raise bad('"timeout" must be a number of seconds, above 0 and at most 600')
    cwd = strings("cwd", str)
    if cwd and not Path(cwd).is_absolute():
        cwd = str(path.parent / cwd)
    return ServerConfig(name=name, source=str(path), command=command, args=tuple(strings("args", list) or ()),
                        env=strings("env", dict), cwd=cwd, url=url, headers=dict(strings("headers", dict) or {}),
                        timeout_s=float(timeout))


def tool_name(server: str, tool: str) -> str:
    """``<server>__<tool>``, made to fit ``^[A-Za-z0-9_-]{1,64}$``."""
    full = f"{_BAD_CHARS.sub('_', server)}__{_BAD_CHARS.sub('_', tool)}"
    if len(full) <= 64:
        return full
    digest = hashlib.sha1(f"{server}\0{tool}".encode()).hexdigest()[:8]
    return f"{full[:55]}_{digest}"


def result_text(result: Any) -> str:
    """The text of a ``CallToolResult``: text blocks joined, other content described briefly."""
    parts: list[str] = []
    for block in result.content or []:
        kind = getattr(block, "type", "")
        if kind == "text":
            parts.append(block.text)
        elif kind in ("image", "audio"):
            size = len(block.data or "") * 3 // 4
            parts.append(f"[{kind}: {block.mime_type}, about {size} bytes]")
        elif kind == "resource_link":
            parts.append(f"[resource link: {block.name} <{block.uri}>]")
        elif kind == "resource":
            res = block.resource
            text = getattr(res, "text", None)
            parts.append(text if text is not None else f"[resource: {res.uri} ({res.mime_type or 'binary'})]")
        else:
            parts.append(f"[{kind or type(block).__name__} content]")
    if not parts and result.structured_content is not None:
        parts.append(json.dumps(result.structured_content, ensure_ascii=False))
    return "\n".join(parts)


def _reason(exc: BaseException) -> str:
    """One line saying why: the first leaf of an exception group, its message or its type."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    text = (exc.message if isinstance(exc, MCPError) else str(exc)).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return line[:300]


def _tail(file: Any, limit: int = 4000) -> str:
    """The last non-blank line a child wrote to its stderr file (read once the child is gone)."""
    file.seek(max(0, os.fstat(file.fileno()).st_size - limit))
    data = file.read().decode("utf-8", "replace")
    lines = [ln.strip() for ln in data.splitlines() if ln.strip()]
    return lines[-1][:300] if lines else ""


class _Connection:
    """One server's session, owned by one task on the hub's loop (anyio scopes must be exited
    by the task that entered them)."""

    def __init__(self, cfg: ServerConfig):
        self.cfg = cfg
        self.client: Client | None = None
        self.tools: list[Any] = []
        self.task: asyncio.Task[None] | None = None
        self.stop: asyncio.Event | None = None

    async def start(self) -> None:
        """Connect and list the tools; raise why not (after the transport is wound down)."""
        self.stop = asyncio.Event()
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.task = asyncio.create_task(self._keep(ready), name=f"mcp-{self.cfg.name}")
        await ready

    async def _keep(self, ready: asyncio.Future[None]) -> None:
        errlog = None if self.cfg.url else tempfile.TemporaryFile()  # noqa: SIM115 - closed in finally
        try:
            with anyio.CancelScope(deadline=anyio.current_time() + self.cfg.timeout_s) as scope:
                async with AsyncExitStack() as stack:
                    self.client = await stack.enter_async_context(await self._client(stack, errlog))
                    self.tools = await self._list_tools()
                    scope.deadline = math.inf  # connected: held open until ``stop``
                    ready.set_result(None)
                    await self.stop.wait()  # type: ignore[union-attr]
            if scope.cancelled_caught and not ready.done():
                raise TimeoutError(f"no answer in {self.cfg.timeout_s:g} s")
        except Exception as e:  # noqa: BLE001 - handed to start(), or logged once connected
            why = _reason(e)
            if errlog is not None and (said := _tail(errlog)):
                why += f" (stderr: {said})"
            if ready.done():
                log.warning("MCP server '%s' ended: %s", self.cfg.name, why)
            else:
                ready.set_exception(ConnectionError(why))
        finally:
            self.client = None
            if errlog is not None:
                errlog.close()
            if not ready.done():
                ready.set_exception(ConnectionError("closed before it was ready"))

    async def _client(self, stack: AsyncExitStack, errlog: Any) -> Client:
        cfg = self.cfg
        if cfg.url:
            http = await stack.enter_async_context(
                httpx2.AsyncClient(headers=cfg.headers, timeout=httpx2.Timeout(30.0, read=300.0)))
            transport: Any = streamable_http_client(cfg.url, http_client=http)
        else:
            params = StdioServerParameters(command=cfg.command or "", args=list(cfg.args), env=cfg.env,
                                           cwd=cfg.cwd)
            transport = stdio_client(params, errlog=errlog)
        return Client(transport, cache=None, client_info=Implementation(name="openmuse", version=__version__))

    async def _list_tools(self) -> list[Any]:
        tools, cursor = [], None
        for _ in range(100):  # a paginator that never ends cannot hang the start
            page = await self.client.list_tools(cursor=cursor)  # type: ignore[union-attr]
            tools.extend(page.tools)
            if not (cursor := page.next_cursor):
                return tools
        return tools

    async def call(self, name: str, args: dict[str, Any], timeout: float) -> Any:
        if self.client is None:
            raise ToolError(f"the MCP server '{self.cfg.name}' is not connected")
        return await self.client.call_tool(name, args, read_timeout_seconds=timeout)


class _Hub:
    """The background event loop owning every session of one ``load_servers`` call."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.conns: list[_Connection] = []
        self.users = 0
        self._lock, self._closed = threading.Lock(), False
        self._thread = threading.Thread(target=self._run, daemon=True, name="mcp-loop")
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()
        pending = [t for t in asyncio.all_tasks(self.loop) if not t.done()]
        for t in pending:  # only left when a shutdown overran CLOSE_TIMEOUT_S
            t.cancel()
        self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.close()

    def run(self, coro: Any, timeout: float) -> Any:
        """Run ``coro`` on the loop from any thread; ``TimeoutError`` past ``timeout``."""
        if self._closed:
            coro.close()
            raise ToolError("the MCP connections are closed")
        fut = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return fut.result(timeout)
        except concurrent.futures.TimeoutError:
            fut.cancel()
            raise TimeoutError from None

    def open(self, configs: list[ServerConfig]) -> None:
        """Connect to every server at once; a ``ConfigError`` naming the first that failed."""
        self.conns = [_Connection(c) for c in configs]

        async def start_all() -> list[Any]:
            return await asyncio.gather(*(c.start() for c in self.conns), return_exceptions=True)

        budget = max(c.timeout_s for c in configs) + CLOSE_TIMEOUT_S
        try:
            outcomes = self.run(start_all(), budget)
        except TimeoutError:
            outcomes = [TimeoutError(f"no answer in {budget:g} s")] * len(configs)
        for cfg, out in zip(configs, outcomes):
            if isinstance(out, BaseException):
                how = f"command {cfg.command!r}" if cfg.command else f"url {cfg.url}"
                raise ConfigError(f"MCP server '{cfg.name}' ({cfg.source}, {how}) failed to start: "
                                  f"{_reason(out)}")

    def release(self) -> None:
        """One tool is done with the hub; the last one closes it."""
        with self._lock:
            self.users -= 1
            last = self.users <= 0
        if last:
            self.close()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True

        async def stop_all() -> None:
            for c in self.conns:
                if c.stop is not None:
                    c.stop.set()
            await asyncio.gather(*(c.task for c in self.conns if c.task), return_exceptions=True)

        fut = asyncio.run_coroutine_threadsafe(stop_all(), self.loop)
        try:
            fut.result(CLOSE_TIMEOUT_S)
        except Exception as e:  # noqa: BLE001 - a server that will not stop must not stop OpenMuse
            log.warning("MCP servers did not all close: %s", _reason(e))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(CLOSE_TIMEOUT_S)


class McpTool:
    """One MCP tool with a built-in tool's surface: ``name``, ``spec()``, ``call()``, ``close()``."""

    own_deadline = True  # the session's read timeout bounds each call (and cancels it remotely)

    def __init__(self, hub: _Hub, conn: _Connection, tool: Any, settings: ToolSettings):
        self._hub, self._conn, self.settings = hub, conn, settings
        self.server, self.remote_name = conn.cfg.name, tool.name
        self.name = tool_name(self.server, tool.name)
        self.description = tool.description or tool.title or f"{tool.name} (MCP server {self.server})"
        self.parameters: dict[str, Any] = dict(tool.input_schema or {"type": "object", "properties": {}})
        self._closed = False

    def spec(self) -> Tool:
        return Tool(name=self.name, description=self.description, parameters=self.parameters)

    def call(self, **args: Any) -> Observation | str:
        limit = self.settings.timeout_s
        late = ToolError(f"{self.name} ran past its {limit:g} s limit")
        try:
            result = self._hub.run(self._conn.call(self.remote_name, args, limit), limit + GRACE_S)
        except TimeoutError:
            raise late from None
        except MCPError as e:
            err = late if e.code == REQUEST_TIMEOUT else ToolError(f"MCP server '{self.server}': {_reason(e)}")
            raise err from None
        text = result_text(result)
        if result.is_error:
            raise ToolError(text.strip() or f"{self.name} reported an error")
        return text

    def close(self) -> None:
        closed, self._closed = self._closed, True
        if not closed:
            self._hub.release()


def load_servers(path: Path | str, settings: ToolSettings) -> list[McpTool]:
    """Connect to every server the file names and return one tool per MCP tool they list."""
    configs = read_config(path)
    if not configs:
        return []
    hub = _Hub()
    try:
        hub.open(configs)
        tools = [McpTool(hub, c, t, settings) for c in hub.conns for t in c.tools]
        seen: dict[str, McpTool] = {}
        for t in tools:
            if (other := seen.setdefault(t.name, t)) is not t:
                raise ConfigError(f"MCP config {path}: tools '{other.server}/{other.remote_name}' and "
                                  f"'{t.server}/{t.remote_name}' both become '{t.name}'")
    except BaseException:
        hub.close()
        raise
    hub.users = len(tools)
    if not tools:  # nothing will ever close it
        hub.close()
    return tools
