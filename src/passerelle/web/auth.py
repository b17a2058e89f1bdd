"""Sign-in, sign-out and the signed-in person of each page.

The session lives in the application database (governance.sessions); the browser holds only
its random id in the ``passerelle_session`` cookie. Every form post carries a CSRF token:
the session's own once signed in, and before sign-in a random one kept in a cookie of its
own and repeated in the form (a site that cannot read our cookies cannot repeat it).
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, quote

from fastapi import Request
from fastapi.responses import RedirectResponse, Response

from passerelle.governance.db import AppDB, open_app_db
from passerelle.governance.errors import CsrfFailed, SessionExpired
from passerelle.governance.principal import Principal
from passerelle.governance.sessions import ActiveSession, check_csrf, lookup_session
from passerelle.web.i18n import LANGUAGES, default_language

SESSION_COOKIE = "passerelle_session"
LOGIN_CSRF_COOKIE = "passerelle_login_csrf"
LANGUAGE_COOKIE = "passerelle_lang"
FORM_LIMIT = 16_384  # bytes: the app's forms are a few short fields

_open_lock = threading.Lock()


class LoginRequired(Exception):
    """No valid session: the page answers with a redirect to /login."""

    def __init__(self, next_path: str) -> None:
        self.next_path = next_path


class Forbidden(Exception):
    def __init__(self, permission: str) -> None:
        self.permission = permission


@dataclass(frozen=True)
class PageUser:
    session: ActiveSession
    lang: str

    @property
    def principal(self) -> Principal:
        return self.session.principal

    @property
    def csrf_token(self) -> str:
        return self.session.csrf_token

    def can(self, permission: str) -> bool:
        return self.principal.can(permission)


def app_db(request: Request) -> AppDB:
    """The project's application database, opened once per server (``app.state.app_db``)."""
    state = request.app.state
    db = getattr(state, "app_db", None)
    if db is None:
        with _open_lock:
            db = getattr(state, "app_db", None)
            if db is None:
                db = state.app_db = open_app_db(state.web_project)
    return db


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def language(request: Request) -> str:
    chosen = request.cookies.get(LANGUAGE_COOKIE)
    if chosen in LANGUAGES:
        return chosen
    return default_language(request.app.state.web_project.config.default_region)


def current_session(request: Request) -> ActiveSession | None:
    session_id = request.cookies.get(SESSION_COOKIE)
    if not session_id:
        return None
    try:
        return lookup_session(app_db(request), session_id)
    except SessionExpired:
        return None


def page_principal(request: Request) -> PageUser:
    """The dependency of every page: the signed-in person, or a redirect to /login."""
    active = current_session(request)
    if active is None:
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(path)
    return PageUser(active, language(request))


def require(user: PageUser, permission: str) -> None:
    if not user.can(permission):
        raise Forbidden(permission)


async def form_fields(request: Request, limit: int = FORM_LIMIT) -> dict[str, str]:
    """A URL-encoded form's fields (first value of each), refused beyond ``limit`` bytes."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise CsrfFailed()  # no form of the app is this long: not one of ours
    fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {k: v[0] for k, v in fields.items()}


async def checked_form(request: Request, user: PageUser,
                       limit: int = FORM_LIMIT) -> dict[str, str]:
    """The posted form of a signed-in person, its CSRF token checked."""
    fields = await form_fields(request, limit)
    check_csrf(user.session, fields.get("csrf_token") or request.headers.get("x-csrf-token"))
    return fields


def safe_next(path: str | None) -> str:
    """Only a path of this site: never an open redirect to another one."""
    if not path or not path.startswith("/") or path.startswith("//") or "\\" in path:
        return "/"
    return path


def login_redirect(exc: LoginRequired) -> RedirectResponse:
    target = "/login" if exc.next_path == "/" else f"/login?next={quote(exc.next_path)}"
    return RedirectResponse(target, status_code=303)


def set_cookie(response: Response, request: Request, name: str, value: str,
               max_age: int | None = None, **options: Any) -> None:
    response.set_cookie(name, value, max_age=max_age, httponly=True, samesite="lax",
                        secure=request.url.scheme == "https", path="/", **options)


def new_login_csrf() -> str:
    return secrets.token_urlsafe(32)
