"""Signing a person in: the password check, lock-out and rate limit, all recorded.

Attempts are rows in the application database, so a restart forgets nothing. A person is
locked out after ``max_failures`` failures within ``window`` (counted since their last
success or an administrator's reset); an address is refused after ``ip_max_failures``
unsuccessful attempts within the window, whichever accounts it tries. Every attempt also
goes to the audit log, by user id only: the e-mail typed is never stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from passerelle.governance import audit
from passerelle.governance.db import AppDB
from passerelle.governance.errors import (
    AccountLocked,
    GovernanceError,
    NotAuthenticated,
    SignInFailed,
    TooManyAttempts,
)
from passerelle.governance.passwords import (
    dummy_hash,
    hash_password,
    needs_rehash,
    verify_password,
)
from passerelle.governance.principal import Principal
from passerelle.governance.tables import LoginAttempt, User
from passerelle.governance.users import normalise_email
from passerelle.runlog import utcnow


@dataclass(frozen=True)
class SignInPolicy:
    max_failures: int = 5
    window: timedelta = timedelta(minutes=15)
    ip_max_failures: int = 20
    keep_attempts: timedelta = timedelta(days=1)  # older attempts are deleted


def user_principal(db: AppDB, user: User) -> Principal:
    return Principal("user", str(user.id), user.email, user.role, db.roles.permissions(user.role))


def authenticate(db: AppDB, email: str, password: str, ip: str | None,
                 policy: SignInPolicy = SignInPolicy()) -> Principal:
    """The principal of the person, or :class:`NotAuthenticated` (wrong credentials,
    locked account, too many attempts from ``ip``). Wrong e-mail, wrong password and
    disabled account give the same error, so the answer does not tell who has an account."""
    now = utcnow()
    refusal: NotAuthenticated | None = None
    principal: Principal | None = None
    with db.session() as session:
        session.execute(delete(LoginAttempt).where(LoginAttempt.at < now - policy.keep_attempts))
        user = _user_by_email(session, email)
        outcome = "success"
        retry = _ip_retry_after(session, ip, now, policy)
        locked_until = _locked_until(session, user, now, policy) if user else None
        if retry is not None:
            outcome, refusal = "rate_limited", TooManyAttempts(retry)
        elif locked_until is not None:
            outcome, refusal = "locked", AccountLocked(locked_until)
        else:
            good = verify_password(user.password_hash if user else dummy_hash(), password)
            if user is None:
                outcome, refusal = "unknown_user", SignInFailed()
            elif not good:
                outcome, refusal = "failure", SignInFailed()
            elif user.disabled_at is not None:
                outcome, refusal = "disabled", SignInFailed()
            else:
                if needs_rehash(user.password_hash):
                    user.password_hash = hash_password(password)
                principal = user_principal(db, user)
        user_id = user.id if user else None
        session.add(LoginAttempt(at=now, ip=ip, user_id=user_id, outcome=outcome))
        actor = ("user", str(user_id)) if user_id is not None else ("anonymous", "-")
        audit.record(session, actor, "signin", ip=ip,
                     outcome="success" if refusal is None else "failure",
                     detail=None if refusal is None else {"reason": outcome})
    if refusal is not None:
        raise refusal
    assert principal is not None
    return principal


def _user_by_email(session: Session, email: str) -> User | None:
    try:
        normalised = normalise_email(email)
    except GovernanceError:
        return None
    return session.scalar(select(User).where(User.email == normalised))


def _locked_until(session: Session, user: User, now: datetime,
                  policy: SignInPolicy) -> datetime | None:
    since = max(now - policy.window, user.failures_reset_at or datetime.min)
    recent = session.scalars(
        select(LoginAttempt).where(LoginAttempt.user_id == user.id, LoginAttempt.at >= since,
                                   LoginAttempt.outcome.in_(("failure", "success")))
        .order_by(LoginAttempt.at.desc(), LoginAttempt.id.desc())
        .limit(policy.max_failures)).all()
    if len(recent) < policy.max_failures or any(a.outcome == "success" for a in recent):
        return None
    return recent[-1].at + policy.window  # when the oldest of them leaves the window


def _ip_retry_after(session: Session, ip: str | None, now: datetime,
                    policy: SignInPolicy) -> int | None:
    if ip is None:
        return None
    recent = session.scalars(
        select(LoginAttempt.at).where(LoginAttempt.ip == ip,
                                      LoginAttempt.at >= now - policy.window,
                                      LoginAttempt.outcome != "success")
        .order_by(LoginAttempt.at.desc()).limit(policy.ip_max_failures)).all()
    if len(recent) < policy.ip_max_failures:
        return None
    return int((recent[-1] + policy.window - now).total_seconds()) + 1
