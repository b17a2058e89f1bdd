"""The decision API (``GET /v1/decide``) and the profile API (``GET /v1/profiles/<id>``),
for applications that personalise: see docs/personalisation.md (for developers).

Both take a bearer API token (``Authorization: Bearer psl_...``): the ``decide`` scope for
decisions, ``profiles:read`` for profiles (which includes ``decide``); the golden record is
masked unless the token may read personal data (``pii:read``). Decisions read the serving
store only (Redis when passerelle.yml names one, else the warehouse's indexed tables): never a
scan of the warehouse per request. The store is reopened every few seconds, so a refresh
(``passerelle run``) or a change of offers is picked up without a restart.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import TypeAdapter, ValidationError

from passerelle.api import errors
from passerelle.api.auth import Requirement
from passerelle.api.inputs import Text
from passerelle.errors import PasserelleError
from passerelle.governance.principal import Principal

_log = logging.getLogger("passerelle.personalize")

RESERVED = ("person", "placement", "channel")
MAX_CONTEXT = 30  # context values in one request
MAX_NAME = 64  # a context value's name
REOPEN_SECONDS = 10.0
_TEXT: TypeAdapter[str] = TypeAdapter(Text)
_RESPONSES = {**errors.RESPONSES, **{
    status: {"model": errors.ErrorBody, "description": what} for status, what in (
        (401, "No token, or a token that is unknown, revoked or expired"),
        (403, "The token's scopes do not open this route"))}}


class StoreHolder:
    """The decision store the routes share, looked at every ``REOPEN_SECONDS`` and
    reopened when what it was opened from changed (offers, placements, the generation of a
    Redis store; a warehouse store every time: a refresh may change its columns and the
    bandit's posteriors). What went wrong with the store (``problems``) survives a
    reopening, and raises one alert in the log. ``warehouse`` False: a decision worker
    (:mod:`passerelle.api.workers`), which reads everything from Redis, posteriors
    included, and never opens the warehouse."""

    def __init__(self, project: Any, lock: Any, warehouse: bool = True) -> None:
        self.project, self.lock, self.warehouse = project, lock, warehouse
        self.store: Any = None
        self.reader: Any = None  # ProfileReader (warehouse), made with the store
        self.profiles: Any = None  # RedisProfiles when the store is in Redis
        self.opened = 0.0
        self.alerted = False
        self._mutex = threading.Lock()
        self._reopening = False
        self._redis: Any = None
        self.mark: tuple | None = None  # signature() of what the store was opened from

    def _open(self) -> Any:
        from passerelle.personalize.log import read_posteriors
        from passerelle.personalize.profiles import SERVING, ProfileReader
        from passerelle.personalize.service import definitions
        from passerelle.personalize.store import (
            DecisionStore,
            OwnConnection,
            WarehouseCaps,
            WarehousePeople,
            warehouse_store,
        )

        project = self.project
        config = project.config.personalisation
        with self.lock:
            defs = definitions(project)
            if config.redis:
                from passerelle.personalize.redis_store import (
                    RedisCaps,
                    RedisPeople,
                    RedisProfiles,
                    redis_posteriors,
                )

                r, prefix = self.redis(), config.redis_prefix
                store = DecisionStore(defs, RedisPeople(r, prefix), RedisCaps(r, prefix),
                                      project.config.timezone, kind="redis")
                self.profiles = RedisProfiles(r, prefix)
                if not self.warehouse:
                    store.posteriors = redis_posteriors(r, prefix)
                    return store
            else:
                warehouse_store(project.engine, defs)  # says so if it was never built
                if project.engine.name == "duckdb":
                    # a connection of its own (and its own lock): decisions read while a
                    # refresh or a job writes on the server's connection
                    own, lock = OwnConnection(project.engine), threading.Lock()
                else:  # the server's lock: one connection for requests and jobs
                    own, lock = project.engine, self.lock
                store = DecisionStore(defs, WarehousePeople(own, lock),
                                      WarehouseCaps(own, lock), project.config.timezone)
            store.posteriors = read_posteriors(project.engine)
            # the sorted copies the refresh writes (a store built before them: the tables)
            self.reader = ProfileReader(project.engine,
                                        serving=project.engine.exists(SERVING["golden"]))
        return store

    def redis(self) -> Any:
        """One Redis client (and its connection pool) for the server's life."""
        if self._redis is None:
            from passerelle.personalize.redis_store import client

            self._redis = client(self.project.config.personalisation.redis)
        return self._redis

    def get(self) -> Any:
        """The store; the first call opens it, later ones return it at once and, every
        ``REOPEN_SECONDS``, start reopening it in a thread of its own (a request never waits
        for a reopening: it decides with the store of the moment)."""
        if self.store is None:
            with self._mutex:
                if self.store is None:
                    with contextlib.suppress(Exception):  # Redis away: reopened next time
                        self.mark = self.signature()
                    self.store, self.opened = self._open(), time.monotonic()
            return self.store
        if time.monotonic() - self.opened >= REOPEN_SECONDS and not self._reopening:
            with self._mutex:
                if not self._reopening:
                    self._reopening = True
                    threading.Thread(target=self._reopen, daemon=True,
                                     name="decision-store-reopen").start()
        return self.store

    def signature(self) -> tuple | None:
        """What a reopening would read anew: the offers' and placements' files, and with
        Redis the generation the last full refresh switched to (None: the warehouse store,
        reopened every time: its refresh leaves no cheap mark)."""
        root = self.project.root
        files = []
        for folder in ("offers", "placements"):
            with contextlib.suppress(OSError):
                for entry in os.scandir(root / folder):
                    files.append((entry.name, entry.stat().st_mtime_ns))
        if not self.project.config.personalisation.redis:
            return None
        gen = self.redis().get(f"{self.project.config.personalisation.redis_prefix}gen")
        return (tuple(sorted(files)), gen)

    def _reopen(self) -> None:
        try:
            mark = self.signature()
            if mark is not None and mark == self.mark:
                return  # nothing changed: no YAML, no warehouse read, no GIL held long
            fresh = self._open()
            self.mark = mark
        except Exception as exc:  # whatever it was, the last good store keeps serving
            _log.warning("decision store not reopened (the last one serves): %s",
                         getattr(exc, "reason", exc))
        else:
            fresh.problems = self.store.problems
            self.store = fresh
        finally:
            self.opened, self._reopening = time.monotonic(), False

    def watch(self) -> None:
        """One alert when the store starts failing; cleared when it answers again."""
        problems = self.store.problems if self.store is not None else {}
        if problems and not self.alerted:
            self.alerted = True
            _log.error("decision store problem: %s (capped offers are not shown until it "
                       "answers)", "; ".join(f"{k}: {v}" for k, v in problems.items()))
        elif not problems and self.alerted:
            self.alerted = False
            _log.warning("decision store answers again")

    def health(self) -> dict[str, Any]:
        try:
            store = self.get()
        except PasserelleError as exc:
            return {"store": None, "ok": False, "problems": {"store": exc.reason}}
        if store.kind == "redis":
            import redis

            try:
                self.redis().ping()
            except redis.RedisError as exc:
                store.problems["redis"] = f"Redis: {exc}"
            else:
                for part in ("redis", "people", "caps"):
                    store.problems.pop(part, None)
        self.watch()
        return store.health()


class TokenMemo:
    """The principal of a bearer token, trusted ``TTL`` seconds once the application
    database said yes (a database query a request otherwise): a revoked token stops
    working within ``TTL`` seconds."""

    TTL = 5.0
    MAX = 10_000

    def __init__(self) -> None:
        self.known: dict[str, tuple[Principal, float]] = {}

    def get(self, request: Request) -> Principal | None:
        header = request.headers.get("authorization")
        if not header or header[:7].lower() != "bearer ":
            return None
        known = self.known.get(header)
        if known is None or known[1] <= time.monotonic():
            return None
        return known[0]

    def keep(self, request: Request, principal: Principal) -> None:
        header = request.headers.get("authorization")
        if not header or header[:7].lower() != "bearer ":
            return  # a session: checked every time
        if len(self.known) >= self.MAX:
            self.known.clear()
        self.known[header] = (principal, time.monotonic() + self.TTL)


class _Quick(Requirement):
    """:class:`~passerelle.api.auth.Requirement` (the same checks, the same entry in the
    route registry) answered in the event loop when the token is known: a route's sync
    dependencies each cost a trip through the thread pool, which under load costs more
    than the decision itself. An unknown token is checked in the pool (a database query).
    """

    memo: TokenMemo | None = None

    async def __call__(self, request: Request) -> Principal:  # type: ignore[override]
        from starlette.concurrency import run_in_threadpool

        known = self.memo.get(request) if self.memo is not None else None
        if known is not None:
            request.state.principal = known
            if (self.scope is None or known.has_scope(self.scope)) and all(
                    known.can(p) for p in self.permissions):
                return known
        # unknown, or refused (the refusal is audited: a database write)
        principal = await run_in_threadpool(Requirement.__call__, self, request)
        if self.memo is not None:
            self.memo.keep(request, principal)
        return principal


def _requires(scope: str, memo: TokenMemo) -> Any:
    quick = _Quick(scope)
    object.__setattr__(quick, "memo", memo)  # a frozen dataclass
    return Depends(quick)


def context_of(request: Request) -> dict[str, Any]:
    """The context values of the query string (every parameter but person, placement and
    channel), each checked as API text; a 422 names the one at fault."""
    out: dict[str, Any] = {}
    items = [(k, v) for k, v in request.query_params.multi_items() if k not in RESERVED]
    if len(items) > MAX_CONTEXT:
        raise _invalid("query", f"at most {MAX_CONTEXT} context values, not {len(items)}")
    for key, value in items:
        if len(key) > MAX_NAME:
            raise _invalid("query", f"a context value's name has at most {MAX_NAME} "
                                    "characters")
        if key in out:
            raise _invalid(f"query.{key}", "given twice")
        try:
            out[key] = _TEXT.validate_python(value)
        except ValidationError as exc:
            raise _invalid(f"query.{key}", exc.errors()[0]["msg"]) from None
    return out


class _Invalid(Exception):
    def __init__(self, where: str, message: str, code: str = "invalid_request",
                 instruction: str = "Check the request against /openapi.json.") -> None:
        super().__init__(message)
        self.where, self.message, self.code, self.instruction = where, message, code, \
            instruction

    def response(self) -> JSONResponse:
        return JSONResponse(errors.error_body(
            self.code, f"{self.where}: {self.message}", self.instruction,
            details=[{"where": self.where, "message": self.message}]), status_code=422)


def _invalid(where: str, message: str) -> _Invalid:
    return _Invalid(where, message.removeprefix("Value error, "))


def _json(body: dict[str, Any]) -> Response:
    """orjson straight to bytes: the hot path skips FastAPI's generic encoder."""
    return Response(orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS),
                    media_type="application/json")


def _parts(include: str | None) -> tuple[str, ...]:
    from passerelle.personalize.profiles import PARTS

    if include is None:
        return PARTS
    asked = tuple(dict.fromkeys(p.strip() for p in include.split(",") if p.strip()))
    wrong = [p for p in asked if p not in PARTS]
    if wrong or not asked:
        raise _invalid("query.include", f"'{','.join(wrong) or include}' is not one of "
                                        f"{', '.join(PARTS)}")
    return asked


def _freshen_after_loads(project: Any, lock: Any, state: Any, parts: dict) -> None:
    """When the server's collector loads events (its loader in this process) and the
    project personalises: the decision store of the people they touch refreshed seconds
    after (``state.freshener``, stopped with the server; its state in ``/v1/health``)."""
    from passerelle.personalize.freshen import Freshener

    collector = getattr(state, "collector", None)
    if collector is None or not any((project.root / d).is_dir()
                                    for d in ("offers", "placements")):
        return
    freshener = state.freshener = Freshener(project, lock)
    collector.after_load.append(freshener.notify)
    parts["freshness"] = freshener.health


def build_personalize_router(project: Any, db: Any, lock: Any, state: Any = None, *,
                             warehouse: bool = True) -> APIRouter:
    """The two routes over ``project``; ``db`` checks the tokens, ``lock`` is the server's
    warehouse lock. ``state`` (the app's state) gets the decision store's part of
    ``/v1/health``; ``warehouse`` False: a decision worker's (Redis only)."""
    from passerelle.personalize import ContextError, PersonalizeError, decide
    from passerelle.personalize.profiles import shape
    from passerelle.personalize.store import StoreUnavailable

    holder = StoreHolder(project, lock, warehouse)
    if state is not None:
        parts = getattr(state, "health_parts", None)
        if parts is None:
            parts = state.health_parts = {}
        parts["decisions"] = holder.health
        _freshen_after_loads(project, lock, state, parts)
    router = APIRouter(prefix="/v1", tags=["personalisation"], responses=_RESPONSES)
    memo = TokenMemo()  # a token's answer kept a few seconds
    can_decide = _requires("decide", memo)
    can_read = _requires("profiles:read", memo)

    @router.get("/decide", summary="The next best messages of a placement for one person")
    def decide_route(
        request: Request,
        person: Annotated[Text, Query(min_length=1, description="Any identifier: person "
                                      "id, customer id, source:record, e-mail, anonymous id")],
        placement: Annotated[Text, Query(min_length=1, description="placements/<name>.yml")],
        channel: Annotated[Text | None, Query(description="web, app, email...")] = None,
        principal: Principal = can_decide,
    ) -> Any:
        try:
            context = context_of(request)
        except _Invalid as exc:
            return exc.response()
        if channel is not None:
            context["channel"] = channel
        store = holder.get()
        try:
            decision = decide(store, person, placement, context)
        except ContextError as exc:
            return _Invalid(f"query.{exc.field}", exc.reason, "invalid_context",
                            exc.instruction or "").response()
        except PersonalizeError as exc:
            return JSONResponse(errors.error_body("unknown_placement", exc.reason,
                                                  exc.instruction), status_code=404)
        holder.watch()
        out = decision.as_dict()
        for message in out["messages"]:
            message["decision_id"], message["group"] = decision.decision_id, decision.group
        return _json(out)

    @router.get("/profiles/{person}", summary="A person's golden record, traits, segments "
                                              "and consents")
    def profile_route(
        person: Annotated[Text, Path(min_length=1, description="Any identifier")],
        include: Annotated[Text | None, Query(description="Comma-separated: golden, "
                                              "traits, segments, consents (default: all)")]
        = None,
        principal: Principal = can_read,
    ) -> Any:
        try:
            parts = _parts(include)
        except _Invalid as exc:
            return exc.response()
        store = holder.get()
        mask = not principal.can("pii:read")
        try:
            if holder.profiles is not None:  # one round trip to Redis
                found = holder.profiles.lookup(person)
                if found is not None:
                    return _json(shape(found[0], found[1], parts, mask))
            else:
                record = store.people.lookup(person)
                if record is not None:
                    with lock:
                        return _json(holder.reader.profile(record.person_id, parts, mask))
        except StoreUnavailable as exc:
            return JSONResponse(errors.error_body(
                "store_unavailable", f"The decision store did not answer: {exc}",
                "Try again; /v1/health says when it is back."), status_code=503)
        return JSONResponse(errors.error_body(
            "not_found", f"No person is known by '{person}'.",
            "Use a person id, customer id, source:record, e-mail or anonymous id; new "
            "people appear after the next refresh."), status_code=404)

    return router


__all__ = ["StoreHolder", "build_personalize_router"]
