"""The trait tables: ``traits`` (current values, long), ``traits_history`` (changes only) and
``trait_definitions`` (what each trait means, who owns it, when it was last computed).

Long format, one row a (person, trait): adding a trait never alters a table, a trait's type
is one of three typed value columns, and "which traits changed" is one filter. See
docs/traits.md for the long-vs-wide argument.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir
import pyarrow as pa

from passerelle.engines.base import Engine

TRAITS = "traits"
TRAITS_HISTORY = "traits_history"
TRAIT_DEFINITIONS = "trait_definitions"
TRAITS_NEXT = "_traits_next"
TRAITS_BACKUP = "_traits_previous"  # the old ``traits`` during the swap, never longer

VALUE_SCHEMA = {"person_id": dt.string, "trait": dt.string, "value_number": dt.float64,
                "value_text": dt.string, "value_date": dt.date}
TRAITS_SCHEMA = ibis.schema({**VALUE_SCHEMA, "computed_at": dt.timestamp, "run_id": dt.string})
HISTORY_SCHEMA = ibis.schema({**VALUE_SCHEMA, "valid_from": dt.timestamp, "run_id": dt.string})
DEFINITIONS_SCHEMA = pa.schema([
    ("name", pa.string()), ("type", pa.string()), ("entity", pa.string()),
    ("function", pa.string()), ("builtin", pa.string()), ("description", pa.string()),
    ("owner", pa.string()), ("outputs", pa.string()), ("definition", pa.string()),
    ("file", pa.string()), ("line", pa.int64()), ("model_fit", pa.string()),
    ("status", pa.string()), ("message", pa.string()), ("persons", pa.int64()),
    ("computed_at", pa.timestamp("us")), ("run_id", pa.string()),
])


def recover(engine: Engine) -> bool:
    """Put ``traits`` back if a swap was interrupted where the engine could not roll it back.

    Both DuckDB and PostgreSQL run the swap in one transaction (a crash rolls it back), so
    this only matters for an engine without transactional DDL, or a swap done by hand.
    Returns True when the backup was restored.
    """
    if engine.exists(TRAITS_BACKUP):
        if not engine.exists(TRAITS):
            engine.rename(TRAITS_BACKUP, TRAITS)
            return True
        engine.drop(TRAITS_BACKUP)
    return False


def start_next(engine: Engine) -> None:
    """An empty work table that this run's values are inserted into, trait by trait."""
    recover(engine)
    engine.drop(TRAITS_NEXT)
    engine.con.create_table(TRAITS_NEXT, schema=TRAITS_SCHEMA)


def insert_values(engine: Engine, rows: ir.Table, now: datetime, run_id: str) -> None:
    stamped = rows.mutate(computed_at=ibis.literal(now, type=dt.timestamp),
                          run_id=ibis.literal(run_id, type=dt.string))
    engine.con.insert(TRAITS_NEXT, stamped.select(*TRAITS_SCHEMA.names))


def keep_previous(engine: Engine, names: Sequence[str]) -> None:
    """Carry the last values of ``names`` over (their computation failed this run)."""
    if not names or not engine.exists(TRAITS):
        return
    old = engine.table(TRAITS)
    engine.con.insert(TRAITS_NEXT, old.filter(old.trait.isin(list(names)))
                      .select(*TRAITS_SCHEMA.names))


def publish(engine: Engine, tracked: Sequence[str], computed: Sequence[str], now: datetime,
            run_id: str) -> int:
    """Append changed values of the ``tracked`` traits to the history, then make the work
    table the current ``traits``. Returns the number of history rows appended.

    A value that disappeared (a person no longer has it) is recorded as a row whose three
    values are NULL, so the history says when it stopped. Only traits ``computed`` this run
    can disappear: a trait whose definition was removed leaves its history untouched.
    """
    engine.create_empty(TRAITS_HISTORY, HISTORY_SCHEMA)
    engine.create_empty(TRAITS, TRAITS_SCHEMA)
    current = engine.table(TRAITS)
    had = {r["trait"] for r in engine.to_arrow(current.select("trait").distinct()).to_pylist()}
    # a trait without any previous value: all its values are new, no comparison needed
    fresh = [t for t in tracked if t not in had]
    compared = [t for t in tracked if t in had]
    stamp = {"valid_from": ibis.literal(now, type=dt.timestamp),
             "run_id": ibis.literal(run_id, type=dt.string)}
    parts: list[ir.Table] = []
    if fresh:
        new = engine.table(TRAITS_NEXT)
        parts.append(new.filter(new.trait.isin(fresh)).select(*VALUE_SCHEMA, **stamp))
    if compared:
        parts.append(_changes(engine, compared, computed, stamp))
    rows = 0
    with engine.transaction():  # history and swap commit together or not at all
        for part in parts:
            rows += _insert_counted(engine, TRAITS_HISTORY, part)
        swap(engine)
    return rows


def _changes(engine: Engine, tracked: Sequence[str], computed: Sequence[str],
             stamp: dict[str, ir.Value]) -> ir.Table:
    """Values of ``tracked`` traits that differ from the current ones, or disappeared."""
    new, old = engine.table(TRAITS_NEXT), engine.table(TRAITS)
    new = new.filter(new.trait.isin(list(tracked)))
    old = old.filter(old.trait.isin([t for t in tracked if t in computed]))
    joined = new.outer_join(old, [new.person_id == old.person_id, new.trait == old.trait],
                            rname="{name}_old")
    same = (joined.value_number.identical_to(joined.value_number_old)
            & joined.value_text.identical_to(joined.value_text_old)
            & joined.value_date.identical_to(joined.value_date_old))
    return joined.filter(~same).select(
        person_id=ibis.coalesce(joined.person_id, joined.person_id_old),
        trait=ibis.coalesce(joined.trait, joined.trait_old),
        value_number=joined.value_number, value_text=joined.value_text,
        value_date=joined.value_date, **stamp)


def _insert_counted(engine: Engine, table: str, rows: ir.Table) -> int:
    before = engine.count(table)
    engine.con.insert(table, rows)
    return engine.count(table) - before


def swap(engine: Engine) -> None:
    """Make the work table the current ``traits``: old -> backup, work -> traits, drop backup.

    Call it inside a transaction: DuckDB and PostgreSQL both roll renames back, so a failure
    (or a crash) at any step leaves the previous ``traits`` readable under its own name. On
    an engine that could not roll back, the backup is what :func:`recover` restores.
    """
    engine.rename(TRAITS, TRAITS_BACKUP)
    engine.rename(TRAITS_NEXT, TRAITS)
    engine.drop(TRAITS_BACKUP)


def write_definitions(engine: Engine, rows: list[dict]) -> None:
    """Replace ``trait_definitions`` with one row per trait of this run."""
    for row in rows:
        for key in ("definition", "model_fit"):
            if row.get(key) is not None and not isinstance(row[key], str):
                row[key] = json.dumps(row[key], sort_keys=True, default=str)
    table = pa.Table.from_pylist(rows, schema=DEFINITIONS_SCHEMA)
    with engine.transaction():
        engine.drop(TRAIT_DEFINITIONS)
        engine.append_arrow(TRAIT_DEFINITIONS,
                            pa.RecordBatchReader.from_batches(table.schema, table.to_batches()))


def read_definitions(engine: Engine) -> dict[str, dict]:
    """The ``trait_definitions`` rows of the last run, by trait name."""
    if not engine.exists(TRAIT_DEFINITIONS):
        return {}
    rows = engine.to_arrow(engine.table(TRAIT_DEFINITIONS)).to_pylist()
    return {r["name"]: r for r in rows}


def changed_since(engine: Engine, since: datetime | None = None, *,
                  days: int | None = None, now: datetime | None = None) -> ir.Table:
    """History rows recorded since ``since`` (or in the last ``days`` before ``now``):
    "which traits changed in the last 7 days" is ``changed_since(engine, days=7, now=...)``."""
    if since is None:
        if days is None or now is None:
            raise ValueError("give `since`, or `days` and `now`")
        since = now - timedelta(days=days)
    history = engine.table(TRAITS_HISTORY)
    return history.filter(history.valid_from >= ibis.literal(since, type=dt.timestamp))
