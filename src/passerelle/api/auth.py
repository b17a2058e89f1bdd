"""Who may call which route: the authorization layer of the server's router.

Every ``/api`` route declares what it needs with :func:`requires` (a FastAPI dependency):
a token scope and, when it changes something or shows personal data, permissions. The
dependency resolves the caller once per request (:func:`caller`), from
``Authorization: Bearer psl_...`` or the web app's session cookie, into a
:class:`~passerelle.governance.principal.Principal` kept in ``request.state.principal``.

- no credential, or one unknown, expired or revoked, or a disabled user: 401;
- a caller without the scope or a permission the route needs: 403 (and an audit entry);
- a request that changes something with the session cookie must repeat the session's CSRF
  token in the ``X-CSRF-Token`` header (a page of another site cannot read it): else 403.

The registry is the app itself: :func:`route_requirements` reads every route's declared
requirement, and :func:`check_every_route` refuses to build a server with an ``/api`` or
``/v1`` route that declares none, so no route ships unprotected. A new router (the profile
and decision API, say) declares ``dependencies=[requires("profiles:read")]`` or takes
``principal: Annotated[Principal, requires(...)]``; nothing else is needed. Routes
authenticated otherwise (the collector's write keys) or open on purpose (``/v1/health``)
are listed with :func:`declare_open`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.routing import APIRoute, iter_route_contexts

from passerelle.governance import audit
from passerelle.governance.errors import CsrfFailed, NotAuthenticated, PermissionDenied
from passerelle.governance.principal import Principal

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_HEADER = "x-csrf-token"
PII_READ = "pii:read"


@dataclass(frozen=True)
class Requirement:
    """What one route needs: a token ``scope`` (None: any valid credential) and every one
    of ``permissions``. ``note`` says what the route checks beyond (a job's kind)."""

    scope: str | None
    permissions: tuple[str, ...] = ()
    note: str | None = None

    def __call__(self, request: Request) -> Principal:
        principal = caller(request)
        if self.scope is not None and not principal.has_scope(self.scope):
            _deny(request, principal, self.scope, "token scope")
        for permission in self.permissions:
            if not principal.can(permission):
                _deny(request, principal, permission, "permission")
        return principal

    def describe(self) -> str:
        parts = [f"scope {self.scope}" if self.scope else "any credential"]
        parts += self.permissions
        if self.note:
            parts.append(self.note)
        return ", ".join(parts)


def requires(scope: str | None, *permissions: str, note: str | None = None) -> Any:
    """The dependency a route declares: ``principal: Principal = requires("api:read")``
    or ``dependencies=[requires("api:write", "identity:write")]``."""
    from passerelle.governance.permissions import PERMISSIONS, SCOPES

    if scope is not None and scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}")
    unknown = [p for p in permissions if p not in PERMISSIONS]
    if unknown:
        raise ValueError(f"unknown permission(s) {unknown}")
    return Depends(Requirement(scope, tuple(permissions), note))


def _deny(request: Request, principal: Principal, needed: str, what: str) -> None:
    record(request, "access.denied", resource=f"route:{request.method} {_route_path(request)}",
           outcome="denied", detail={"needed": needed}, principal=principal)
    raise PermissionDenied(needed, what)


def _route_path(request: Request) -> str:
    route = request.scope.get("route")
    return getattr(route, "path", None) or request.url.path


def caller(request: Request) -> Principal:
    """The principal behind the request's credential (resolved once per request)."""
    known = getattr(request.state, "principal", None)
    if known is not None:
        return known
    db = request.app.state.app_db
    header = request.headers.get("authorization")
    if header is not None:
        from passerelle.governance.errors import TokenRejected
        from passerelle.governance.tokens import principal_from_token

        scheme, _, secret = header.partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise TokenRejected("The Authorization header must be `Bearer psl_...`.",
                                "Create a token with `passerelle tokens create`.")
        principal = principal_from_token(db, secret.strip())
    else:
        principal = _session_principal(request, db)
    request.state.principal = principal
    return principal


def _session_principal(request: Request, db: Any) -> Principal:
    from passerelle.governance.sessions import check_csrf, lookup_session
    from passerelle.web.auth import SESSION_COOKIE

    session_id = request.cookies.get(SESSION_COOKIE)
    if not session_id:
        raise NotAuthenticated("This route needs a credential.",
                               "Send `Authorization: Bearer psl_...` (a token from "
                               "`passerelle tokens create`), or sign in to the web app.")
    active = lookup_session(db, session_id)  # SessionExpired (401) when it is not valid
    if request.method not in SAFE_METHODS:
        try:
            check_csrf(active, request.headers.get(CSRF_HEADER))
        except CsrfFailed:
            record(request, "access.denied", resource=f"route:{request.method} "
                   f"{_route_path(request)}", outcome="denied", detail={"needed": "csrf"},
                   principal=active.principal)
            raise
    request.state.session = active
    return active.principal


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def record(request: Request, action: str, *, resource: str | None = None,
           outcome: str = "success", detail: dict[str, Any] | None = None,
           principal: Principal | None = None) -> None:
    """An audit entry for what the request's principal did (ids only, never PII)."""
    who = principal or getattr(request.state, "principal", None)
    actor = who.audit_actor if who is not None else ("anonymous", "-")
    with request.app.state.app_db.session() as session:
        audit.record(session, actor, action, resource=resource, ip=client_ip(request),
                     outcome=outcome, detail=detail)


def author(principal: Principal) -> str:
    """See :attr:`Principal.author`."""
    return principal.author


def masked(principal: Principal, asked_unmasked: bool = False) -> bool:
    """Whether personal data is masked for this caller: always, unless they asked for it
    unmasked *and* hold ``pii:read``."""
    return not (asked_unmasked and principal.can(PII_READ))


# ------------------------------------------------------------------------ the registry
@dataclass(frozen=True)
class Open:
    """The marker of a route open on purpose (``how``: ``sign-in``, ``public``)."""

    how: str

    def __call__(self) -> None:
        return None


def public(how: str) -> Any:
    """The dependency of a route anyone may call (sign-in): listed as such in the registry."""
    return Depends(Open(how))


def declare_open(app: FastAPI, method: str, path: str, how: str) -> None:
    """A route that :func:`requires` does not guard, and why (``public``, ``write key``,
    ``sign-in``)."""
    opened = getattr(app.state, "open_routes", None)
    if opened is None:
        opened = app.state.open_routes = {}
    opened[(method.upper(), path)] = how


def _requirements(dependant: Any) -> Iterable[Requirement | str]:
    for dep in dependant.dependencies:
        if isinstance(dep.call, Requirement):
            yield dep.call
        elif isinstance(dep.call, Open):
            yield dep.call.how
        yield from _requirements(dep)


def api_routes(app: FastAPI) -> Iterable[tuple[str, str, Any]]:
    """(method, path, route context) of every FastAPI route of the app, routers included
    (their prefixes and router-level dependencies applied)."""
    for context in iter_route_contexts(app.routes):
        if isinstance(context.original_route, APIRoute):
            for method in sorted(context.methods or ()):
                yield method, context.path, context


def route_requirements(app: FastAPI) -> dict[tuple[str, str], Requirement | str]:
    """``(method, path) -> Requirement`` for every guarded route, or the reason a route is
    open (:func:`public`, :func:`declare_open`); routes with neither are absent."""
    opened: dict[tuple[str, str], str] = getattr(app.state, "open_routes", {})
    out: dict[tuple[str, str], Requirement | str] = {}
    for method, path, context in api_routes(app):
        found = list(_requirements(context.dependant))
        if found:
            out[(method, path)] = found[0]
        elif (method, path) in opened:
            out[(method, path)] = opened[(method, path)]
    return out


GUARDED_PREFIXES = ("/api/", "/v1/")


def unguarded_routes(app: FastAPI,
                     prefixes: tuple[str, ...] = GUARDED_PREFIXES) -> list[tuple[str, str]]:
    known = route_requirements(app)
    return sorted({(m, p) for m, p, _ in api_routes(app)
                   if p.startswith(prefixes) and (m, p) not in known})


def check_every_route(app: FastAPI) -> None:
    """Refuse to serve an ``/api`` or ``/v1`` route that declares no requirement (the
    collector's are declared open, with their write keys, before the others are added)."""
    missing = unguarded_routes(app)
    if missing:
        raise RuntimeError("API routes without an authorization requirement: " + ", ".join(
            f"{m} {p}" for m, p in missing) + " (declare requires(...) or declare_open)")
