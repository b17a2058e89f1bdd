"""One JSON error shape for every route, the collector's included:

``{"success": false, "code": "<machine-readable>", "message": "<what went wrong>",
"instruction": "<what to do>"}``

Unexpected failures (a bug) answer 500 with ``code: internal_error`` in the same shape; the
server logs their traceback once.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException

from passerelle.errors import EngineError, PasserelleError, ProjectError


class ErrorBody(BaseModel):
    """The error shape, as published in the OpenAPI schema of every route."""

    model_config = ConfigDict(extra="allow")

    success: Literal[False]
    code: str
    message: str
    instruction: str | None = None


# Declared on every REST route (FastAPI's own 422 shape is replaced by ours).
RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": what} for status, what in (
        (400, "The request cannot be answered (unknown name, unsafe filter...)"),
        (401, "No credential, or one that is unknown, expired or revoked"),
        (403, "The caller lacks the permission or token scope the route needs"),
        (404, "No such person or route"),
        (422, "The request does not match the schema, or the project has problems"),
        (500, "A bug in Passerelle (code internal_error)"),
        (503, "The warehouse cannot be reached"))}


def error_body(code: str, message: str, instruction: str | None = None, **extra) -> dict:
    body = {"success": False, "code": code, "message": message}
    if instruction:
        body["instruction"] = instruction
    return {**body, **extra}


# errors that carry their own HTTP status (governance: 401, 403, 409, 429...)
_CODES = {401: "not_authenticated", 403: "forbidden", 404: "not_found", 409: "conflict",
          429: "too_many_requests"}


def _status(exc: PasserelleError) -> tuple[int, str]:
    status = getattr(exc, "http_status", None)  # governance errors carry theirs
    if status in _CODES:
        from passerelle.governance.errors import CsrfFailed

        return status, "csrf_failed" if isinstance(exc, CsrfFailed) else _CODES[status]
    if isinstance(exc, LookupError):
        return 404, "not_found"
    if isinstance(exc, EngineError):
        return 503, "warehouse_unavailable"
    if isinstance(exc, ProjectError):
        return 422, "invalid_project"
    return 400, "bad_request"


def install(app: FastAPI) -> None:
    @app.exception_handler(PasserelleError)
    async def passerelle_error(request: Request, exc: PasserelleError) -> JSONResponse:
        status, code = _status(exc)
        extra = {}
        if isinstance(exc, ProjectError):
            extra["problems"] = [
                {"file": p.file, "line": p.line, "message": p.message, "hint": p.hint}
                for p in exc.problems]
        headers = {}
        if status == 401:
            headers["WWW-Authenticate"] = 'Bearer realm="passerelle"'
        retry = getattr(exc, "retry_after_seconds", None)
        if status == 429 and retry is not None:
            headers["Retry-After"] = str(max(1, int(retry)))
        return JSONResponse(error_body(code, exc.reason, exc.instruction, **extra),
                            status_code=status, headers=headers or None)

    @app.exception_handler(RecursionError)
    async def too_deep(request: Request, exc: RecursionError) -> JSONResponse:
        # The filters and segments have depth limits checked before any recursion; this is
        # the net under whatever input still slips through them.
        return JSONResponse(error_body("too_complex", "The request is nested too deeply to "
                                       "be answered.", "Simplify the filter or definition."),
                            status_code=422)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        # Starlette's ServerErrorMiddleware calls this, sends the answer, then re-raises so
        # that the server logs the traceback (once): no logging here.
        return JSONResponse(error_body(
            "internal_error", f"Internal error ({type(exc).__name__}) on "
            f"{request.method} {request.url.path}.",
            "This is a bug in Passerelle: the server log has the traceback; please report "
            "it."), status_code=500)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = [{"where": ".".join(str(p) for p in e["loc"]),
                    "message": e["msg"].removeprefix("Value error, ")} for e in exc.errors()]
        first = details[0] if details else {"where": "", "message": "invalid request"}
        return JSONResponse(error_body("invalid_request", f"{first['where']}: {first['message']}",
                                       "Check the request against /openapi.json.",
                                       details=details), status_code=422)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse(error_body(code, str(exc.detail)), status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))
