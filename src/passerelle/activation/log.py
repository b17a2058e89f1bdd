"""The export log: every delivery of an audience, who made it, and whom it contained.

``activation_log`` has one row an export (CSV file, webhook sync, reverse-ETL write or
dead-letter retry); ``activation_log_members(export_id, person_id)`` lists the people each
one sent, so erasure can find every export that contained a person. Member rows are written
by ``INSERT ... SELECT`` in the warehouse, never from Python rows.

A row is written with status ``running`` when an export starts and updated when it ends,
so an export killed half-way is visible as such instead of missing.
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass, field
from datetime import datetime

import ibis
import ibis.expr.types as ir
import pyarrow as pa
import sqlglot as sg
import sqlglot.expressions as sge

from passerelle.engines.base import Engine
from passerelle.runlog import new_run_id, utcnow

ACTIVATION_LOG = "activation_log"
ACTIVATION_LOG_MEMBERS = "activation_log_members"

LOG_SCHEMA = pa.schema([
    ("export_id", pa.string()),
    ("user_name", pa.string()),
    ("started_at", pa.timestamp("us")),
    ("finished_at", pa.timestamp("us")),
    ("audience", pa.string()),
    ("destination", pa.string()),  # the destination's name (file name in destinations/)
    ("kind", pa.string()),  # csv | webhook | postgres | mysql
    ("target", pa.string()),  # file path, URL, or database/table (never a password)
    ("people", pa.int64()),  # people actually delivered
    ("file_path", pa.string()),
    ("sha256", pa.string()),
    ("status", pa.string()),  # running | delivered | partial | failed
    ("detail", pa.string()),
])
MEMBERS_SCHEMA = ibis.schema({"export_id": "string", "person_id": "string"})


@dataclass
class ExportResult:
    """What an export did; returned by every activation function."""

    export_id: str
    audience: str
    destination: str
    kind: str
    target: str
    status: str
    people: int
    file_path: str | None = None
    sha256: str | None = None
    detail: str = ""
    dead_letters: list[str] = field(default_factory=list)  # webhook batches that failed
    purpose: str | None = None  # the purpose the people sent granted
    no_consent: int = 0  # treated members left out: the purpose is not granted


def current_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name (some containers)
        return "unknown"


def start_export(engine: Engine, audience: str, destination: str, kind: str, target: str,
                 user: str | None = None) -> str:
    """Write the ``running`` row of a new export and return its id."""
    export_id = f"exp-{new_run_id()}"
    row = {name: [None] for name in LOG_SCHEMA.names}
    row.update(export_id=[export_id], user_name=[user or current_user()],
               started_at=[utcnow()], audience=[audience], destination=[destination],
               kind=[kind], target=[target], people=[0], status=["running"])
    engine.append_arrow(ACTIVATION_LOG, pa.table(row, schema=LOG_SCHEMA).to_reader())
    ensure_members_table(engine)
    return export_id


def finish_export(engine: Engine, result: ExportResult) -> ExportResult:
    """Record how the export ended (status, people, file hash, detail)."""
    values = {"finished_at": _ts(utcnow()), "people": sge.convert(result.people),
              "status": sge.convert(result.status), "detail": sge.convert(result.detail),
              "file_path": sge.convert(result.file_path), "sha256": sge.convert(result.sha256)}
    engine.execute(sge.update(sg.table(ACTIVATION_LOG, quoted=True), values,
                              where=_eq("export_id", result.export_id)))
    return result


def ensure_members_table(engine: Engine) -> None:
    engine.create_empty(ACTIVATION_LOG_MEMBERS, MEMBERS_SCHEMA)


def record_members(engine: Engine, export_id: str, people: ir.Table) -> None:
    """Add ``people.person_id`` to the export's members (INSERT ... SELECT in the engine)."""
    ensure_members_table(engine)
    rows = people.select(export_id=ibis.literal(export_id, "string"),
                         person_id=people.person_id.cast("string"))
    engine.con.insert(ACTIVATION_LOG_MEMBERS, rows)


def list_exports(engine: Engine, audience: str | None = None, limit: int = 50) -> list[dict]:
    """The most recent exports, newest first (optionally of one audience)."""
    if not engine.exists(ACTIVATION_LOG):
        return []
    log = engine.table(ACTIVATION_LOG)
    if audience is not None:
        log = log.filter(log.audience == audience)
    return engine.to_arrow(log.order_by([ibis.desc("started_at"), ibis.desc("export_id")])
                           .limit(limit)).to_pylist()


def exported_before(engine: Engine, sha256: str) -> bool:
    """Whether an export in the log wrote a file with this SHA-256."""
    if not engine.exists(ACTIVATION_LOG):
        return False
    log = engine.table(ACTIVATION_LOG)
    return engine.to_arrow(log.filter(log.sha256 == sha256).count().as_table()
                           ).column(0)[0].as_py() > 0


def exports_of_person(engine: Engine, person_id: str) -> list[dict]:
    """Every export that contained ``person_id`` (what erasure must chase), oldest first."""
    if not engine.exists(ACTIVATION_LOG) or not engine.exists(ACTIVATION_LOG_MEMBERS):
        return []
    log, members = engine.table(ACTIVATION_LOG), engine.table(ACTIVATION_LOG_MEMBERS)
    hits = members.filter(members.person_id == person_id).select("export_id").distinct()
    found = log.semi_join(hits, "export_id").order_by(["started_at", "export_id"])
    return engine.to_arrow(found).to_pylist()


def _ts(value: datetime) -> sge.Expression:
    return sge.cast(sge.convert(value.isoformat(sep=" ")), "TIMESTAMP")


def _eq(column: str, value: object) -> sge.Expression:
    return sge.EQ(this=sg.column(column, quoted=True), expression=sge.convert(value))
