"""/api/session: sign in with an e-mail and a password from a script or the command line.

``client: web`` gets the web app's session cookie (and the CSRF token its unsafe requests
repeat in ``X-CSRF-Token``); ``client: cli`` gets an API token that acts for the person
(never more than their role allows), which `passerelle login` stores. Sign-in goes through
:func:`passerelle.governance.signin.authenticate`, so its lock-out, rate limit per address
and audit entries apply here as on the web app's form.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from passerelle.api import errors
from passerelle.api.auth import client_ip, public, requires
from passerelle.api.inputs import Text
from passerelle.governance.principal import Principal

CLI_TOKEN_LIFETIME = timedelta(days=30)
_RESPONSES = {**errors.RESPONSES, 429: {"model": errors.ErrorBody, "description": (
    "Too many failed sign-ins: the account is locked, or the address is refused for a while "
    "(Retry-After)")}}


class SignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: Text = Field(min_length=1, max_length=320)
    password: Text = Field(min_length=1)
    client: Literal["web", "cli"] = Field("web", description="web: a session cookie; cli: an "
                                                             "API token for the command line")


def whoami(principal: Principal) -> dict[str, Any]:
    return {"kind": principal.kind, "id": principal.id, "name": principal.display_name,
            "role": principal.role, "permissions": sorted(principal.permissions),
            "scopes": sorted(principal.scopes)}


def build_session_router() -> APIRouter:
    router = APIRouter(prefix="/api/session", tags=["session"], responses=_RESPONSES)

    @router.post("", summary="Sign in: a session cookie (web) or an API token (cli)",
                 dependencies=[public("sign-in")])
    def sign_in(body: SignIn, request: Request) -> Any:
        from passerelle.governance.sessions import create_session
        from passerelle.governance.signin import authenticate
        from passerelle.governance.tokens import create_token
        from passerelle.web.auth import SESSION_COOKIE, set_cookie

        db = request.app.state.app_db
        principal = authenticate(db, body.email, body.password, client_ip(request))
        if body.client == "cli":
            info, secret = create_token(db, ["admin"], CLI_TOKEN_LIFETIME,
                                        principal.audit_actor, name="cli",
                                        owner=int(principal.id), ip=client_ip(request))
            return {"success": True, "token": secret, "token_id": info.id,
                    "expires_at": info.expires_at.isoformat() if info.expires_at else None,
                    "user": whoami(principal)}
        active = create_session(db, principal)
        response = JSONResponse({"success": True, "csrf_token": active.csrf_token,
                                 "user": whoami(principal)})
        set_cookie(response, request, SESSION_COOKIE, active.session_id)
        return response

    @router.get("", summary="Who the credential sent stands for, and what it may do")
    def me(principal: Annotated[Principal, requires(None)]) -> dict[str, Any]:
        return whoami(principal)

    @router.delete("", summary="Sign out: end this session, or revoke this token")
    def sign_out(request: Request,
                 principal: Annotated[Principal, requires(None)]) -> dict[str, Any]:
        from passerelle.governance.sessions import revoke_session
        from passerelle.governance.tokens import revoke_token
        from passerelle.web.auth import SESSION_COOKIE

        db = request.app.state.app_db
        session = getattr(request.state, "session", None)
        if session is not None:
            revoke_session(db, session.session_id, client_ip(request))
            response = JSONResponse({"success": True})
            response.delete_cookie(SESSION_COOKIE, path="/")
            return response
        revoke_token(db, principal.id, principal.audit_actor, client_ip(request))
        return {"success": True}

    return router
