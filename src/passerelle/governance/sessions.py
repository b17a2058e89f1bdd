"""Server-side sessions of the web app: the cookie holds only a random id.

The database keeps the id's SHA-256 digest (a copy of the database gives no live session),
the user, a CSRF token for the session's forms, and two limits: an idle timeout (no request
for ``idle``) and an absolute one (``lifetime`` after sign-in, whatever the activity).
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete

from passerelle.governance import audit
from passerelle.governance.db import AppDB
from passerelle.governance.errors import CsrfFailed, SessionExpired
from passerelle.governance.principal import Principal
from passerelle.governance.signin import user_principal
from passerelle.governance.tables import User, WebSession
from passerelle.governance.tokens import digest
from passerelle.runlog import utcnow


@dataclass(frozen=True)
class SessionPolicy:
    idle: timedelta = timedelta(hours=2)
    lifetime: timedelta = timedelta(hours=12)


@dataclass(frozen=True)
class ActiveSession:
    session_id: str  # the cookie's value: known to the browser, never stored
    principal: Principal
    csrf_token: str


def create_session(db: AppDB, principal: Principal,
                   policy: SessionPolicy = SessionPolicy()) -> ActiveSession:
    """A session for a person just signed in (:func:`signin.authenticate`)."""
    if principal.kind != "user":
        raise ValueError("sessions are for people; tokens are sent with each request")
    session_id, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    now = utcnow()
    with db.session() as session:
        session.add(WebSession(id_hash=digest(session_id), user_id=int(principal.id),
                               csrf_token=csrf, created_at=now, last_seen_at=now,
                               expires_at=now + policy.lifetime))
    return ActiveSession(session_id, principal, csrf)


def lookup_session(db: AppDB, session_id: str,
                   policy: SessionPolicy = SessionPolicy()) -> ActiveSession:
    """The session behind a cookie, its idle clock restarted; :class:`SessionExpired` when
    it is unknown, revoked, idle too long, past its lifetime, or its user is disabled."""
    now = utcnow()
    with db.session() as session:
        row = session.get(WebSession, digest(session_id))
        user = session.get(User, row.user_id) if row is not None else None
        if (row is None or user is None or row.revoked_at is not None
                or row.expires_at <= now or row.last_seen_at + policy.idle <= now
                or user.disabled_at is not None):
            raise SessionExpired()
        row.last_seen_at = now
        return ActiveSession(session_id, user_principal(db, user), row.csrf_token)


def revoke_session(db: AppDB, session_id: str, ip: str | None = None) -> None:
    """Sign out: the session stops working at once."""
    with db.session() as session:
        row = session.get(WebSession, digest(session_id))
        if row is not None and row.revoked_at is None:
            row.revoked_at = utcnow()
            audit.record(session, ("user", str(row.user_id)), "session.end", ip=ip)


def purge_sessions(db: AppDB, policy: SessionPolicy = SessionPolicy()) -> int:
    """Delete sessions that can no longer be used; returns how many."""
    now = utcnow()
    with db.session() as session:
        result = session.execute(delete(WebSession).where(
            (WebSession.expires_at <= now) | (WebSession.revoked_at.is_not(None))
            | (WebSession.last_seen_at <= now - policy.idle)))
        return result.rowcount


def check_csrf(active: ActiveSession, submitted: str | None) -> None:
    """A form post must carry its session's CSRF token (compared in constant time)."""
    if not submitted or not hmac.compare_digest(active.csrf_token, submitted):
        raise CsrfFailed()
