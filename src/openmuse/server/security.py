"""The HTTP server's guards: API keys, the Host allow-list, security headers, the body limit.

What they cover:
- ``Keys``: a bearer key is compared with every configured key in constant time
  (``hmac.compare_digest``, no early exit), and names the owner of the conversations it may
  touch (the key's SHA-256, ``store.owner_of``); without keys everything belongs to one local
  owner.
- ``HostGuard``: requests whose ``Host`` header is not allowed (by default the loopback names
  and the bind host) get a 400 error object, so a web page the user visits cannot reach the
  loopback server through DNS rebinding (its requests carry the attacker's host name).
- ``SecurityHeaders``: a Content-Security-Policy that lets the web app load scripts, styles,
  images and connections from its own origin only (images also from ``data:``/``blob:``), no
  framing, no sniffing, no referrer; on every response, API included.
- ``BodyLimit``: any request body over the limit is a 413 error object, whether its length is
  declared or it arrives chunked (the bytes are counted while read, and never more than the
  limit is held).

What they do not cover: transport security (run behind TLS for anything beyond loopback),
rate limiting or brute-force lockout, per-key quotas, and a browser extension or local program
that can read the key from the page's storage. ``--allowed-host '*'`` turns the Host check off.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Iterable

from .errors import error_body
from .store import LOCAL_OWNER, owner_of

LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
       "media-src 'self' data: blob:; connect-src 'self'; font-src 'self'; object-src 'none'; "
       "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
HEADERS = [(b"content-security-policy", CSP.encode()), (b"x-content-type-options", b"nosniff"),
           (b"referrer-policy", b"no-referrer"), (b"x-frame-options", b"DENY"),
           (b"cross-origin-opener-policy", b"same-origin"), (b"cross-origin-resource-policy", b"same-origin")]


class Keys:
    """The configured API keys; ``owner(authorization)`` is the caller's owner, or None."""

    def __init__(self, keys: Iterable[str]):
        self.keys = tuple(k.encode() for k in keys if k)  # an empty key would match "Bearer "
        self.owners = tuple(owner_of(k.decode()) for k in self.keys)

    def owner(self, authorization: str) -> str | None:
        if not self.keys:
            return LOCAL_OWNER
        scheme, _, given = authorization.partition(" ")
        candidate = given.strip().encode()
        found = None
        for key, owner in zip(self.keys, self.owners):  # every key compared, whatever matched
            if hmac.compare_digest(key, candidate):
                found = owner
        return found if scheme.lower() == "bearer" else None


async def _send_json(send, status: int, body: dict, headers: list | None = None) -> None:
    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(data)).encode()), *(headers or [])]})
    await send({"type": "http.response.body", "body": data})


def host_name(header: str) -> str:
    """The name part of a Host header: ``[::1]:8080`` → ``::1``, ``Example.com.:80`` → ``example.com``."""
    h = header.strip().lower()
    if h.startswith("["):
        return h[1:h.find("]")] if "]" in h else h
    if h.count(":") == 1:
        h = h.split(":", 1)[0]
    return h.rstrip(".")


class HostGuard:
    """ASGI middleware: answer only requests whose Host header names an allowed host."""

    def __init__(self, app, allowed: Iterable[str]):
        self.app = app
        names = {host_name(h) for h in allowed if h.strip()}
        self.any = "*" in names
        self.allowed = names | set(LOOPBACK_HOSTS)

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket") or self.any:
            return await self.app(scope, receive, send)
        raw = dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1")
        if host_name(raw) in self.allowed:
            return await self.app(scope, receive, send)
        if scope["type"] == "websocket":
            return await send({"type": "websocket.close", "code": 1008})
        shown = raw[:100] or "(none)"
        await _send_json(send, 400, error_body(
            f"Host {shown!r} is not allowed; start the server with --allowed-host NAME to serve it",
            "invalid_request_error", "host_not_allowed"))


class SecurityHeaders:
    """ASGI middleware: the security headers on every HTTP response."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def with_headers(msg):
            if msg["type"] == "http.response.start":
                present = {k.lower() for k, _ in msg.get("headers", [])}
                msg = {**msg, "headers": [*msg.get("headers", []), *(h for h in HEADERS if h[0] not in present)]}
            await send(msg)

        await self.app(scope, receive, with_headers)


class BodyLimit:
    """ASGI middleware: read the whole body first, counting bytes, and answer 413 as soon as it
    passes ``limit``; the app then gets the body as one message."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await self._too_large(send)
        chunks, seen = [], 0
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return
            chunk = msg.get("body", b"")
            seen += len(chunk)
            if seen > self.limit:
                return await self._too_large(send)
            chunks.append(chunk)
            if not msg.get("more_body"):
                break
        pending = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]

        async def replay():
            return pending.pop() if pending else await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, send):
        await _send_json(send, 413, error_body(f"request body over {self.limit} bytes", "invalid_request_error",
                                               "request_too_large"), [(b"connection", b"close")])
