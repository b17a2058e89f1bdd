"""/api/users, /api/tokens, /api/audit: what IT does from `passerelle users/tokens/audit`,
over HTTP. Every change is audited with the caller as actor (governance does it in the same
transaction). A caller cannot make a token that may do more than they may."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field

from passerelle.api import errors
from passerelle.api.auth import client_ip, requires
from passerelle.api.inputs import Text
from passerelle.governance.db import AppDB
from passerelle.governance.errors import PermissionDenied
from passerelle.governance.principal import Principal

USERS = "admin:users"
_RESPONSES = {**errors.RESPONSES, 409: {"model": errors.ErrorBody,
                                        "description": "A user with this e-mail exists"}}
Admin = Annotated[Principal, requires("admin", USERS)]


class NewUser(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: Text = Field(min_length=3, max_length=320)
    role: Text = Field(min_length=1)
    password: Text = Field(min_length=1, description="At least 12 characters")


class UserChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Text | None = None
    disabled: bool | None = None


class NewPassword(BaseModel):
    model_config = ConfigDict(extra="forbid")

    password: Text = Field(min_length=1)


class NewToken(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scopes: list[Literal["collect:write", "profiles:read", "api:read", "api:write",
                         "pii:read", "admin"]] = Field(min_length=1, max_length=6)
    expires_days: int | None = Field(90, ge=1, le=3650, description="null: never")
    name: Text | None = Field(None, max_length=100)
    user: Text | None = Field(None, description="Act for this user (e-mail or id): never "
                                                "more than their role")


def _user(info: Any) -> dict[str, Any]:
    return {**asdict(info), "created_at": info.created_at.isoformat()}


def _token(info: Any) -> dict[str, Any]:
    row = asdict(info)
    for key in ("created_at", "expires_at", "last_used_at", "revoked_at"):
        row[key] = row[key].isoformat() if row[key] else None
    return {**row, "status": info.status}


def build_admin_router(db: AppDB) -> APIRouter:
    router = APIRouter(prefix="/api", tags=["administration"], responses=_RESPONSES)

    @router.get("/users", summary="Every account")
    def users(principal: Admin) -> list[dict[str, Any]]:
        from passerelle.governance.users import list_users

        return [_user(u) for u in list_users(db)]

    @router.post("/users", status_code=201, summary="Add an account")
    def add(body: NewUser, request: Request, principal: Admin) -> dict[str, Any]:
        from passerelle.governance.users import add_user

        return _user(add_user(db, body.email, body.role, body.password,
                              principal.audit_actor, client_ip(request)))

    @router.patch("/users/{user}", summary="Change an account's role, disable or enable it")
    def change(user: Text, body: UserChange, request: Request,
               principal: Admin) -> dict[str, Any]:
        from passerelle.governance.users import find, set_disabled, set_role

        info = None
        if body.role is not None:
            info = set_role(db, user, body.role, principal.audit_actor, client_ip(request))
        if body.disabled is not None:
            info = set_disabled(db, user, body.disabled, principal.audit_actor,
                                client_ip(request))
        if info is None:
            from passerelle.governance.users import _info

            with db.session() as session:
                info = _info(find(session, user))
        return _user(info)

    @router.post("/users/{user}/password", summary="Reset an account's password (ends its "
                                                   "sessions, lifts a lock-out)")
    def password(user: Text, body: NewPassword, request: Request,
                 principal: Admin) -> dict[str, Any]:
        from passerelle.governance.users import reset_password

        return _user(reset_password(db, user, body.password, principal.audit_actor,
                                    client_ip(request)))

    @router.get("/tokens", summary="Every token (never its secret)")
    def tokens(principal: Admin) -> list[dict[str, Any]]:
        from passerelle.governance.tokens import list_tokens

        return [_token(t) for t in list_tokens(db)]

    @router.post("/tokens", status_code=201, summary="Create a token: its secret is in this "
                                                     "answer only")
    def create(body: NewToken, request: Request, principal: Admin) -> dict[str, Any]:
        from datetime import timedelta

        from passerelle.governance.permissions import scope_permissions
        from passerelle.governance.tokens import create_token

        beyond = sorted(scope_permissions(body.scopes) - principal.permissions)
        if beyond:
            raise PermissionDenied(beyond[0])
        lifetime = timedelta(days=body.expires_days) if body.expires_days else None
        info, secret = create_token(db, list(body.scopes), lifetime, principal.audit_actor,
                                    name=body.name, owner=body.user, ip=client_ip(request))
        return {**_token(info), "token": secret}

    @router.delete("/tokens/{token_id}", summary="Revoke a token, at once")
    def revoke(token_id: Text, request: Request, principal: Admin) -> dict[str, Any]:
        from passerelle.governance.tokens import revoke_token

        return _token(revoke_token(db, token_id, principal.audit_actor, client_ip(request)))

    @router.get("/audit", summary="The audit log, newest first (JSON, or CSV with "
                                  "format=csv)", response_model=None)
    def audit_log(principal: Annotated[Principal, requires("admin", "audit:read")],
                  user: Annotated[Text | None, Query(description="A user id or a token "
                                                                 "id")] = None,
                  action: Annotated[Text | None, Query(description="An action, or a prefix "
                                                                   "ending in *")] = None,
                  since: Annotated[Text | None, Query(description="7d, 24h or a UTC "
                                                                  "date")] = None,
                  limit: int = Query(100, ge=1, le=10_000),
                  format: Literal["json", "csv"] = "json") -> Any:
        import json

        from passerelle.governance import audit
        from passerelle.governance.timespec import parse_since

        rows = audit.query(db, actor_id=user, action=action,
                           since=parse_since(since) if since else None, limit=limit)
        if format == "csv":
            return PlainTextResponse(audit.to_csv(rows), media_type="text/csv")
        return json.loads(audit.to_json(rows))

    return router
