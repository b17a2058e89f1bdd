"""CORS for the ``/v1`` routes, so that a browser tag (analytics.js) on a shop's pages can post.

The tag posts with ``Authorization: Basic`` and a ``text/plain`` body, so the browser first
sends a preflight ``OPTIONS``, which carries no write key: it is answered for any origin that
some collector source allows. The write key's own list is enforced on the actual POST
(``Collector``): an origin its source does not list gets 403 ``origin_not_allowed`` and no
CORS header. Every other ``/v1`` answer of an allowed origin, errors and 500s included, carries
``Access-Control-Allow-Origin``: else the tag takes a stored event for a network error and
sends it again, and never sees a 401, a 413 or a ``Retry-After``. ``/api`` gets no CORS.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import orjson
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_AGE = 7200  # seconds a browser may reuse a preflight (Chromium caps it at 2 hours)
REFUSED = "passerelle.origin_refused"  # set in the scope by a route that refused the origin


@dataclass(frozen=True)
class Origins:
    """Web origins allowed to post; ``None``: any."""

    allowed: frozenset[str] | None

    def allows(self, origin: str) -> bool:
        return self.allowed is None or origin in self.allowed

    @classmethod
    def of(cls, origins: Iterable[str] | None) -> Origins:
        return cls(None if origins is None else frozenset(origins))

    @classmethod
    def union(cls, each: Iterable[Origins]) -> Origins:
        allowed: set[str] = set()
        for origins in each:
            if origins.allowed is None:
                return cls(None)
            allowed |= origins.allowed
        return cls(frozenset(allowed))


def refused_body(origin: str) -> bytes:
    return orjson.dumps({
        "success": False, "code": "origin_not_allowed",
        "message": f"events from {origin} are not accepted: add it to `allowed_origins` of "
                   "the collector source whose write key the page uses"})


class CorsMiddleware:
    """Preflights of the ``/v1`` POST routes, CORS headers on every ``/v1`` answer."""

    def __init__(self, app: ASGIApp, origins: Origins, post_paths: frozenset[str]) -> None:
        self.app, self.origins, self.post_paths = app, origins, post_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        origin = Headers(scope=scope).get("origin")
        if scope["method"] == "OPTIONS" and scope["path"] in self.post_paths:
            await self._preflight(origin, send)
            return
        allowed = origin is not None and self.origins.allows(origin)

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.add_vary_header("Origin")
                if allowed and not scope.get(REFUSED):
                    headers["Access-Control-Allow-Origin"] = origin
                    headers["Access-Control-Expose-Headers"] = "Retry-After"
            await send(message)

        await self.app(scope, receive, send_with_cors)

    async def _preflight(self, origin: str | None, send: Send) -> None:
        headers = [(b"vary", b"Origin")]
        if origin is None:  # not a browser's preflight: say what the route takes
            status, body = 204, b""
            headers.append((b"allow", b"OPTIONS, POST"))
        elif self.origins.allows(origin):
            status, body = 204, b""
            headers += [(b"access-control-allow-origin", origin.encode("latin-1")),
                        (b"access-control-allow-methods", b"POST"),
                        (b"access-control-allow-headers",
                         b"authorization, content-type, content-encoding"),
                        (b"access-control-max-age", str(MAX_AGE).encode())]
        else:
            status, body = 403, refused_body(origin)
            headers.append((b"content-type", b"application/json"))
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
