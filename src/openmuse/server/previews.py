"""Previews of built pages (``muse-build``) for the web app, isolated from the app.

``POST /v1/previews`` (with the API key) takes ``{"html": …}`` and returns ``{"id", "url"}``;
``GET /preview/{id}`` serves that page to an ``<iframe sandbox="allow-scripts">``. The id is
128 random bits (a capability: the iframe cannot send the key) and the page is served with a
CSP ``sandbox allow-scripts`` of its own, so even opened directly it runs in an opaque origin:
no access to the app's storage (where the key is kept), cookies or API, no request out (the
built file's own rules: ``default-src 'none'``), framed only by the app.

What it does not cover: a page that misleads the person looking at it (it can draw anything
inside its frame), and previews surviving a restart (they are kept in memory, the newest
``KEEP``; the web app asks again from the stored file when it reopens a conversation).
"""

from __future__ import annotations

import secrets
from collections import OrderedDict
from threading import Lock

from fastapi import Depends, FastAPI
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field

from ..build.check import MAX_BYTES
from .errors import APIError

KEEP = 64
CSP = ("sandbox allow-scripts; default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
       "img-src data:; font-src data:; media-src data:; connect-src 'none'; form-action 'none'; "
       "base-uri 'none'; frame-ancestors 'self'")


class PreviewBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    html: str = Field(max_length=MAX_BYTES)


class Previews:
    def __init__(self, keep: int = KEEP):
        self.keep, self.pages, self.lock = keep, OrderedDict[str, str](), Lock()

    def add(self, html: str) -> str:
        pid = secrets.token_urlsafe(16)
        with self.lock:
            self.pages[pid] = html
            while len(self.pages) > self.keep:
                self.pages.popitem(last=False)
        return pid

    def get(self, pid: str) -> str | None:
        with self.lock:
            return self.pages.get(pid)


def preview_routes(app: FastAPI, owner) -> Previews:
    previews = Previews()

    @app.post("/v1/previews", dependencies=[Depends(owner)])
    async def create_preview(body: PreviewBody):
        pid = previews.add(body.html)
        return {"id": pid, "url": f"/preview/{pid}"}

    @app.get("/preview/{pid}", include_in_schema=False)
    async def preview(pid: str):
        page = previews.get(pid)
        if page is None:
            raise APIError(404, "no such preview (previews are kept in memory; build again or reopen the conversation)",
                           "invalid_request_error", "preview_not_found")
        return HTMLResponse(page, headers={"content-security-policy": CSP, "x-frame-options": "SAMEORIGIN",
                                           "cache-control": "no-store", "cross-origin-resource-policy": "same-origin"})

    return previews
