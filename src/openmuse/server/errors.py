"""OpenAI error objects for every failure of the HTTP server.

``{"error": {"message", "type", "param", "code"}}`` with the right status, never a traceback.
Errors that come from the engine (5xx, and a model the engine does not serve) are redacted: the
message names "the engine" instead of its URL, which may carry a host, a port or credentials.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import (
    Cancelled,
    ConfigError,
    ContextOverflow,
    EngineBusy,
    EngineUnavailable,
    ModelNotFound,
    MuseError,
)


class APIError(Exception):
    def __init__(self, status: int, message: str, type_: str = "invalid_request_error",
                 code: str | None = None, param: str | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.code, self.param = status, message, type_, code, param


def error_body(message: str, type_: str, code: str | None = None, param: str | None = None) -> dict:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


_MUSE_STATUS = {ConfigError: 400, ContextOverflow: 400, ModelNotFound: 404, EngineUnavailable: 502,
                EngineBusy: 503, Cancelled: 499}
_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+")


def muse_status(e: MuseError) -> int:
    return next((s for cls, s in _MUSE_STATUS.items() if isinstance(e, cls)), 500)


def redact(text: str) -> str:
    """``text`` with every URL replaced by "the engine"."""
    return _URL.sub("the engine", text)


def muse_error_body(e: BaseException) -> tuple[int, dict[str, Any]]:
    """(status, error object) for any exception; engine errors redacted, others by type only."""
    if not isinstance(e, MuseError):
        return 500, error_body(f"internal error: {type(e).__name__}", "server_error", "internal_error")
    status = muse_status(e)
    message = redact(str(e)) if status >= 500 or isinstance(e, ModelNotFound) else str(e)
    return status, error_body(message, "server_error" if status >= 500 else "invalid_request_error", e.code,
                              getattr(e, "param", None))


def _content_error(errs: list[dict[str, Any]]) -> tuple[str, str] | None:
    """(message, where) for a bad content part, from pydantic's errors for ``str | list[Part]``:
    the error of the list branch, its location without pydantic's branch and tag names."""
    content = [e for e in errs if [str(x) for x in e.get("loc", ())][1:2] == ["messages"]
               and len(e["loc"]) > 3 and e["loc"][3] == "content"]
    if not content:
        return None
    listed = [e for e in content if len(e["loc"]) > 4 and str(e["loc"][4]).startswith("list[")]
    if not listed or listed[0]["type"] == "list_type":
        return "content must be a string or a list of content parts", ".".join(map(str, content[0]["loc"][1:4]))
    err = listed[0]
    loc = [str(x) for x in err["loc"][1:4]] + [str(x) for x in err["loc"][5:6]] + [str(x) for x in err["loc"][7:]]
    where = ".".join(loc)
    return f"{where}: {err['msg']}", where


def _validation(e: RequestValidationError) -> JSONResponse:
    """Bad JSON and bad content parts are 400; any other schema error 422, naming the field."""
    errs = e.errors()
    first = errs[0] if errs else {"msg": "invalid request", "loc": ()}
    if first.get("type") == "json_invalid":
        return JSONResponse(error_body("the body is not valid JSON", "invalid_request_error", "invalid_json"),
                            status_code=400)
    part = _content_error(errs)
    if part is not None:
        return JSONResponse(error_body(part[0], "invalid_request_error", "invalid_content_part", part[1]),
                            status_code=400)
    loc = [str(x) for x in first.get("loc", ()) if x != "body"]
    where = ".".join(loc) or None
    msg = f"{where}: {first['msg']}" if where else first["msg"]
    return JSONResponse(error_body(msg, "invalid_request_error", "invalid_value", where), status_code=422)


def install(app: FastAPI) -> None:
    """Register the handlers that turn every exception into an error object."""

    @app.exception_handler(APIError)
    async def _api_error(_r, e: APIError):
        return JSONResponse(error_body(e.message, e.type, e.code, e.param), status_code=e.status)

    @app.exception_handler(MuseError)
    async def _muse_error(_r, e: MuseError):
        status, body = muse_error_body(e)
        return JSONResponse(body, status_code=status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_r, e: RequestValidationError):
        return _validation(e)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_r, e: StarletteHTTPException):
        return JSONResponse(error_body(str(e.detail), "invalid_request_error", None), status_code=e.status_code)

    @app.exception_handler(Exception)
    async def _unexpected(_r, e: Exception):
        status, body = muse_error_body(e)
        return JSONResponse(body, status_code=status)
