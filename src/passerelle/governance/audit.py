"""The audit log: who did what, to which resource, when, from where, with what outcome.

Append-only: this module has no update or delete, and the database refuses them (triggers
made by the first migration). Entries name people and tokens by id; ``detail`` holds ids and
counts only, never an e-mail, a phone or a secret.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from passerelle.governance.db import AppDB
from passerelle.governance.tables import AuditEntry
from passerelle.runlog import utcnow

Actor = tuple[str, str]  # (kind, id): ("user", "3"), ("token", "a1b2c3d4"), ("cli", "alice")
OUTCOMES = ("success", "failure", "denied")
COLUMNS = ("id", "at", "actor_kind", "actor_id", "action", "resource", "ip", "outcome",
           "detail")


def cli_actor() -> Actor:
    """The person at the command line, by their operating-system account."""
    from passerelle.identity.service import default_author

    return ("cli", default_author())


def record(session: Session, actor: Actor, action: str, *, resource: str | None = None,
           ip: str | None = None, outcome: str = "success",
           detail: dict[str, str | int | float | bool | None] | None = None) -> None:
    """Add one entry in the caller's transaction, so the change and its entry are
    committed together or not at all."""
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {OUTCOMES}")
    if detail and any(isinstance(v, dict | list) for v in detail.values()):
        raise ValueError("audit detail holds flat ids and counts only")
    session.add(AuditEntry(at=utcnow(), actor_kind=actor[0], actor_id=actor[1], action=action,
                           resource=resource, ip=ip, outcome=outcome,
                           detail=json.dumps(detail, sort_keys=True) if detail else None))


def query(db: AppDB, *, actor_id: str | None = None, actor_kind: str | None = None,
          action: str | None = None, since: datetime | None = None,
          limit: int = 100) -> list[dict[str, Any]]:
    """Entries, newest first. ``action`` ending in ``*`` matches a prefix (``user.*``)."""
    stmt = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if actor_id is not None:
        stmt = stmt.where(AuditEntry.actor_id == actor_id)
    if actor_kind is not None:
        stmt = stmt.where(AuditEntry.actor_kind == actor_kind)
    if action is not None:
        stmt = stmt.where(AuditEntry.action.startswith(action[:-1], autoescape=True)
                          if action.endswith("*") else AuditEntry.action == action)
    if since is not None:
        stmt = stmt.where(AuditEntry.at >= since)
    with db.session() as session:
        return [_as_dict(e) for e in session.scalars(stmt)]


def _as_dict(entry: AuditEntry) -> dict[str, Any]:
    row = {c: getattr(entry, c) for c in COLUMNS}
    row["detail"] = json.loads(entry.detail) if entry.detail else None
    return row


def to_json(rows: list[dict[str, Any]]) -> str:
    return json.dumps(rows, indent=2, default=lambda v: v.isoformat()) + "\n"


def to_csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({**row, "at": row["at"].isoformat(),
                         "detail": json.dumps(row["detail"], sort_keys=True)
                         if row["detail"] else ""})
    return out.getvalue()
