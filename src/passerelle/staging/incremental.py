"""Append staging: stage only the loads that are not staged yet.

``_passerelle_staged_loads`` lists, per source, the loads its ``stg_<source>`` table was
built from, each with the *rule* it was staged with: a fingerprint of everything else the
staged rows depend on (the source's definition, the project's time zone, phone region and
salt, the CSV decimal mark, the raw table's columns, the boolean columns read as
checkboxes, the year, and Passerelle's staging code).

For a source declared ``incremental: {staging: append}``, :func:`plan` compares that list
with the load ledger. When the rule is unchanged and every staged load still has its rows
in the raw table, the loads not staged yet are staged on their own and added; any other
change (a new mapping, a replaced or reloaded file, a new raw column, ``--full``) rebuilds
the table, and the plan says why.

Adding the new loads gives the table a full staging would: loads of a source are written
one after the other, so a new load is always more recent than the staged ones, and each of
its records replaces the version of that record staged (or quarantined) earlier, as
staging's keep-the-latest rule does. The rows and the list of staged loads change in one
transaction: a run killed midway leaves the old state, and the re-run stages the same loads.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import ibis
import pyarrow as pa
import sqlglot as sg
import sqlglot.expressions as sge

from passerelle.engines.base import Engine
from passerelle.project.models import ProjectConfig, SourceConfig
from passerelle.runlog import utcnow
from passerelle.sources import bookkeeping as books

#: Loads to stage: load id -> when it started (its rows' ``_loaded_at``).
Loads = dict[str, datetime]

STAGED_TABLE = "_passerelle_staged_loads"
STAGED_SCHEMA = ibis.schema({
    "source": "string", "load_id": "string", "rule": "string", "run_id": "string",
    "staged_at": "timestamp",
})
#: More new loads than this since the last staging: staged in full (the load ids are
#: written into the statement that selects the new rows).
MAX_NEW_LOADS = 5000

# The code that decides a staged row, read once when loaded: an upgrade that changes it
# rebuilds the staged tables at their next staging.
_CODE = hashlib.sha256(b"".join(
    path.read_bytes() for path in sorted(Path(__file__).parent.glob("*.py"))
    if path.name not in ("checks.py", "unify.py"))).hexdigest()


@dataclass(frozen=True)
class Plan:
    """What one staging of a source does.

    ``mode`` is ``full`` (rebuild from every raw row) or ``incremental``; ``reason`` says
    why, for the run report; ``loads`` are the loads to stage: every live load for a full
    staging, the new ones for an incremental one.
    """

    mode: str
    reason: str
    rule: str
    loads: Loads = field(default_factory=dict)

    @property
    def incremental(self) -> bool:
        return self.mode == "incremental"


def rule_fingerprint(engine: Engine, source: SourceConfig, project: ProjectConfig,
                     raw_table: str, csv_decimal: str | None,
                     checkboxes: frozenset[str]) -> str:
    """Everything a staged row depends on besides its raw row (see the module's text),
    with the two things staging decides from other rows or from the date: the boolean
    columns read as checkboxes, and the year (two-digit years are read around it).

    ``incremental.staging`` itself is left out: declaring a source append-only keeps the
    table a full staging made."""
    definition = source.model_dump(mode="json")
    definition["incremental"].pop("staging", None)
    salt = project.identity_salt.get_secret_value() if project.identity_salt else ""
    raw = [[name, str(dtype)] for name, dtype in engine.table(raw_table).schema().items()]
    parts = [json.dumps(definition, sort_keys=True), project.timezone, project.default_region,
             hashlib.sha256(salt.encode()).hexdigest(), csv_decimal or "", json.dumps(raw),
             json.dumps(sorted(checkboxes)), str(date.today().year), _CODE]
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def staged_loads(engine: Engine, source: str) -> dict[str, str]:
    """load id -> the rule it was staged with, for ``source``."""
    if not engine.exists(STAGED_TABLE):
        return {}
    table = engine.table(STAGED_TABLE)
    rows = engine.to_arrow(table.filter(table.source == source).select("load_id", "rule"))
    return dict(zip(rows.column(0).to_pylist(), rows.column(1).to_pylist(), strict=True))


def plan(engine: Engine, source: SourceConfig, rule: str, stg_table: str,
         full: bool) -> Plan:
    """Full or incremental staging of ``source``, the loads to stage and why."""
    live = books.live_loads(engine, source.name)
    if source.incremental.staging != "append":
        return Plan("full", "", rule, live)
    why = None
    staged = staged_loads(engine, source.name)
    if full:
        why = "a full staging was asked for (--full)"
    elif not engine.exists(stg_table) or not staged:
        why = "first staging"
    elif any(r != rule for r in staged.values()):
        why = ("the staging rule changed since the last staging (the source's mapping, the "
               "project's time zone, region or salt, a new raw column, or Passerelle's "
               "staging code)")
    else:
        kept = set(live)
        gone = [load for load in staged if load not in kept]
        if gone:
            why = (f"{len(gone)} load(s) staged earlier were replaced (a file that changed, a "
                   "reload) or removed")
    if why is not None:
        return Plan("full", why, rule, live)
    new = {load: at for load, at in live.items() if load not in staged}
    if len(new) > MAX_NEW_LOADS:
        return Plan("full", f"{len(new):,} new loads since the last staging (more than "
                    f"{MAX_NEW_LOADS:,})", rule, live)
    return Plan("incremental", f"{len(new)} new load(s)" if new else "no new load", rule, new)


def ensure_table(engine: Engine) -> None:
    engine.create_empty(STAGED_TABLE, STAGED_SCHEMA)


def forget(engine: Engine, source: str) -> None:
    """Forget which loads ``source``'s staged table holds: the next staging is a full one.
    Done before a full staging starts, whose steps do not all commit together."""
    engine.execute(sge.delete(sg.table(STAGED_TABLE, quoted=True),
                              where=sg.column("source", quoted=True).eq(sge.convert(source))))


def remember(engine: Engine, source: str, loads: Loads, rule: str, run_id: str) -> None:
    """Add ``loads`` to those ``source``'s staged table holds (inside the caller's
    transaction, with the rows)."""
    if not loads:
        return
    now = utcnow()
    rows = pa.table({"source": [source] * len(loads), "load_id": list(loads),
                     "rule": [rule] * len(loads), "run_id": [run_id] * len(loads),
                     "staged_at": [now] * len(loads)}, schema=STAGED_SCHEMA.to_pyarrow())
    engine.append_arrow(STAGED_TABLE, rows.to_reader())


def supersede(engine: Engine, stg_table: str, quarantine: str, work: str, source: str) -> None:
    """Delete the rows of ``stg_table`` and the staging rows of ``quarantine`` that are
    earlier versions of a record the new rows in ``work`` hold."""
    record = sg.column("_record_id", quoted=True)
    new_ids = (sg.select(record).from_(sg.table(work, quoted=True))
               .where(record.is_(sge.null()).not_()).subquery())
    engine.execute(sge.delete(sg.table(stg_table, quoted=True),
                              where=sge.In(this=record, query=new_ids)))
    engine.execute(sge.delete(sg.table(quarantine, quoted=True), where=sge.and_(
        sg.column("source", quoted=True).eq(sge.convert(source)),
        sg.column("stage", quoted=True).eq(sge.convert("stage")),
        sge.In(this=sg.column("record_id", quoted=True), query=new_ids.copy()))))
