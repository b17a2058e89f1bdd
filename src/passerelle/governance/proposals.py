"""Glossary proposals: someone proposes a new or changed metric or trait definition, the
reviewers (``glossary:approve``) comment and approve or reject it.

Approval calls the caller's ``write`` (which validates the definition with the project's
own loader and writes the YAML file) inside the transaction that marks the proposal
approved: if writing fails nothing is recorded as approved. Every step is audited.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import select

from passerelle.governance import audit
from passerelle.governance.audit import Actor
from passerelle.governance.db import AppDB
from passerelle.governance.errors import GovernanceError
from passerelle.governance.tables import GlossaryProposal, ProposalComment
from passerelle.runlog import utcnow

Kind = Literal["metric", "trait"]
KINDS = ("metric", "trait")
YAML_LIMIT = 20_000  # characters of one definition
NOTE_LIMIT = 2_000


class ProposalNotFound(GovernanceError):
    http_status = 404


class ProposalClosed(GovernanceError):
    http_status = 409


@dataclass(frozen=True)
class Comment:
    at: datetime
    author: str
    text: str


@dataclass(frozen=True)
class Proposal:
    id: int
    kind: str
    name: str
    yaml_text: str
    note: str
    status: str
    created_at: datetime
    created_by: str
    decided_at: datetime | None
    decided_by: str | None
    written_to: str | None
    comments: tuple[Comment, ...] = ()


def _info(p: GlossaryProposal, comments: list[ProposalComment] | None = None) -> Proposal:
    return Proposal(p.id, p.kind, p.name, p.yaml_text, p.note, p.status, p.created_at,
                    p.created_by, p.decided_at, p.decided_by, p.written_to,
                    tuple(Comment(c.at, c.author, c.text) for c in comments or []))


def _who(actor: Actor) -> str:
    return f"{actor[0]}:{actor[1]}"


def propose(db: AppDB, kind: str, name: str, yaml_text: str, note: str, actor: Actor,
            ip: str | None = None) -> Proposal:
    if kind not in KINDS:
        raise GovernanceError(f"'{kind}' is not a kind of definition.", "Choose metric or trait.")
    if len(yaml_text) > YAML_LIMIT or len(note) > NOTE_LIMIT:
        raise GovernanceError("The proposal is too long.",
                              f"Keep the definition under {YAML_LIMIT} characters and the "
                              f"note under {NOTE_LIMIT}.")
    with db.session() as session:
        row = GlossaryProposal(kind=kind, name=name[:100], yaml_text=yaml_text, note=note,
                               status="open", created_at=utcnow(), created_by=_who(actor))
        session.add(row)
        session.flush()
        audit.record(session, actor, "glossary.propose", resource=f"proposal:{row.id}", ip=ip,
                     detail={"kind": kind, "name": name[:100]})
        return _info(row)


def list_proposals(db: AppDB, status: str | None = None, limit: int = 200) -> list[Proposal]:
    stmt = select(GlossaryProposal).order_by(GlossaryProposal.id.desc()).limit(limit)
    if status is not None:
        stmt = stmt.where(GlossaryProposal.status == status)
    with db.session() as session:
        return [_info(p) for p in session.scalars(stmt)]


def _get(session, proposal_id: int) -> GlossaryProposal:
    row = session.get(GlossaryProposal, proposal_id)
    if row is None:
        raise ProposalNotFound(f"No glossary proposal {proposal_id}.",
                               "Open the list of proposals in the glossary.")
    return row


def get(db: AppDB, proposal_id: int) -> Proposal:
    with db.session() as session:
        row = _get(session, proposal_id)
        comments = list(session.scalars(select(ProposalComment)
                                        .where(ProposalComment.proposal_id == proposal_id)
                                        .order_by(ProposalComment.id)))
        return _info(row, comments)


def comment(db: AppDB, proposal_id: int, text: str, actor: Actor,
            ip: str | None = None) -> None:
    text = text.strip()
    if not text or len(text) > NOTE_LIMIT:
        raise GovernanceError("A comment needs some text, at most "
                              f"{NOTE_LIMIT} characters.", "Write the comment again.")
    with db.session() as session:
        _get(session, proposal_id)
        session.add(ProposalComment(proposal_id=proposal_id, at=utcnow(), author=_who(actor),
                                    text=text))
        audit.record(session, actor, "glossary.comment", resource=f"proposal:{proposal_id}",
                     ip=ip)


def decide(db: AppDB, proposal_id: int, approve: bool, actor: Actor,
           write: Callable[[Proposal], str] | None = None, ip: str | None = None) -> Proposal:
    """Approve (``write`` puts the definition in the project and returns the file it
    wrote) or reject an open proposal."""
    with db.session() as session:
        row = _get(session, proposal_id)
        if row.status != "open":
            raise ProposalClosed(f"Proposal {proposal_id} is already {row.status}.",
                                 "Propose the definition again to change it.")
        if approve:
            if write is None:
                raise ValueError("approving needs a write function")
            row.written_to = write(_info(row))
        row.status = "approved" if approve else "rejected"
        row.decided_at, row.decided_by = utcnow(), _who(actor)
        audit.record(session, actor, "glossary.approve" if approve else "glossary.reject",
                     resource=f"proposal:{proposal_id}", ip=ip,
                     detail={"kind": row.kind, "name": row.name, "file": row.written_to})
        return _info(row)
