"""The load ledger (``_passerelle_loads``) and the quarantine table.

A raw row exists only if the load that wrote it is recorded in the ledger: every load unit
appends its rows and then records itself inside one transaction, and every ``load_source``
starts by deleting raw rows whose ``_load_id`` the ledger does not know. A load killed midway
(power cut, kill -9, an engine without the transaction) therefore re-runs cleanly.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

import ibis
import pyarrow as pa
import sqlglot as sg
import sqlglot.expressions as sge

from passerelle.engines.base import Engine
from passerelle.runlog import utcnow
from passerelle.tables import LINEAGE_COLUMNS, QUARANTINE_TABLE

LOADS_TABLE = "_passerelle_loads"

LOADS_SCHEMA = ibis.schema({
    "load_id": "string",
    "run_id": "string",
    "source": "string",
    "source_file": "string",
    "fingerprint": "string",
    "size_bytes": "int64",
    "rows": "int64",
    "high_water_mark": "string",
    "started_at": "timestamp",
    "finished_at": "timestamp",
    # How the unit was read (JSON: connector type, delimiter, encoding...): a unit read
    # otherwise today is reloaded even if its content is unchanged. NULL in ledgers written
    # before this column existed: unknown, so such a unit is kept until it changes.
    "read_as": "string",
    # When a later load took this one's rows out of the raw table (a file that changed, a
    # reload, a new snapshot); NULL while its rows are there. Append staging rebuilds a
    # staged table one of whose loads was replaced.
    "replaced_at": "timestamp",
})

QUARANTINE_SCHEMA = ibis.schema({
    "source": "string",
    "load_id": "string",
    "source_file": "string",
    "source_row": "int64",
    "reason": "string",
    "detail": "string",
    "quarantined_at": "timestamp",
    "stage": "string",  # load (the file could not be read) or stage (a value was wrong)
    # stage rows: the key of the record the row is a version of (NULL when it has none), so
    # that a later version staged incrementally replaces it as a full staging would
    "record_id": "string",
})

#: Lineage columns every raw table carries, in this order, after the source's own columns.
LINEAGE = pa.schema(list(zip(LINEAGE_COLUMNS, (  # _load_id, _loaded_at, _source_file, _source_row
    pa.string(), pa.timestamp("us"), pa.string(), pa.int64()), strict=True)))



def new_load_id(now: datetime | None = None) -> str:
    """Sortable and unique: ``20261123T061502123456-1a2b3c4d``."""
    return f"{(now or utcnow()).strftime('%Y%m%dT%H%M%S%f')}-{secrets.token_hex(4)}"


@dataclass(frozen=True)
class UnitRecord:
    """The last committed load of one unit (a file, or a database table)."""

    load_id: str
    fingerprint: str | None
    high_water_mark: str | None
    read_as: str | None = None


def ensure_tables(engine: Engine) -> None:
    if engine.exists(LOADS_TABLE):
        engine.add_missing_columns(LOADS_TABLE, LOADS_SCHEMA)  # a ledger of an older version
    else:
        engine.create_empty(LOADS_TABLE, LOADS_SCHEMA)
    engine.create_empty(QUARANTINE_TABLE, QUARANTINE_SCHEMA)


def _col(name: str) -> sge.Column:
    return sg.column(name, quoted=True)


def _source_is(source: str) -> sge.Expression:
    return sge.EQ(this=_col("source"), expression=sge.convert(source))


def recover(engine: Engine, source: str, raw_table: str) -> int:
    """Delete raw rows written by loads that never committed their ledger row.

    Returns how many rows were removed.
    """
    if not engine.exists(raw_table):
        return 0
    known = (
        sg.select(_col("load_id"))
        .from_(sg.table(LOADS_TABLE, quoted=True))
        .where(_source_is(source))
    )
    orphan = sge.Not(this=sge.In(this=_col("_load_id"), query=known.subquery()))
    count = sg.select(sge.Count(this=sge.Star())).from_(sg.table(raw_table, quoted=True))
    removed = int(engine.execute(count.where(orphan))[0][0])
    if removed:
        engine.execute(sge.delete(sg.table(raw_table, quoted=True), where=orphan))
    return removed


def last_units(engine: Engine, source: str) -> dict[str, tuple[UnitRecord, list[str]]]:
    """For each unit of ``source``: its latest committed load, and every load id it had."""
    table = engine.table(LOADS_TABLE)
    rows = engine.to_arrow(
        table.filter(table.source == source)
        .select("source_file", "load_id", "fingerprint", "high_water_mark", "read_as")
        .order_by("load_id")
    ).to_pylist()
    units: dict[str, tuple[UnitRecord, list[str]]] = {}
    for row in rows:  # one row per past load, not per data row
        history = units.get(row["source_file"], (None, []))[1]
        history.append(row["load_id"])
        record = UnitRecord(row["load_id"], row["fingerprint"], row["high_water_mark"],
                            row["read_as"])
        units[row["source_file"]] = (record, history)
    return units


def live_loads(engine: Engine, source: str) -> dict[str, datetime]:
    """The committed loads of ``source`` whose rows are in its raw table, oldest first:
    load id -> when it started (its rows' ``_loaded_at``)."""
    if not engine.exists(LOADS_TABLE):
        return {}
    table = engine.table(LOADS_TABLE)
    mine = table.filter(table.source == source)
    if "replaced_at" in table.columns:  # a ledger older than the column: not added yet
        mine = mine.filter(mine.replaced_at.isnull())
    rows = engine.to_arrow(mine.select("load_id", "started_at").order_by("load_id"))
    return dict(zip(rows.column(0).to_pylist(), rows.column(1).to_pylist(), strict=True))


def record_load(engine: Engine, *, load_id: str, run_id: str, source: str, source_file: str,
                fingerprint: str | None, size_bytes: int | None, rows: int,
                high_water_mark: str | None, started_at: datetime,
                read_as: str | None = None) -> None:
    row = {
        "load_id": load_id, "run_id": run_id, "source": source, "source_file": source_file,
        "fingerprint": fingerprint, "size_bytes": size_bytes, "rows": rows,
        "high_water_mark": high_water_mark, "started_at": started_at, "finished_at": utcnow(),
        "read_as": read_as,
    }
    data = pa.Table.from_pylist([row], schema=LOADS_SCHEMA.to_pyarrow())
    engine.append_arrow(LOADS_TABLE, data.to_reader())


def write_quarantine(engine: Engine, rows: list[dict]) -> None:
    """Append quarantine rows (``source, load_id, source_file, source_row, reason, detail``)."""
    if not rows:
        return
    now = utcnow()
    if engine.exists(QUARANTINE_TABLE):  # made before the stage column existed
        engine.add_missing_columns(QUARANTINE_TABLE, QUARANTINE_SCHEMA)
    data = pa.Table.from_pylist([{"stage": "load", **r, "quarantined_at": now} for r in rows],
                                schema=QUARANTINE_SCHEMA.to_pyarrow())
    engine.append_arrow(QUARANTINE_TABLE, data.to_reader())


def forget_loads(engine: Engine, source: str, raw_table: str, load_ids: list[str]) -> None:
    """Remove the raw and quarantine rows of earlier loads (a replaced file, a new snapshot).

    The ledger rows stay: they are the history of what was loaded when.
    """
    if not load_ids:
        return
    engine.delete_where_in(raw_table, "_load_id", load_ids)
    engine.execute(sge.update(
        sg.table(LOADS_TABLE, quoted=True), {"replaced_at": sge.convert(utcnow())},
        where=sge.and_(_source_is(source), _col("replaced_at").is_(sge.null()),
                       sge.In(this=_col("load_id"),
                              expressions=[sge.convert(i) for i in load_ids]))))
    if engine.exists(QUARANTINE_TABLE):
        ids = sge.In(this=_col("load_id"), expressions=[sge.convert(i) for i in load_ids])
        engine.execute(sge.delete(sg.table(QUARANTINE_TABLE, quoted=True),
                                  where=sge.and_(_source_is(source), ids)))
