"""``_passerelle_runs``: one row per pipeline step run, so `passerelle status` can tell what
happened, when, and with how many rows.

A run writes a ``run`` row (its process, status ``running``) before its first step, and each
step a ``running`` row when it starts; both are replaced by their outcome when they end. A
run killed with ``kill -9`` (or a machine that stopped) leaves them ``running``: once its
process is gone, :func:`last_runs` shows that run and the step it was in as ``interrupted``.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported where used: `utcnow` and `passerelle status` need neither
    import pyarrow as pa

    from passerelle.engines.base import Engine

RUNS_TABLE = "_passerelle_runs"


def runs_schema() -> pa.Schema:
    import pyarrow as pa

    return pa.schema([
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
    status: str = "ok"  # ok | failed | skipped | running | interrupted
    message: str = ""

    @property
    def seconds(self) -> float:
        return (self.finished_at - self.started_at).total_seconds()


def record(engine: Engine, step: StepRecord) -> None:
    import pyarrow as pa

    schema = runs_schema()
    row = {name: [getattr(step, name)] for name in schema.names}
    engine.append_arrow(RUNS_TABLE, pa.table(row, schema=schema).to_reader())


def finish(engine: Engine, step: StepRecord) -> None:
    """Replace the ``running`` row :func:`record` wrote for ``step`` by its outcome."""
    import sqlglot as sg
    import sqlglot.expressions as sge

    col = lambda name: sg.column(name, quoted=True)  # noqa: E731
    with engine.transaction():
        engine.execute(sge.delete(sg.table(RUNS_TABLE, quoted=True), where=sge.and_(
            col("run_id").eq(sge.convert(step.run_id)), col("step").eq(sge.convert(step.step)),
            col("target").eq(sge.convert(step.target)),
            col("status").eq(sge.convert("running")))))
        record(engine, step)


# -- which process runs a run -------------------------------------------------------------
_PROCESS = re.compile(r"^process (\d+) on (\S+) started at tick (\d*)$")


def _start_tick(pid: int) -> str:
    """When the process started, in clock ticks since boot (Linux), so a reused pid is not
    taken for the run's process; empty where /proc does not exist."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat[stat.rindex(")") + 2:].split()[19]


def process_tag() -> str:
    """The ``run`` row's message while it runs: which process on which machine."""
    return f"process {os.getpid()} on {socket.gethostname()} started at tick " \
        f"{_start_tick(os.getpid())}"


def process_gone(tag: str) -> bool:
    """True when ``tag`` names a process of this machine that no longer runs. A process of
    another machine (a shared PostgreSQL warehouse) cannot be checked: it is not gone."""
    match = _PROCESS.match(tag or "")
    if match is None or match[2] != socket.gethostname():
        return False
    pid, tick = int(match[1]), match[3]
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # another user's process: it exists
        pass
    return bool(tick) and _start_tick(pid) != tick


def last_runs(project: Any, limit: int = 10) -> list[dict]:
    """Steps of the ``limit`` most recent runs of a :class:`~passerelle.core.Project`,
    newest first (each run's ``run`` row, when it has one, first). A run whose process is
    gone before it finished is ``interrupted``, and so is the step it was in."""
    if not project.has_table(RUNS_TABLE):
        return []

    def steps(_slots: Any) -> Any:
        import ibis

        runs = project.engine.table(RUNS_TABLE)
        recent = runs.group_by("run_id").aggregate(last=runs.finished_at.max())
        recent = recent.order_by(ibis.desc("last")).limit(limit)
        return runs.semi_join(recent, "run_id").order_by(
            [ibis.desc("run_id"), "started_at", ibis.desc(runs.step == "run")])

    rows = project.rows(f"last_runs {limit}", steps)
    gone = {r["run_id"] for r in rows
            if r["step"] == "run" and r["status"] == "running" and process_gone(r["message"])}
    for r in rows:
        if r["run_id"] in gone and r["status"] == "running":
            r["status"] = "interrupted"
            if r["step"] == "run":
                r["message"] = ("the run stopped before its end (process killed, or the "
                                "machine stopped); run again: it resumes cleanly")
    return rows
