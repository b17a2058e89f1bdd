"""The pages: sign-in, home, glossary, customer lookup and profile, data health."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from passerelle.api.inputs import Text
from passerelle.errors import PasserelleError
from passerelle.formatting import for_language
from passerelle.governance.errors import (
    AccountLocked,
    CsrfFailed,
    NotAuthenticated,
    TooManyAttempts,
)
from passerelle.governance.sessions import create_session, revoke_session
from passerelle.governance.signin import authenticate
from passerelle.web import data, lineage
from passerelle.web.auth import (
    LANGUAGE_COOKIE,
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    Forbidden,
    LoginRequired,
    PageUser,
    app_db,
    checked_form,
    client_ip,
    current_session,
    form_fields,
    language,
    login_redirect,
    new_login_csrf,
    page_principal,
    require,
    safe_next,
    set_cookie,
)
from passerelle.web.cache import same_tables
from passerelle.web.i18n import LANGUAGES, translator
from passerelle.web.lock import locked
from passerelle.web.stored import figure

T = TypeVar("T")
TEMPLATES = Jinja2Templates(directory=Path(__file__).parent / "templates")
TEMPLATES.env.globals.update(LANGUAGES=LANGUAGES)
User = Annotated[PageUser, Depends(page_principal)]
def render(request: Request, name: str, lang: str, status: int = 200,
           user: PageUser | None = None, **context: Any) -> HTMLResponse:
    project = request.app.state.web_project
    return TEMPLATES.TemplateResponse(request, name, {
        "_": translator(lang), "lang": lang, "user": user, "project": project,
        "fmt": for_language(lang, project.config),
        "currency": project.config.currency or "EUR", "tz": project.config.timezone,
        "path": request.url.path, **context,
    }, status_code=status, headers={"Cache-Control": "no-store"})


def error_page(request: Request, user: PageUser | None, lang: str, status: int, title: str,
               reason: str, instruction: str | None = None) -> HTMLResponse:
    return render(request, "error.html", lang, status, user, title=title, reason=reason,
                  instruction=instruction)


def install(app: FastAPI) -> None:
    app.include_router(router)

    @app.exception_handler(LoginRequired)
    async def to_login(request: Request, exc: LoginRequired) -> Response:
        if request.headers.get("hx-request"):  # HTMX follows with a full page load
            return Response(status_code=204, headers={"HX-Redirect": "/login"})
        return login_redirect(exc)

    @app.exception_handler(Forbidden)
    async def forbidden(request: Request, exc: Forbidden) -> HTMLResponse:
        lang = language(request)
        active = current_session(request)
        user = PageUser(active, lang) if active else None
        _ = translator(lang)
        return error_page(request, user, lang, 403, _("You may not see this page."),
                          _("Ask an administrator for the permission “%(permission)s”.",
                            permission=exc.permission))


router = APIRouter(include_in_schema=False)


# ------------------------------------------------------------------------------ sign-in
@router.get("/login")
def login_form(request: Request, next: str = "/") -> Response:
    if current_session(request) is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    return login_page(request, next)


def login_page(request: Request, next_path: str, error: str | None = None,
               hint: str | None = None, status: int = 200, email: str = "") -> Response:
    token = new_login_csrf()
    sso = getattr(request.app.state, "sso", None)
    response = render(request, "login.html", language(request), status, csrf_token=token,
                      next=safe_next(next_path), error=error, hint=hint, email=email,
                      sso_name=sso.name if sso is not None else None)
    set_cookie(response, request, LOGIN_CSRF_COOKIE, token, max_age=3600)
    return response


@router.post("/login")
async def login(request: Request) -> Response:
    import hmac

    fields = await form_fields(request)
    _ = translator(language(request))
    next_path = safe_next(fields.get("next"))
    expected = request.cookies.get(LOGIN_CSRF_COOKIE) or ""
    if not expected or not hmac.compare_digest(expected, fields.get("csrf_token", "")):
        return login_page(request, next_path, _("The form expired: please submit it again."),
                          status=403)
    db = app_db(request)
    email = fields.get("email", "")[:320]
    try:
        principal = authenticate(db, email, fields.get("password", "")[:1024],
                                 client_ip(request))
    except AccountLocked as exc:
        until = for_language(language(request), request.app.state.web_project.config
                             ).timestamp(exc.until, seconds=False)
        return login_page(request, next_path, _(
            "Too many failed sign-ins: this account is locked until %(until)s.", until=until),
            _("Ask an administrator to reset your password if you forgot it."), 429, email)
    except TooManyAttempts as exc:
        minutes = max(1, exc.retry_after_seconds // 60)
        return login_page(request, next_path, _(
            "Too many failed sign-ins from this address: try again in %(minutes)s minute(s).",
            minutes=minutes), status=429, email=email)
    except NotAuthenticated:
        return login_page(request, next_path, _("The e-mail or the password is wrong."),
                          _("Ask an administrator to reset your password if you forgot it."),
                          401, email)
    active = create_session(db, principal)
    response = RedirectResponse(next_path, status_code=303)
    set_cookie(response, request, SESSION_COOKIE, active.session_id)
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/")
    return response


@router.post("/logout")
async def logout(request: Request, user: User) -> Response:
    try:
        await checked_form(request, user)
    except CsrfFailed:
        return _csrf_refused(request, user)
    revoke_session(app_db(request), user.session.session_id, client_ip(request))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.post("/language")
async def choose_language(request: Request, user: User) -> Response:
    try:
        fields = await checked_form(request, user)
    except CsrfFailed:
        return _csrf_refused(request, user)
    response = RedirectResponse(safe_next(fields.get("next")), status_code=303)
    if fields.get("lang") in LANGUAGES:
        set_cookie(response, request, LANGUAGE_COOKIE, fields["lang"],
                   max_age=365 * 24 * 3600)
    return response


def _csrf_refused(request: Request, user: PageUser) -> HTMLResponse:
    _ = translator(user.lang)
    return error_page(request, user, user.lang, 403, _("Something went wrong"),
                      _("The form expired: please submit it again."))


# ------------------------------------------------------------------------------- pages
@router.get("/")
def home(request: Request, user: User) -> Response:
    from passerelle.figures.compute import home_key

    # The tiles the last run stored (figures/), or a job computing them (web/stored.py).
    found = figure(request, user, home_key())
    tiles, period_end = [], None
    if found.stored is not None:
        rows, period_end = found.value
        tiles = [data.Tile(**row) for row in rows]
    return render(request, "home.html", user.lang, user=user, tiles=tiles,
                  period_end=period_end, days=data.PERIOD.days, figure=found)


@router.get("/glossary")
def glossary(request: Request, user: User) -> Response:
    project = request.app.state.web_project
    entries = locked(lambda: lineage.glossary_entries(request.app.state, project))
    return render(request, "glossary.html", user.lang, user=user, entries=entries,
                  indicators=data.INDICATORS, definitions=data.DEFINITIONS, lineage=data.LINEAGE)


@router.get("/customers")
def customers(request: Request, user: User,
              q: Annotated[Text | None, Query(max_length=200)] = None) -> Response:
    from passerelle.identity import service

    project = request.app.state.web_project
    rows: list[dict] | None = None
    error = None
    if q and q.strip():
        mask = not user.can("pii:read")

        def work() -> list[dict]:
            with same_tables(project.engine):
                hits = service.find(project.definition, project.engine, q.strip(), 20)
                return data.search_rows(project, hits, mask)
        try:
            rows = locked(work)
        except PasserelleError as exc:
            error = exc
    template = "_results.html" if request.headers.get("hx-request") else "customers.html"
    return render(request, template, user.lang, user=user, q=q or "", rows=rows, error=error)


@router.get("/customers/{person_id}")
def profile(request: Request, user: User, person_id: Text) -> Response:

    project = request.app.state.web_project
    mask = not user.can("pii:read")

    def work() -> dict[str, Any]:
        with same_tables(project.engine):  # the page reads ~15 tables, creates none
            view = data.person_profile(project, person_id, mask)
            nodes = [r["node"] for r in view["records"]]
            return {"view": view, "timeline": data.timeline(view),
                    "links": data.link_evidence(view["why"]["edges"]),
                    "segments": data.segments_of(project, view["person_id"]),
                    "ledger": data.ledger_of(project, nodes)}
    try:
        context = locked(work)
    except PasserelleError as exc:
        _ = translator(user.lang)
        return error_page(request, user, user.lang, 404, _("Page not found"), exc.reason,
                          exc.instruction)
    return render(request, "profile.html", user.lang, user=user, **context)


@router.get("/health")
def health(request: Request, user: User) -> Response:
    require(user, "pipeline:run")
    project = request.app.state.web_project

    def work() -> dict[str, Any]:
        return {"runs": project.status(5), "checks": data.check_results(project),
                "quarantine": data.quarantine_summary(project, user.can("pii:read"))}
    return render(request, "health.html", user.lang, user=user, **locked(work))
