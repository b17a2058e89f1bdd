"""The HTTP side: ``/v1/track`` ... ``/v1/batch`` as the Segment HTTP Tracking API defines them.

Every answer is JSON. Success: ``{"success": true}`` (``/v1/batch`` adds ``accepted`` and,
when some events were refused, ``rejected``: one ``{index, code, message}`` each). Errors:
``{"success": false, "code": ..., "message": ...}`` (the official clients read ``code`` and
``message``), with 400 (malformed JSON, missing ids, wrong types), 401 (write key), 403 (a
browser page's origin the write key's source does not allow), 413 (32 KB an event, 500 KB a
request, after gzip decoding) or 503 + ``Retry-After`` when the loader is behind
(backpressure) or the spool cannot be written, 429 + ``Retry-After`` when a write key sends
more than its rate limit (a token bucket per key, in memory: ``server:`` in passerelle.yml).

Besides the write keys of the sources, `passerelle serve` accepts API tokens with the
``collect:write`` scope, sent as the Basic user or as ``Authorization: Bearer psl_...``:
``token_source`` (given by the server, which owns the application database) tells which
source such a token writes to.

analytics-next (the browser tag) posts to one-letter paths (``/v1/t``... ``/v1/b``), served as
aliases, and its own metrics to ``/v1/m``, read and discarded. CORS: see ``cors.py``.

A batch is not all-or-nothing: valid events are kept and acknowledged, refused ones are
listed; only a batch with no valid event at all gets a 4xx.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import functools
import gc
import logging
import math
import time
import zlib
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response
from fastapi.routing import APIRoute
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp

from passerelle.collect.cors import REFUSED, CorsMiddleware, Origins, refused_body
from passerelle.collect.events import EventError, Preparer, epoch_ms, received_ms
from passerelle.collect.loader import LoaderProcess, LoaderThread
from passerelle.collect.plan import load_plan
from passerelle.collect.spool import Spool, SpoolError
from passerelle.collect.spools import open_spools
from passerelle.project.models import CollectorConnector, SourceConfig

_log = logging.getLogger("passerelle.collect")
EVENT_LIMIT = 32 * 1024
BATCH_LIMIT = 500 * 1024
RETRY_AFTER = 5  # seconds a client should wait when the collector sheds load
KINDS = ("track", "identify", "page", "screen", "group", "alias")
SHORT_PATHS = {"t": "track", "i": "identify", "p": "page", "s": "screen", "g": "group",
               "a": "alias", "b": None}  # analytics-next's paths; None: batch
_OK = orjson.dumps({"success": True})


def _json(status: int, body: dict, headers: dict | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, headers=headers,
                    media_type="application/json")


def _error(status: int, code: str, message: str, retry_after: int | None = None,
           **extra) -> Response:
    headers = {"Retry-After": str(retry_after or RETRY_AFTER)} if status in (429, 503) else None
    return _json(status, {"success": False, "code": code, "message": message, **extra},
                 headers)


class _Refused(Exception):
    def __init__(self, status: int, code: str, message: str,
                 retry_after: int | None = None) -> None:
        self.status, self.code, self.message = status, code, message
        self.retry_after = retry_after


@dataclass(frozen=True)
class RateLimit:
    """A token bucket per write key: ``per_second`` on average, bursts of ``burst``."""

    per_second: float
    burst: int


class _Bucket:
    __slots__ = ("at", "level")

    def __init__(self, level: float, at: float) -> None:
        self.level, self.at = level, at


class _Limiter:
    """In memory, per process: a key over its rate gets 429 with the seconds to wait."""

    def __init__(self, limit: RateLimit) -> None:
        self.limit = limit
        self.buckets: dict[str, _Bucket] = {}

    def take(self, key: str) -> int | None:
        """None when the request may go; else the seconds until it could."""
        now = time.monotonic()
        rate, burst = self.limit.per_second, self.limit.burst
        bucket = self.buckets.get(key)
        if bucket is None:
            if len(self.buckets) > 100_000:  # unknown keys never get here; be safe anyway
                self.buckets.clear()
            bucket = self.buckets[key] = _Bucket(float(burst), now)
        bucket.level = min(burst, bucket.level + (now - bucket.at) * rate)
        bucket.at = now
        if bucket.level >= 1:
            bucket.level -= 1
            return None
        return max(1, math.ceil((1 - bucket.level) / rate))


TOKEN_PREFIX = "psl_"
_TOKEN_TTL = 10.0  # seconds a collect:write token's answer is kept (revocation: that late)


class _OriginRefused(Exception):
    def __init__(self, origin: str) -> None:
        self.origin = origin


class _Recent:
    """Message ids of one source acknowledged lately: a client's retry is answered without
    a second copy. Two generations of plain dicts (C-speed lookups and inserts): between
    ``size / 2`` and ``size`` ids are remembered."""

    def __init__(self, size: int = 200_000) -> None:
        self.half = size // 2
        self.current: dict[str, None] = {}
        self.previous: dict[str, None] = {}

    def __contains__(self, message_id: str) -> bool:
        return message_id in self.current or message_id in self.previous

    def add(self, message_ids: dict[str, None]) -> None:
        self.current.update(message_ids)
        if len(self.current) >= self.half:
            self.previous, self.current = self.current, {}


@dataclass
class Route:
    """Where one write key's events go."""

    source: str
    spool: Spool
    preparer: Preparer
    max_backlog: int
    origins: Origins


def collector_sources(sources: dict[str, SourceConfig]) -> list[SourceConfig]:
    return [s for s in sources.values() if isinstance(s.connector, CollectorConnector)]


def build_routes(project_root: Path, sources: list[SourceConfig]) -> dict[str, Route]:
    """Write key -> route. Sources sharing a spool setting share one spool object."""
    spools = open_spools(sources, project_root)
    routes: dict[str, Route] = {}
    for source in sources:
        connector: CollectorConnector = source.connector
        spool = spools[source.name]
        plan = load_plan(project_root, connector.tracking_plan) if connector.tracking_plan else None
        route = Route(source.name, spool, Preparer(plan, connector.future_tolerance_seconds),
                      connector.max_backlog, Origins.of(connector.allowed_origins))
        for key in connector.write_keys:
            routes[key.get_secret_value()] = route
    return routes


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body, decoded from gzip, refused beyond ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit + 1024:
        raise _Refused(413, "request_too_large", f"requests are limited to {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit + 1024:
            raise _Refused(413, "request_too_large", f"requests are limited to {limit} bytes")
        chunks.append(chunk)
    body = b"".join(chunks)
    encoding = request.headers.get("content-encoding", "").lower()
    if encoding in ("gzip", "x-gzip", "deflate"):
        wbits = 16 + zlib.MAX_WBITS if "gzip" in encoding else zlib.MAX_WBITS
        try:
            inflater = zlib.decompressobj(wbits)
            body = inflater.decompress(body, limit + 1)
        except zlib.error:
            raise _Refused(400, "invalid_encoding", "the body is not valid gzip") from None
        if inflater.unconsumed_tail or len(body) > limit:
            raise _Refused(413, "request_too_large", f"requests are limited to {limit} bytes")
    elif encoding not in ("", "identity"):
        raise _Refused(400, "invalid_encoding", f"unsupported Content-Encoding {encoding!r}")
    if len(body) > limit:
        raise _Refused(413, "request_too_large", f"requests are limited to {limit} bytes")
    return body


def _header_key(request: Request) -> str | None:
    auth = request.headers.get("authorization")
    if not auth:
        return None
    return _basic_user(auth)


@functools.lru_cache(maxsize=1024)  # a site sends the same few headers all day
def _basic_user(auth: str) -> str:
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip().startswith(TOKEN_PREFIX):
        return value.strip()  # a collect:write API token
    if scheme.lower() != "basic":
        raise _Refused(401, "invalid_write_key", "use HTTP Basic auth with the write key as user")
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise _Refused(401, "invalid_write_key", "malformed Authorization header") from None
    return decoded.partition(":")[0]


class Collector:
    """The routes' state: write keys, spools, the loader, recent message ids."""

    def __init__(self, routes: dict[str, Route],
                 loader: LoaderProcess | LoaderThread | None = None,
                 token_source: Callable[[str], str] | None = None,
                 rate_limit: RateLimit | None = None) -> None:
        self.routes, self.loader = routes, loader
        self.recent = {r.source: _Recent() for r in routes.values()}
        self.spools = list({id(r.spool): r.spool for r in routes.values()}.values())
        self.by_source = {r.source: r for r in routes.values()}
        self.token_source = token_source
        self.tokens: dict[str, tuple[Route, float]] = {}
        self.limiter = _Limiter(rate_limit) if rate_limit and rate_limit.per_second > 0 \
            else None
        # told, from the loader's thread, the rows each round committed: must not block
        # (the loader, not the acceptance path, would wait) nor raise
        self.after_load: list[Callable[[int], None]] = []

    def loaded(self, rows: int) -> None:
        for hook in self.after_load:
            try:
                hook(rows)
            except Exception:
                _log.exception("after-load hook %r failed", hook)

    def _token_route(self, token: str) -> Route | None:
        """The route of a collect:write API token (its answer kept a few seconds)."""
        if self.token_source is None or not token.startswith(TOKEN_PREFIX):
            return None
        now = time.monotonic()
        known = self.tokens.get(token)
        if known is not None and known[1] > now:
            return known[0]
        try:
            source = self.token_source(token)
        except LookupError as exc:
            raise _Refused(401, "invalid_write_key", str(exc)) from None
        route = self.by_source.get(source)
        if route is None:
            raise _Refused(401, "invalid_write_key", f"no collector source '{source}'")
        if len(self.tokens) > 10_000:
            self.tokens.clear()
        self.tokens[token] = (route, now + _TOKEN_TTL)
        return route

    def route(self, key: str | None, request: Request) -> Route:
        if not key:
            raise _Refused(401, "invalid_write_key", "no write key (HTTP Basic user or writeKey)")
        route = self.routes.get(key) or self._token_route(key)
        if route is None:
            raise _Refused(401, "invalid_write_key", "unknown write key")
        if self.limiter is not None:
            wait = self.limiter.take(key)
            if wait is not None:
                raise _Refused(429, "rate_limited", "this write key sends more than its rate "
                               "limit; retry later", retry_after=wait)
        origin = request.headers.get("origin")
        if origin is not None and not route.origins.allows(origin):
            request.scope[REFUSED] = True  # no CORS header: the page may not use this key
            raise _OriginRefused(origin)
        return route

    async def handle(self, request: Request, kind: str | None) -> Response:
        try:
            return await self._handle(request, kind)
        except _OriginRefused as refused:
            return Response(refused_body(refused.origin), status_code=403,
                            media_type="application/json")
        except _Refused as refused:
            return _error(refused.status, refused.code, refused.message, refused.retry_after)
        except SpoolError as exc:
            return _error(503, "spool_unavailable", exc.reason)

    async def _handle(self, request: Request, kind: str | None) -> Response:
        header_key = _header_key(request)
        route = self.route(header_key, request) if header_key is not None else None
        if route is not None and route.spool.backlog() > route.max_backlog:
            raise _Refused(503, "backpressure", "the loader is behind; retry later")
        body = await _read_body(request, BATCH_LIMIT if kind is None else EVENT_LIMIT)
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise _Refused(400, "invalid_json", "the body is not valid JSON") from None
        if not isinstance(payload, dict):
            raise _Refused(400, "invalid_json", "the body must be a JSON object")
        if route is None:
            key = payload.get("writeKey")
            route = self.route(key if isinstance(key, str) else None, request)
            if route.spool.backlog() > route.max_backlog:
                raise _Refused(503, "backpressure", "the loader is behind; retry later")
        received = received_ms()
        if kind is not None:
            return await self._single(route, payload, kind, received)
        return await self._batch(route, payload, body, received)

    async def _single(self, route: Route, event: dict, kind: str, received: int) -> Response:
        try:
            message_id, line = route.preparer.prepare(event, kind, received)
        except EventError as exc:
            raise _Refused(400, exc.code, exc.message) from None
        recent = self.recent[route.source]
        if message_id not in recent:
            await route.spool.append(route.source, line, 1)
            recent.add({message_id: None})
        return Response(_OK, media_type="application/json")

    async def _batch(self, route: Route, payload: dict, body: bytes, received: int) -> Response:
        events = payload.get("batch")
        if not isinstance(events, list):
            raise _Refused(400, "invalid_batch", "a batch needs a `batch` array of events")
        sent_at = payload.get("sentAt")
        try:  # parsed once for the whole batch; a bad one is refused per event that needs it
            sent_ms = epoch_ms(sent_at, "sentAt") if sent_at is not None else None
        except EventError:
            sent_ms = None
        shared = {k: payload[k] for k in ("context", "integrations")
                  if isinstance(payload.get(k), dict)}
        # only a body over the limit can hold an event over it; the spool line holds the
        # event, so only a line over the limit needs the exact (as sent) measure
        check_size = len(body) > EVENT_LIMIT
        lines: list[bytes] = []
        rejected: list[dict] = []
        seen: dict[str, None] = {}  # message ids of this batch, in order
        prepare, source = route.preparer.prepare, route.source
        recent = self.recent[source]
        current, previous = recent.current, recent.previous
        for index, event in enumerate(events):
            try:
                if shared and event.__class__ is dict:
                    for k, v in shared.items():
                        if k not in event:
                            event[k] = v
                message_id, line = prepare(event, None, received, sent_at, sent_ms)
                if check_size and len(line) > EVENT_LIMIT and _sent_size(event,
                                                                          shared) > EVENT_LIMIT:
                    raise EventError("event_too_large", _TOO_LARGE)
            except EventError as exc:
                code, message = exc.code, exc.message
                if check_size and code != "event_too_large" and _sent_size(
                        event, shared) > EVENT_LIMIT:
                    code, message = "event_too_large", _TOO_LARGE
                rejected.append({"index": index, "code": code, "message": message})
                continue
            if message_id in seen or message_id in current or message_id in previous:
                continue
            seen[message_id] = None
            lines.append(line)
        if rejected and len(rejected) == len(events):  # nothing valid (duplicates are)
            status = 413 if all(r["code"] == "event_too_large" for r in rejected) else 400
            return _error(status, rejected[0]["code"], "no event of the batch is valid",
                          rejected=rejected)
        if lines:
            await route.spool.append(source, b"".join(lines), len(lines))
            recent.add(seen)
        answer: dict = {"success": True, "accepted": len(events) - len(rejected)}
        if rejected:
            answer["rejected"] = rejected
        return _json(200, answer)


_TOO_LARGE = f"events are limited to {EVENT_LIMIT} bytes"


def _sent_size(event: object, shared: dict) -> int:
    """Bytes of an event of a batch as sent: without the batch-level keys merged into it
    (those are the very objects of ``shared``)."""
    if shared and event.__class__ is dict:
        event = {k: v for k, v in event.items() if not (k in shared and v is shared[k])}
    return len(orjson.dumps(event))


@contextlib.contextmanager
def _tuned_gc() -> Iterator[None]:
    """Requests live for milliseconds, but the libraries this process imported (Ibis,
    DuckDB, Arrow...) leave some 200,000 long-lived objects that every full garbage
    collection walks; requests waiting for an fsync survive the young collections, so full
    ones come often. Freezing what exists once started, and collecting young objects less
    eagerly, halves the CPU a request costs (measured: benchmarks/collector.py). Undone when
    the app stops (an app served inside tests leaves the process as it found it)."""
    thresholds = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 10, 10)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


class _CollectorApp(FastAPI):
    """CORS wraps the whole stack, so that even an unexpected 500 of a ``/v1`` route (answered
    by Starlette's outermost middleware) reaches the page that sent the request."""

    def build_middleware_stack(self) -> ASGIApp:
        post_paths = frozenset(r.path for r in self.routes if isinstance(r, APIRoute)
                               and r.path.startswith("/v1/") and "POST" in r.methods)
        return CorsMiddleware(super().build_middleware_stack(), self.state.origins, post_paths)


async def _client_gone(request: Request, exc: Exception) -> Response:
    # a closed tab or a dropped mobile connection, not an error of ours: nothing was stored
    _log.debug("client disconnected before its request was read: %s %s", request.method,
               request.url.path)
    return Response(status_code=400)


def create_app(project_root: Path, sources: dict[str, SourceConfig], *, loader: bool = True,
               open_engine=None, loader_interval: float = 0.25,
               loader_process: bool = False,
               token_source: Callable[[str], str] | None = None,
               rate_limit: RateLimit | None = None) -> FastAPI:
    """The collector as an ASGI app. ``open_engine()`` opens the warehouse for the loader.

    ``loader_process``: run the loader in a process of its own instead of a thread of this
    one, when ``open_engine`` can be sent to it (a module-level function or a
    ``functools.partial`` of one; anything else falls back to a thread, and says so in the
    log). Only when nothing else in this process opens the warehouse: a DuckDB file admits
    one process at a time.

    ``token_source(secret)``: the source a ``collect:write`` API token writes to (raises
    LookupError when the token is refused); ``rate_limit``: per write key (None: none).
    """
    chosen = collector_sources(sources)
    routes = build_routes(project_root, chosen)
    collector = Collector(routes, token_source=token_source, rate_limit=rate_limit)
    by_source = {r.source: r.spool for r in routes.values()}

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        for spool in collector.spools:
            await spool.start([s for s, sp in by_source.items() if sp is spool])
        if loader and open_engine is not None:
            if loader_process and LoaderProcess.can_run(open_engine):
                collector.loader = LoaderProcess(open_engine, project_root, chosen,
                                                 interval=loader_interval)
            else:
                if loader_process:
                    _log.warning("the loader runs as a thread of the collector: its "
                                 "open_engine cannot be sent to another process")
                collector.loader = LoaderThread(open_engine, project_root, chosen, by_source,
                                                interval=loader_interval)
                # a loader process tells nobody here: what reacts to loads (the decision
                # store's refresh) needs the warehouse, which that process holds then
                collector.loader.loader.on_loaded = collector.loaded
            for spool in collector.spools:
                spool.on_loadable = collector.loader.wake
            collector.loader.start()
        try:
            with _tuned_gc():
                yield
        finally:
            for spool in collector.spools:
                await spool.stop()
            if collector.loader is not None:
                await asyncio.get_running_loop().run_in_executor(None, collector.loader.stop)
            for spool in collector.spools:
                spool.close()

    app = _CollectorApp(title="Passerelle collector", lifespan=lifespan,
                        description="Segment-Spec compatible HTTP Tracking API")
    app.state.collector = collector
    app.state.origins = Origins.union(r.origins for r in routes.values())
    app.add_exception_handler(ClientDisconnect, _client_gone)

    def endpoint(kind: str | None):
        async def receive(request: Request) -> Response:
            return await collector.handle(request, kind)
        receive.__name__ = f"v1_{kind or 'batch'}"
        return receive

    for kind in KINDS:
        app.post(f"/v1/{kind}", summary=f"Segment {kind} call")(endpoint(kind))
    app.post("/v1/batch", summary="Several calls at once")(endpoint(None))
    app.post("/v1/import", summary="Alias of /v1/batch", include_in_schema=False)(endpoint(None))
    for short, kind in SHORT_PATHS.items():
        app.post(f"/v1/{short}", include_in_schema=False)(endpoint(kind))

    @app.post("/v1/m", include_in_schema=False)
    async def tag_metrics(request: Request) -> Response:
        """analytics-next's own metrics (every 30 s): read, bounded, and dropped."""
        try:
            await _read_body(request, EVENT_LIMIT)
        except _Refused as refused:
            return _error(refused.status, refused.code, refused.message)
        return Response(_OK, media_type="application/json")

    @app.get("/v1/health", summary="Backlog and loader state (and the parts the server "
                                    "adds, e.g. the decision store)")
    async def health(request: Request) -> Response:
        lag = {r.source: r.spool.backlog() for r in routes.values()}
        error = collector.loader.last_error if collector.loader else None
        body = {"success": True, "backlog": lag,
                "loader_error": str(error) if error else None}
        # parts registered by the server around the collector: name -> () -> dict
        for name, part in getattr(request.app.state, "health_parts", {}).items():
            body[name] = await asyncio.get_running_loop().run_in_executor(None, part)
        return _json(200, body)

    return app
