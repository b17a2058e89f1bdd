"""Administration (IT): users, roles, API tokens, consent purposes, the audit log.

Every change goes through the governance functions (users.py, tokens.py), which write the
change and its audit entry in one transaction; this module only reads forms and shows
results. Users, roles and tokens need ``admin:users``; the audit log ``audit:read``. Every
form post carries the session's CSRF token.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import RedirectResponse, Response

from passerelle.api.inputs import Text
from passerelle.errors import PasserelleError
from passerelle.governance import audit, tokens, users
from passerelle.governance.errors import CsrfFailed
from passerelle.governance.permissions import PERMISSIONS, SCOPES
from passerelle.governance.timespec import parse_duration, parse_since
from passerelle.web.auth import PageUser, app_db, checked_form, client_ip, require
from passerelle.web.i18n import translator
from passerelle.web.pages import User, error_page, locked, render

router = APIRouter(include_in_schema=False, prefix="/admin")
AUDIT_ROWS = 200  # rows shown on the page; the CSV export takes up to EXPORT_ROWS
EXPORT_ROWS = 10_000
SECTIONS = ("users", "roles", "tokens", "consent", "audit")


def install(app: FastAPI) -> None:
    app.include_router(router)


async def _form(request: Request, user: PageUser) -> dict[str, str] | Response:
    """The posted fields, or the page that says the form expired (CSRF check failed)."""
    try:
        return await checked_form(request, user)
    except CsrfFailed:
        _ = translator(user.lang)
        return error_page(request, user, user.lang, 403, _("Something went wrong"),
                          _("The form expired: please submit it again."))


def _page(request: Request, user: PageUser, section: str, status: int = 200,
          **context: Any) -> Response:
    return render(request, f"admin_{section}.html", user.lang, status, user=user,
                  section=section, **context)


def _actor(user: PageUser) -> tuple[str, str]:
    return user.principal.audit_actor


# ---------------------------------------------------------------------------------- users
@router.get("")
def admin_home(user: User) -> Response:
    if user.can("admin:users"):
        return RedirectResponse("/admin/users", status_code=303)
    require(user, "audit:read")
    return RedirectResponse("/admin/audit", status_code=303)


def _users_page(request: Request, user: PageUser, status: int = 200,
                error: PasserelleError | None = None, done: str | None = None) -> Response:
    db = app_db(request)
    return _page(request, user, "users", status, users=users.list_users(db),
                 roles=db.roles.names(), error=error, done=done)


@router.get("/users")
def users_page(request: Request, user: User) -> Response:
    require(user, "admin:users")
    return _users_page(request, user)


@router.post("/users")
async def add_user(request: Request, user: User) -> Response:
    require(user, "admin:users")
    fields = await _form(request, user)
    if isinstance(fields, Response):
        return fields
    _ = translator(user.lang)
    try:
        added = users.add_user(app_db(request), fields.get("email", "")[:320],
                               fields.get("role", ""), fields.get("password", "")[:1024],
                               _actor(user), client_ip(request))
    except PasserelleError as exc:
        return _users_page(request, user, 400, error=exc)
    return _users_page(request, user, done=_("%(email)s added with role %(role)s.",
                                             email=added.email, role=added.role))


@router.post("/users/{user_id}")
async def change_user(request: Request, user: User, user_id: int) -> Response:
    """One form per action: ``action`` is disable, enable, role or password."""
    require(user, "admin:users")
    fields = await _form(request, user)
    if isinstance(fields, Response):
        return fields
    _ = translator(user.lang)
    db, actor, ip = app_db(request), _actor(user), client_ip(request)
    action = fields.get("action")
    try:
        if action in ("disable", "enable"):
            if action == "disable" and str(user_id) == user.principal.id:
                return _users_page(request, user, 400, error=PasserelleError(
                    _("You cannot disable your own account."),
                    _("Ask another administrator.")))
            changed = users.set_disabled(db, user_id, action == "disable", actor, ip)
            done = (_("%(email)s is disabled: their sessions ended.", email=changed.email)
                    if action == "disable" else _("%(email)s is enabled.", email=changed.email))
        elif action == "role":
            changed = users.set_role(db, user_id, fields.get("role", ""), actor, ip)
            done = _("%(email)s now has the role %(role)s.", email=changed.email,
                     role=changed.role)
        elif action == "password":
            changed = users.reset_password(db, user_id, fields.get("password", "")[:1024],
                                           actor, ip)
            done = _("The password of %(email)s is reset: their sessions ended.",
                     email=changed.email)
        else:
            return _users_page(request, user, 400, error=PasserelleError(
                _("Unknown action."), _("Use the buttons of the page.")))
    except PasserelleError as exc:
        return _users_page(request, user, 400, error=exc)
    return _users_page(request, user, done=done)


# ---------------------------------------------------------------------------------- roles
@router.get("/roles")
def roles_page(request: Request, user: User) -> Response:
    require(user, "admin:users")
    from passerelle.project.permissions import BUILTIN_ROLES

    roles = app_db(request).roles
    rows = [{"name": name, "builtin": name in BUILTIN_ROLES,
             "permissions": sorted(roles.permissions(name))} for name in roles.names()]
    return _page(request, user, "roles", roles=rows, permissions=PERMISSIONS)


# --------------------------------------------------------------------------------- tokens
def _tokens_page(request: Request, user: PageUser, status: int = 200,
                 error: PasserelleError | None = None, secret: str | None = None,
                 created: tokens.TokenInfo | None = None, done: str | None = None) -> Response:
    db = app_db(request)
    owners = {u.id: u.email for u in users.list_users(db)}
    return _page(request, user, "tokens", status, tokens=tokens.list_tokens(db),
                 scopes=list(SCOPES), owners=owners, error=error, secret=secret,
                 created=created, done=done)


@router.get("/tokens")
def tokens_page(request: Request, user: User) -> Response:
    require(user, "admin:users")
    return _tokens_page(request, user)


@router.post("/tokens")
async def create_token(request: Request, user: User) -> Response:
    """The secret is in this one answer (``Cache-Control: no-store``) and never again."""
    require(user, "admin:users")
    fields = await _form(request, user)
    if isinstance(fields, Response):
        return fields
    scopes = [s for s in SCOPES if fields.get(f"scope-{s}")]
    name = fields.get("name", "").strip()[:100] or None
    expires_text = fields.get("expires", "").strip()[:16]
    owner = fields.get("owner", "").strip() or None
    try:
        expires = parse_duration(expires_text) if expires_text else None
        info, secret = tokens.create_token(app_db(request), scopes, expires, _actor(user),
                                           name, owner, client_ip(request))
    except PasserelleError as exc:
        return _tokens_page(request, user, 400, error=exc)
    return _tokens_page(request, user, secret=secret, created=info)


@router.post("/tokens/{token_id}/revoke")
async def revoke_token(request: Request, user: User, token_id: Text) -> Response:
    require(user, "admin:users")
    fields = await _form(request, user)
    if isinstance(fields, Response):
        return fields
    _ = translator(user.lang)
    try:
        info = tokens.revoke_token(app_db(request), token_id[:16], _actor(user),
                                   client_ip(request))
    except PasserelleError as exc:
        return _tokens_page(request, user, 404, error=exc)
    return _tokens_page(request, user, done=_("Token %(id)s is revoked.", id=info.id))


# -------------------------------------------------------------------------------- consent
def consent_counts(project: Any) -> list[dict[str, Any]]:
    """Each purpose of consent.yml with the number of persons who grant it now (None when
    the warehouse holds no consent state for it yet)."""
    from passerelle.consent.grants import granted_people

    rows = []
    config = project.definition.consent
    for name, purpose in config.purposes.items():
        people = granted_people(project.engine, name)
        count = None if people is None else int(people.count().execute())
        rows.append({"name": name, "purpose": purpose, "granted": count})
    return rows


@router.get("/consent")
def consent_page(request: Request, user: User) -> Response:
    require(user, "admin:users")
    project = request.app.state.web_project
    rows = locked(lambda: consent_counts(project))
    return _page(request, user, "consent", purposes=rows,
                 declared=project.definition.consent.declared)


# ---------------------------------------------------------------------------------- audit
@router.get("/audit")
def audit_page(request: Request, user: User,
               actor: Annotated[Text | None, Query(max_length=100)] = None,
               action: Annotated[Text | None, Query(max_length=64)] = None,
               since: Annotated[Text | None, Query(max_length=32)] = None,
               export: Annotated[str | None, Query(pattern="^csv$")] = None) -> Response:
    """Search by user (e-mail or id), action (``user.*`` for a prefix), since (``7d`` or a
    date); ``export=csv`` downloads the same search."""
    require(user, "audit:read")
    db = app_db(request)
    error = None
    rows: list[dict[str, Any]] = []
    try:
        actor_id = _actor_id(db, actor.strip()) if actor and actor.strip() else None
        since_at: datetime | None = parse_since(since.strip()) if since and since.strip() else None
        rows = audit.query(db, actor_id=actor_id, action=(action or "").strip() or None,
                           since=since_at, limit=EXPORT_ROWS if export else AUDIT_ROWS)
    except PasserelleError as exc:
        error = exc
    if export and error is None:
        return Response(audit.to_csv(rows), media_type="text/csv; charset=utf-8", headers={
            "Content-Disposition": 'attachment; filename="audit.csv"',
            "Cache-Control": "no-store"})
    emails = {str(u.id): u.email for u in users.list_users(db)}
    return _page(request, user, "audit", 400 if error else 200, rows=rows, error=error,
                 emails=emails, actor=actor or "", action=action or "", since=since or "",
                 limit=AUDIT_ROWS)


def _actor_id(db: Any, text: str) -> str:
    """A user's id from their e-mail or id; any other text (a token id, a CLI account) is
    searched as it is."""
    if "@" not in text:
        return text
    with db.session() as session:
        return str(users.find(session, text).id)
