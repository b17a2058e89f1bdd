"""The application database's tables (SQLAlchemy 2 models).

Times are naive UTC, as everywhere in Passerelle (``runlog.utcnow``). Secrets are never
stored: passwords as Argon2 hashes, token and session ids as SHA-256 digests. The audit log
and the sign-in attempts name people by id only.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, ForeignKey, Index, Integer, MetaData, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    # Named constraints, so later migrations can alter them on SQLite too (batch mode).
    metadata = MetaData(naming_convention={
        "ix": "ix_%(column_0_label)s", "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s"})


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)  # normalised: lower-case
    role: Mapped[str] = mapped_column(String(63))
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(255))
    password_changed_at: Mapped[datetime]
    disabled_at: Mapped[datetime | None]
    # Failed sign-ins before this time no longer count towards a lock-out (set when an
    # administrator resets the password or enables the account).
    failures_reset_at: Mapped[datetime | None]


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)  # public, shown in lists
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[str] = mapped_column(String(255))  # space-separated
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))  # None: a service
    created_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class WebSession(Base):
    __tablename__ = "sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    expires_at: Mapped[datetime]  # absolute limit, whatever the activity
    revoked_at: Mapped[datetime | None]


class AuditEntry(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(index=True)
    actor_kind: Mapped[str] = mapped_column(String(16))  # user | token | cli | anonymous
    actor_id: Mapped[str] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(64))
    resource: Mapped[str | None] = mapped_column(String(255))
    ip: Mapped[str | None] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(16))  # success | failure | denied
    detail: Mapped[str | None] = mapped_column(Text)  # JSON, ids and counts only

    __table_args__ = (Index("ix_audit_log_actor", "actor_kind", "actor_id"),
                      Index("ix_audit_log_action", "action"))


class LoginAttempt(Base):
    __tablename__ = "login_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(index=True)
    ip: Mapped[str | None] = mapped_column(String(64), index=True)
    user_id: Mapped[int | None] = mapped_column(Integer, index=True)  # None: unknown e-mail
    outcome: Mapped[str] = mapped_column(String(16))


class Job(Base):
    """Work the server's worker does on the warehouse (see governance/jobs.py)."""

    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    params: Mapped[str] = mapped_column(Text)  # JSON
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(255))
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    worker: Mapped[str | None] = mapped_column(String(255))  # runlog.process_tag()
    heartbeat_at: Mapped[datetime | None]
    step: Mapped[str | None] = mapped_column(String(255))
    fraction: Mapped[float | None] = mapped_column(Float)
    messages: Mapped[str] = mapped_column(Text)  # JSON list, the last few
    result: Mapped[str | None] = mapped_column(Text)  # JSON
    error: Mapped[str | None] = mapped_column(Text)  # JSON: reason, instruction, exit_code
    exit_code: Mapped[int | None]
    requeued_from: Mapped[int | None]

    __table_args__ = (Index("ix_jobs_status", "status", "id"),)


class GlossaryProposal(Base):
    """A new or changed metric or trait definition, proposed in the web app and reviewed
    there (governance/proposals.py); approval writes ``yaml_text`` into the project."""

    __tablename__ = "glossary_proposals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # metric | trait
    name: Mapped[str] = mapped_column(String(100))
    yaml_text: Mapped[str] = mapped_column(Text)  # the one definition, as written in files
    note: Mapped[str] = mapped_column(Text)  # why: the proposer's words
    status: Mapped[str] = mapped_column(String(16))  # open | approved | rejected
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(255))  # "user:3"
    decided_at: Mapped[datetime | None]
    decided_by: Mapped[str | None] = mapped_column(String(255))
    written_to: Mapped[str | None] = mapped_column(String(255))  # project-relative file

    __table_args__ = (Index("ix_glossary_proposals_status", "status", "id"),)


class ProposalComment(Base):
    __tablename__ = "glossary_comments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    proposal_id: Mapped[int] = mapped_column(ForeignKey("glossary_proposals.id"), index=True)
    at: Mapped[datetime]
    author: Mapped[str] = mapped_column(String(255))  # "user:3"
    text: Mapped[str] = mapped_column(Text)
