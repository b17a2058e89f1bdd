"""``_passerelle_runs``: one row per pipeline step run, so `passerelle status` can tell what
happened, when, and with how many rows."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

import ibis
import pyarrow as pa

from passerelle.engines.base import Engine

RUNS_TABLE = "_passerelle_runs"
RUNS_SCHEMA = pa.schema([
    ("run_id", pa.string()),
    ("step", pa.string()),
    ("target", pa.string()),
    ("started_at", pa.timestamp("us")),
    ("finished_at", pa.timestamp("us")),
    ("rows_in", pa.int64()),
    ("rows_out", pa.int64()),
    ("status", pa.string()),
    ("message", pa.string()),
])


def utcnow() -> datetime:
    """Naive UTC, the convention of every timestamp Passerelle writes."""
    return datetime.now(UTC).replace(tzinfo=None)


def new_run_id() -> str:
    """Sortable by time, unique across processes."""
    return f"{utcnow():%Y%m%dT%H%M%S%f}-{secrets.token_hex(4)}"


@dataclass
class StepRecord:
    run_id: str
    step: str  # load, stage, unify, checks...
    target: str  # source name, or '' for project-wide steps
    started_at: datetime
    finished_at: datetime
    rows_in: int | None = None
    rows_out: int | None = None
    status: str = "ok"  # ok | failed | skipped
    message: str = ""

    @property
    def seconds(self) -> float:
        return (self.finished_at - self.started_at).total_seconds()


def record(engine: Engine, step: StepRecord) -> None:
    row = {name: [getattr(step, name)] for name in RUNS_SCHEMA.names}
    engine.append_arrow(RUNS_TABLE, pa.table(row, schema=RUNS_SCHEMA).to_reader())


def last_runs(engine: Engine, limit: int = 10) -> list[dict]:
    """Steps of the ``limit`` most recent runs, newest first."""
    if not engine.exists(RUNS_TABLE):
        return []
    runs = engine.table(RUNS_TABLE)
    recent = runs.group_by("run_id").aggregate(last=runs.finished_at.max())
    recent = recent.order_by(ibis.desc("last")).limit(limit)
    steps = runs.semi_join(recent, "run_id").order_by(
        [ibis.desc("run_id"), "started_at"]
    )
    return engine.to_arrow(steps).to_pylist()
