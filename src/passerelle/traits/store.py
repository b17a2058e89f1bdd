"""The trait tables: ``traits`` (current values, long), ``traits_history`` (every value a
person has had, a view) and ``trait_definitions`` (what each trait means, who owns it, when it
was last computed).

Long format, one row a (person, trait): adding a trait never alters a table, a trait's type
is one of three typed value columns, and "which traits changed" is one filter. See
docs/traits.md for the long-vs-wide argument.

The history is kept without a second copy of the current values: ``traits`` says since when
(``valid_from``, ``valid_run_id``) each tracked value has held, and ``traits_past`` keeps the
values that were replaced or removed (and a row of NULLs when a value disappeared). The
``traits_history`` view is their union: one row each time a value started, as if every
version had been appended to one table, without writing every value twice on a trait's first
computation.
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
TRAITS_HISTORY = "traits_history"  # a view: traits_past + the current tracked values
TRAITS_PAST = "traits_past"
TRAIT_DEFINITIONS = "trait_definitions"
TRAITS_NEXT = "_traits_next"
TRAITS_BACKUP = "_traits_previous"  # the old ``traits`` during the swap, never longer
TRAITS_LEGACY = "_traits_history_legacy"  # a pre-view history table while it is converted

VALUE_SCHEMA = {"person_id": dt.string, "trait": dt.string, "value_number": dt.float64,
                "value_text": dt.string, "value_date": dt.date}
VALUES = list(VALUE_SCHEMA)
# valid_from / valid_run_id: when the value started (NULL for traits kept out of history)
TRAITS_SCHEMA = ibis.schema({**VALUE_SCHEMA, "computed_at": dt.timestamp, "run_id": dt.string,
                             "valid_from": dt.timestamp, "valid_run_id": dt.string})
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


def start_next(engine: Engine) -> set[str]:
    """An empty work table that this run's values are inserted into, trait by trait.
    Returns the traits that have current values (the ones whose new values are compared)."""
    recover(engine)
    upgrade(engine)
    engine.drop(TRAITS_NEXT)
    engine.con.create_table(TRAITS_NEXT, schema=TRAITS_SCHEMA)
    if not engine.exists(TRAITS):
        return set()
    current = engine.table(TRAITS)
    return {r["trait"] for r in engine.to_arrow(current.select("trait").distinct()).to_pylist()}


def insert_values(engine: Engine, rows: ir.Table, now: datetime, run_id: str, *,
                  tracked: bool, compare: bool) -> None:
    """Add a trait's values to the work table. A ``tracked`` value keeps the start of the
    current one when it is the same (``compare``: the trait has current values), else it
    starts now."""
    stamp = {"computed_at": ibis.literal(now, type=dt.timestamp),
             "run_id": ibis.literal(run_id, type=dt.string)}
    started = {"valid_from": ibis.literal(now if tracked else None, type=dt.timestamp),
               "valid_run_id": ibis.literal(run_id if tracked else None, type=dt.string)}
    if tracked and compare:
        old = engine.table(TRAITS)
        old = old.select(*(old[c].name(f"{c}_old") for c in (*VALUES, "valid_from",
                                                             "valid_run_id")))
        joined = rows.left_join(old, [rows.person_id == old.person_id_old,
                                      rows.trait == old.trait_old])
        same = (_same_values(joined, "_old") & joined.valid_from_old.notnull())
        started = {"valid_from": ibis.ifelse(same, joined.valid_from_old, started["valid_from"]),
                   "valid_run_id": ibis.ifelse(same, joined.valid_run_id_old,
                                               started["valid_run_id"])}
        rows = joined.select(*VALUES, **stamp, **started)
    else:
        rows = rows.select(*VALUES, **stamp, **started)
    engine.con.insert(TRAITS_NEXT, rows.select(*TRAITS_SCHEMA.names))


def _same_values(joined: ir.Table, suffix: str) -> ir.BooleanValue:
    return (joined.value_number.identical_to(joined[f"value_number{suffix}"])
            & joined.value_text.identical_to(joined[f"value_text{suffix}"])
            & joined.value_date.identical_to(joined[f"value_date{suffix}"]))


def keep_previous(engine: Engine, names: Sequence[str]) -> None:
    """Carry the last values of ``names`` over (their computation failed, or their inputs
    did not change, this run)."""
    if not names or not engine.exists(TRAITS):
        return
    old = engine.table(TRAITS)
    engine.con.insert(TRAITS_NEXT, old.filter(old.trait.isin(list(names)))
                      .select(*TRAITS_SCHEMA.names))


def publish(engine: Engine, tracked: Sequence[str], now: datetime, run_id: str) -> int:
    """Move the values that stopped holding to ``traits_past``, then make the work table the
    current ``traits``. Returns the number of history rows this run added: values that
    started now, and values of the ``tracked`` traits computed this run that disappeared.

    A value that disappeared (a person no longer has it) gets a row whose three values are
    NULL, so the history says when it stopped. A trait whose definition was removed, or
    that is no longer tracked, leaves its values in the history, without such a row.
    """
    engine.create_empty(TRAITS, TRAITS_SCHEMA)
    engine.create_empty(TRAITS_PAST, HISTORY_SCHEMA)
    new, old = engine.table(TRAITS_NEXT), engine.table(TRAITS)
    # a tracked value whose start is not carried over by the work table stopped holding
    ended = old.filter(old.valid_from.notnull()).anti_join(
        new, [old.person_id == new.person_id, old.trait == new.trait,
              old.valid_run_id == new.valid_run_id])
    ended = ended.select(*VALUES, valid_from=ended.valid_from, run_id=ended.valid_run_id)
    gone = old.filter(old.trait.isin(list(tracked))).anti_join(
        new, [old.person_id == new.person_id, old.trait == new.trait])
    gone = gone.select("person_id", "trait", value_number=ibis.null(dt.float64),
                       value_text=ibis.null(dt.string), value_date=ibis.null(dt.date),
                       valid_from=ibis.literal(now, type=dt.timestamp),
                       run_id=ibis.literal(run_id, type=dt.string))
    started = engine.to_arrow(new.filter(new.valid_run_id == ibis.literal(run_id)).count())
    with engine.transaction():  # history and swap commit together or not at all
        # PostgreSQL binds a view to its tables: the swap would carry it to the backup
        engine.con.drop_view(TRAITS_HISTORY, force=True)
        engine.con.insert(TRAITS_PAST, ended)
        disappeared = _insert_counted(engine, TRAITS_PAST, gone) if tracked else 0
        swap(engine)
        create_history_view(engine)
    return int(started.as_py()) + disappeared


def create_history_view(engine: Engine) -> None:
    """``traits_history``: every version of every tracked value, with when it started."""
    past, current = engine.table(TRAITS_PAST), engine.table(TRAITS)
    current = current.filter(current.valid_from.notnull()).select(
        *VALUES, valid_from=current.valid_from, run_id=current.valid_run_id)
    engine.con.create_view(TRAITS_HISTORY, past.select(*HISTORY_SCHEMA.names)
                           .union(current), overwrite=True)


def upgrade(engine: Engine) -> bool:
    """Convert a warehouse written before the history became a view (``traits`` without
    ``valid_from``, ``traits_history`` a table holding every version, the current ones
    included): the latest version of each current value becomes its start in ``traits``,
    the others go to ``traits_past``. Nothing is lost; returns True when it converted."""
    if not engine.exists(TRAITS) or "valid_from" in engine.table(TRAITS).columns:
        return False
    with engine.transaction():
        if TRAITS_HISTORY in engine.base_tables():
            engine.rename(TRAITS_HISTORY, TRAITS_LEGACY)
        engine.create_empty(TRAITS_LEGACY, HISTORY_SCHEMA)
        history, current = engine.table(TRAITS_LEGACY), engine.table(TRAITS)
        latest = history.mutate(_n=ibis.row_number().over(
            group_by=[history.person_id, history.trait],
            order_by=[history.valid_from.desc(), history.run_id.desc()]))
        latest = latest.filter(latest._n == 0).drop("_n")
        joined = current.left_join(latest, [current.person_id == latest.person_id,
                                            current.trait == latest.trait], rname="{name}_h")
        holds = _same_values(joined, "_h")
        engine.con.create_table(TRAITS_NEXT, joined.select(
            *VALUES, "computed_at", "run_id",
            valid_from=ibis.ifelse(holds, joined.valid_from, ibis.null(dt.timestamp)),
            valid_run_id=ibis.ifelse(holds, joined.run_id_h, ibis.null(dt.string)),
        ).select(*TRAITS_SCHEMA.names), overwrite=True)
        new = engine.table(TRAITS_NEXT)
        past = history.anti_join(new, [history.person_id == new.person_id,
                                       history.trait == new.trait,
                                       history.valid_from == new.valid_from,
                                       history.run_id == new.valid_run_id])
        engine.create_empty(TRAITS_PAST, HISTORY_SCHEMA)
        engine.con.insert(TRAITS_PAST, past.select(*HISTORY_SCHEMA.names))
        engine.drop(TRAITS_LEGACY)
        swap(engine)
        create_history_view(engine)
    return True


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
