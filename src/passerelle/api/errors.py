"""One JSON error shape for every route, the collector's included:

``{"success": false, "code": "<machine-readable>", "message": "<what went wrong>",
"instruction": "<what to do>"}``
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from passerelle.errors import EngineError, PasserelleError, ProjectError


def error_body(code: str, message: str, instruction: str | None = None, **extra) -> dict:
    body = {"success": False, "code": code, "message": message}
    if instruction:
        body["instruction"] = instruction
    return {**body, **extra}


def _status(exc: PasserelleError) -> tuple[int, str]:
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
        return JSONResponse(error_body(code, exc.reason, exc.instruction, **extra),
                            status_code=status)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = [{"where": ".".join(str(p) for p in e["loc"]), "message": e["msg"]}
                   for e in exc.errors()]
        first = details[0] if details else {"where": "", "message": "invalid request"}
        return JSONResponse(error_body("invalid_request", f"{first['where']}: {first['message']}",
                                       "Check the request against /openapi.json.",
                                       details=details), status_code=422)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse(error_body(code, str(exc.detail)), status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))
