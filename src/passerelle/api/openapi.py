"""The OpenAPI schema says what each route needs, from the route registry (api/auth.py).

Security schemes: ``apiToken`` (``Authorization: Bearer psl_...``, what Swagger UI's
Authorize button sends), ``sessionCookie`` (the web app's session, which the browser sends
by itself once signed in) with ``csrfToken`` on requests that change something, and
``writeKey`` (the collector's write keys, as the Basic user). Each operation lists the
schemes that open it, and ``x-passerelle-requires`` names the token scope and the
permissions it checks; routes open on purpose (``/v1/health``, signing in) list none.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from passerelle.api.auth import SAFE_METHODS, Requirement, route_requirements
from passerelle.web.auth import SESSION_COOKIE

SCHEMES: dict[str, dict[str, Any]] = {
    "apiToken": {
        "type": "http", "scheme": "bearer", "bearerFormat": "psl_...",
        "description": "An API token: `passerelle tokens create --scope api:read` (or the "
                       "web app's Tokens page). Paste it in Authorize, without `Bearer `."},
    "sessionCookie": {
        "type": "apiKey", "in": "cookie", "name": SESSION_COOKIE,
        "description": "The web app's session: the browser sends it by itself once you "
                       "are signed in at /login (Swagger UI cannot set it). Requests that "
                       "change something also need csrfToken."},
    "csrfToken": {
        "type": "apiKey", "in": "header", "name": "X-CSRF-Token",
        "description": "The session's CSRF token (POST /api/session answers it as "
                       "csrf_token), repeated on every request that changes something."},
    "writeKey": {
        "type": "http", "scheme": "basic",
        "description": "A collector write key as the Basic user, with an empty password "
                       "(Segment's libraries send it so); a collect:write token also works."},
}


def security_of(method: str, need: Requirement | str) -> list[dict[str, list[str]]]:
    """The OpenAPI security requirement of one route: alternatives, any one of which opens
    it (empty: the route is open)."""
    if isinstance(need, str):
        return [{"writeKey": []}, {"apiToken": []}] if need == "write key" else []
    token: list[dict[str, list[str]]] = [{"apiToken": []}]
    if need.scope == "collect:write":  # events come from tracking libraries, not people
        return token
    session = {"sessionCookie": []} if method in SAFE_METHODS else {
        "sessionCookie": [], "csrfToken": []}
    return [*token, session]


def requires_text(need: Requirement) -> str:
    parts = [f"token scope `{need.scope}`" if need.scope else "any valid credential"]
    if need.permissions:
        parts.append("permission " + ", ".join(f"`{p}`" for p in need.permissions))
    if need.note:
        parts.append(need.note)
    return "**Needs:** " + "; ".join(parts) + "."


def add_security(app: FastAPI, schema: dict[str, Any]) -> dict[str, Any]:
    schema.setdefault("components", {})["securitySchemes"] = SCHEMES
    for (method, path), need in route_requirements(app).items():
        operation = schema.get("paths", {}).get(path, {}).get(method.lower())
        if operation is None:  # a page: not in the schema
            continue
        security = security_of(method, need)
        if security:
            operation["security"] = security
        if isinstance(need, Requirement):
            operation["x-passerelle-requires"] = {"scope": need.scope,
                                                  "permissions": list(need.permissions)}
            text = operation.get("description", "")
            operation["description"] = f"{text}\n\n{requires_text(need)}".strip()
    return schema


def install(app: FastAPI) -> None:
    """Serve the schema with its security (built once, on the first request for it)."""
    plain = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = add_security(app, plain())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

