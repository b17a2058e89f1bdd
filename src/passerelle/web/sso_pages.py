"""Single sign-on pages: "Sign in with <provider>" and the provider's callback.

``GET /login/sso`` sends the browser to the provider (authorization code flow with PKCE;
the state, nonce and verifier stay in the server, the browser keeps only a random id in
the ``passerelle_sso`` cookie); ``GET /login/sso/callback`` checks the answer, matches or
creates the user, and opens a server-side session exactly as the password form does.
Both are open (``sign-in``); every refusal shows the sign-in page with what to do, and is
in the audit log.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import RedirectResponse, Response

from passerelle.api.auth import public
from passerelle.core import Project
from passerelle.governance.oidc import OidcClient, PendingSignIns, SsoError, client_secret
from passerelle.governance.sessions import create_session
from passerelle.web.auth import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    app_db,
    client_ip,
    current_session,
    language,
    safe_next,
    set_cookie,
)
from passerelle.web.i18n import translator

SSO_COOKIE = "passerelle_sso"
log = logging.getLogger(__name__)


@dataclass
class SingleSignOn:
    """The server's provider and its sign-ins under way (``app.state.sso``)."""

    client: OidcClient
    flows: PendingSignIns

    @property
    def name(self) -> str:
        return self.client.config.name


def install(app: FastAPI, project: Project) -> None:
    """The routes always exist (they answer 404 without ``sso:``); the client secret is
    read now, so a server whose secret is missing does not start."""
    config = project.config.sso
    app.state.sso = (SingleSignOn(OidcClient(config, client_secret(config)), PendingSignIns())
                     if config is not None else None)
    app.include_router(router)


def configured(request: Request) -> SingleSignOn | None:
    return getattr(request.app.state, "sso", None)


router = APIRouter(include_in_schema=False)


@router.get("/login/sso", dependencies=[public("sign-in")])
def start(request: Request, next: str = "/") -> Response:
    sso = configured(request)
    if sso is None:
        return _not_configured(request)
    next = safe_next(next[:2000])
    if current_session(request) is not None:  # signed in already: as /login does
        return RedirectResponse(next, status_code=303)
    redirect_uri = sso.client.config.redirect_url or str(request.url_for("sso_callback"))
    try:
        url, pending = sso.client.begin(redirect_uri, next)
    except SsoError as exc:
        return _refused(request, exc, next, audit=True)
    response = RedirectResponse(url, status_code=303)
    set_cookie(response, request, SSO_COOKIE, sso.flows.put(pending), max_age=600)
    return response


@router.get("/login/sso/callback", name="sso_callback", dependencies=[public("sign-in")])
def callback(request: Request) -> Response:
    from passerelle.governance.sso import sign_in

    sso = configured(request)
    if sso is None:
        return _not_configured(request)
    pending = sso.flows.take(request.cookies.get(SSO_COOKIE))
    params = {k: v for k, v in request.query_params.items()
              if k in ("code", "state", "error")}
    db = app_db(request)
    next_path = pending.next_path if pending is not None else "/"
    try:
        principal = sign_in(db, sso.client, pending, params, client_ip(request))
    except SsoError as exc:
        return _refused(request, exc, next_path)
    active = create_session(db, principal)
    response = RedirectResponse(next_path, status_code=303)
    set_cookie(response, request, SESSION_COOKIE, active.session_id)
    response.delete_cookie(SSO_COOKIE, path="/")
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/")
    return response


def _refused(request: Request, exc: SsoError, next_path: str, audit: bool = False) -> Response:
    from passerelle.web.pages import login_page

    if audit:  # refused before the flow started: no callback will record it
        from passerelle.governance.sso import audit_refusal

        audit_refusal(app_db(request), client_ip(request), exc.code)
    log.warning("single sign-on refused (%s): %s", exc.code, exc.reason)
    _ = translator(language(request))
    reason, instruction = explain(_, exc)
    response = login_page(request, next_path, _("Single sign-on failed: %(reason)s",
                                                 reason=reason), instruction, exc.http_status)
    response.delete_cookie(SSO_COOKIE, path="/")
    return response


def explain(_: Callable[..., str], exc: SsoError) -> tuple[str, str]:
    """What the person reads, in their language, for each reason (the details are in the
    server's log)."""
    again = _("Start the sign-in again.")
    tell_it = _("If it happens again, tell IT.")
    texts = {
        "provider_unreachable": (_("the sign-in provider did not answer."),
                                 _("Try again in a moment; if it lasts, tell IT.")),
        "provider_misconfigured": (_("the sign-in provider is not the one set up."),
                                   tell_it),
        "bad_state": (
            _("no sign-in of this browser is waiting for this answer (10 minutes at most)."),
            again),
        "bad_request": (_("the sign-in provider's answer is incomplete."), again),
        "provider_refused": (_("the sign-in provider refused the sign-in."),
                             _("Check with IT that your account may use Passerelle.")),
        "token_refused": (_("the sign-in provider refused to confirm the sign-in."), tell_it),
        "bad_token": (_("the sign-in provider's answer could not be verified."), tell_it),
        "email_unverified": (_("the sign-in provider has not verified your e-mail address."),
                             _("Verify it at the provider, then sign in again.")),
        "no_email": (_("the sign-in provider gave no e-mail address."), tell_it),
        "domain_refused": (_("your e-mail domain may not sign in to this Passerelle."),
                           _("Sign in with your work account.")),
        "no_role": (_("your sign-in carries no role for Passerelle."),
                    _("Ask IT to give you a role for Passerelle at the sign-in provider.")),
        "unknown_role": (_("your role at the sign-in provider is not one Passerelle knows."),
                         _("Ask IT to map it in passerelle.yml (sso: role_map).")),
        "disabled": (_("your Passerelle account is disabled."),
                     _("Ask an administrator to enable it.")),
    }
    return texts.get(exc.code, (exc.reason, exc.instruction or again))


def _not_configured(request: Request) -> Response:
    from passerelle.web.pages import error_page

    lang = language(request)
    _ = translator(lang)
    return error_page(request, None, lang, 404, _("Page not found"),
                      _("Single sign-on is not set up for this Passerelle."),
                      _("Sign in with your e-mail and password."))
