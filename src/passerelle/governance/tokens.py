"""API tokens: scoped, expiring, revocable; shown once, stored as a SHA-256 digest.

A token is ``psl_`` and 32 random bytes (256 bits). A digest that fast is enough for a
secret that long: nobody can guess it, so the slow hashes that protect passwords (which
people choose) would only slow every API call down. The ``psl_`` prefix lets secret
scanners recognise a leaked token.

A token with an owner may never do more than its owner, and stops working when the owner
is disabled; a token without owner (a service: a website, a tag manager) may do what its
scopes allow.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from passerelle.governance import audit
from passerelle.governance.audit import Actor
from passerelle.governance.db import AppDB
from passerelle.governance.errors import GovernanceError, TokenRejected, UnknownToken
from passerelle.governance.permissions import SCOPES
from passerelle.governance.principal import Principal, token_principal
from passerelle.governance.tables import ApiToken, User
from passerelle.governance.users import find
from passerelle.runlog import utcnow

PREFIX = "psl_"
_TOUCH_EVERY = timedelta(minutes=1)  # last_used_at is written at most this often


@dataclass(frozen=True)
class TokenInfo:
    id: str
    name: str
    scopes: list[str]
    owner_id: int | None
    created_by: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None

    @property
    def status(self) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= utcnow():
            return "expired"
        return "active"


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _info(token: ApiToken) -> TokenInfo:
    return TokenInfo(token.id, token.name, token.scopes.split(), token.owner_id,
                     token.created_by, token.created_at, token.expires_at,
                     token.last_used_at, token.revoked_at)


def create_token(db: AppDB, scopes: list[str], expires: timedelta | None, created_by: Actor,
                 name: str | None = None, owner: str | int | None = None,
                 ip: str | None = None) -> tuple[TokenInfo, str]:
    """The new token and its secret, which is never shown again. ``expires`` None: never."""
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown or not scopes:
        raise GovernanceError(f"Unknown scope(s): {', '.join(unknown) or 'none given'}.",
                              f"Scopes: {', '.join(SCOPES)}.")
    secret = PREFIX + secrets.token_urlsafe(32)
    now = utcnow()
    with db.session() as session:
        owner_id = find(session, owner).id if owner is not None else None
        token = ApiToken(id=secrets.token_hex(6), name=name or "token",
                         token_hash=digest(secret), scopes=" ".join(dict.fromkeys(scopes)),
                         owner_id=owner_id, created_by=f"{created_by[0]}:{created_by[1]}",
                         created_at=now, expires_at=now + expires if expires else None)
        session.add(token)
        audit.record(session, created_by, "token.create", resource=f"token:{token.id}", ip=ip,
                     detail={"scopes": token.scopes, "owner": owner_id,
                             "expires": token.expires_at.isoformat()
                             if token.expires_at else None})
        return _info(token), secret


def list_tokens(db: AppDB) -> list[TokenInfo]:
    with db.session() as session:
        return [_info(t) for t in session.scalars(select(ApiToken)
                                                  .order_by(ApiToken.created_at))]


def revoke_token(db: AppDB, token_id: str, actor: Actor, ip: str | None = None) -> TokenInfo:
    with db.session() as session:
        token = session.get(ApiToken, token_id)
        if token is None:
            raise UnknownToken(f"No token '{token_id}'.",
                               "List them with `passerelle tokens list`.")
        token.revoked_at = token.revoked_at or utcnow()
        audit.record(session, actor, "token.revoke", resource=f"token:{token.id}", ip=ip)
        return _info(token)


def principal_from_token(db: AppDB, secret: str) -> Principal:
    """The principal a bearer token stands for; :class:`TokenRejected` when it is unknown,
    revoked, expired, or its owner is disabled."""
    if not secret.startswith(PREFIX):
        raise TokenRejected("This is not a Passerelle API token.",
                            "Send `Authorization: Bearer psl_...`.")
    wanted = digest(secret)
    now = utcnow()
    with db.session() as session:
        token = session.scalar(select(ApiToken).where(ApiToken.token_hash == wanted))
        # the digest came from the index; compare again in constant time all the same
        if token is None or not hmac.compare_digest(token.token_hash, wanted):
            raise TokenRejected("This API token is not recognised.",
                                "Ask an administrator for a token.")
        if token.revoked_at is not None:
            raise TokenRejected(f"API token {token.id} was revoked.",
                                "Ask an administrator for a new token.")
        if token.expires_at is not None and token.expires_at <= now:
            raise TokenRejected(f"API token {token.id} expired on "
                                f"{token.expires_at:%Y-%m-%d}.",
                                "Ask an administrator for a new token.")
        owner = session.get(User, token.owner_id) if token.owner_id is not None else None
        if owner is not None and owner.disabled_at is not None:
            raise TokenRejected(f"The owner of API token {token.id} is disabled.",
                                "Ask an administrator for a new token.")
        if token.last_used_at is None or now - token.last_used_at >= _TOUCH_EVERY:
            token.last_used_at = now
        return token_principal(token.id, token.name, token.scopes.split(),
                               owner.role if owner else None,
                               db.roles.permissions(owner.role) if owner else None)
