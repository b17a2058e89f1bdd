"""People who sign in: add, list, disable, enable, change role, reset password.

Every change is written with its audit entry in one transaction. Users are never deleted:
the audit log keeps pointing at the id of whoever did something.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from passerelle.governance import audit
from passerelle.governance.audit import Actor
from passerelle.governance.db import AppDB
from passerelle.governance.errors import GovernanceError, UnknownRole, UnknownUser, UserExists
from passerelle.governance.passwords import check_policy, hash_password
from passerelle.governance.tables import User, WebSession
from passerelle.runlog import utcnow


@dataclass(frozen=True)
class UserInfo:
    id: int
    email: str
    role: str
    disabled: bool
    created_at: datetime
    created_by: str


def normalise_email(email: str) -> str:
    try:
        return validate_email(email.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        raise GovernanceError(f"'{email}' is not an e-mail address: {exc}",
                              "Give the address the person signs in with.") from exc


def _info(user: User) -> UserInfo:
    return UserInfo(user.id, user.email, user.role, user.disabled_at is not None,
                    user.created_at, user.created_by)


def _check_role(db: AppDB, role: str) -> None:
    if role not in db.roles:
        raise UnknownRole(f"'{role}' is not a role of this project.",
                          f"Roles: {', '.join(db.roles.names())} (custom roles are declared "
                          "under `roles:` in passerelle.yml).")


def find(session: Session, email_or_id: str | int) -> User:
    """A user by e-mail or id; :class:`UnknownUser` when there is none."""
    if isinstance(email_or_id, int) or str(email_or_id).isdigit():
        user = session.get(User, int(email_or_id))
    else:
        user = session.scalar(select(User).where(User.email == normalise_email(email_or_id)))
    if user is None:
        raise UnknownUser(f"No user '{email_or_id}'.", "List them with `passerelle users list`.")
    return user


def add_user(db: AppDB, email: str, role: str, password: str, actor: Actor,
             ip: str | None = None) -> UserInfo:
    email = normalise_email(email)
    _check_role(db, role)
    check_policy(password, email)
    now = utcnow()
    with db.session() as session:
        if session.scalar(select(User.id).where(User.email == email)) is not None:
            raise UserExists(f"A user '{email}' already exists.",
                             "Change their role or reset their password instead.")
        user = User(email=email, role=role, password_hash=hash_password(password),
                    created_at=now, created_by=f"{actor[0]}:{actor[1]}",
                    password_changed_at=now)
        session.add(user)
        session.flush()
        audit.record(session, actor, "user.add", resource=f"user:{user.id}", ip=ip,
                     detail={"role": role})
        return _info(user)


def list_users(db: AppDB) -> list[UserInfo]:
    with db.session() as session:
        return [_info(u) for u in session.scalars(select(User).order_by(User.id))]


def _revoke_sessions(session: Session, user_id: int) -> None:
    session.execute(update(WebSession)
                    .where(WebSession.user_id == user_id, WebSession.revoked_at.is_(None))
                    .values(revoked_at=utcnow()))


def set_disabled(db: AppDB, email_or_id: str | int, disabled: bool, actor: Actor,
                 ip: str | None = None) -> UserInfo:
    """Disabling also ends the user's sessions; their tokens stop working with them."""
    with db.session() as session:
        user = find(session, email_or_id)
        now = utcnow()
        if disabled:
            user.disabled_at = user.disabled_at or now
            _revoke_sessions(session, user.id)
        else:
            user.disabled_at = None
            user.failures_reset_at = now
        audit.record(session, actor, "user.disable" if disabled else "user.enable",
                     resource=f"user:{user.id}", ip=ip)
        return _info(user)


def set_role(db: AppDB, email_or_id: str | int, role: str, actor: Actor,
             ip: str | None = None) -> UserInfo:
    _check_role(db, role)
    with db.session() as session:
        user = find(session, email_or_id)
        before, user.role = user.role, role
        audit.record(session, actor, "user.role", resource=f"user:{user.id}", ip=ip,
                     detail={"from": before, "to": role})
        return _info(user)


def reset_password(db: AppDB, email_or_id: str | int, password: str, actor: Actor,
                   ip: str | None = None) -> UserInfo:
    """A new password ends the user's sessions and lifts a lock-out."""
    with db.session() as session:
        user = find(session, email_or_id)
        check_policy(password, user.email)
        now = utcnow()
        user.password_hash = hash_password(password)
        user.password_changed_at = user.failures_reset_at = now
        _revoke_sessions(session, user.id)
        audit.record(session, actor, "user.password_reset", resource=f"user:{user.id}", ip=ip)
        return _info(user)
