"""The trait tables: ``traits`` (current values, long), ``traits_history`` (every value a
person has had, a view) and ``trait_definitions`` (what each trait means, who owns it, when it
was last computed).

Long format, one row a (person, trait): adding a trait never alters a table, a trait's type
is one of three typed value columns, and "which traits changed" is one filter. See
docs/traits.md for the long-vs-wide argument.

The history is kept without a second copy of the current values: ``traits`` says since when
(``valid_from``, ``valid_run``) each tracked value has held, and ``traits_past`` keeps the
values that were replaced or removed (and a row of NULLs when a value disappeared). The
``traits_history`` view is their union: one row each time a value started, as if every
version had been appended to one table, without writing every value twice on a trait's first
computation.

Runs are numbered in ``trait_runs`` (``run``, ``run_id``, ``computed_at``) and ``traits``
holds the numbers: a constant text column costs DuckDB more to write than the values
themselves (measured: 0.5 s per 4M rows for a run id, 0.07 s for a number or a timestamp).
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
from passerelle.tables import TRAIT_DEFINITIONS_TABLE

TRAITS = "traits"
TRAITS_HISTORY = "traits_history"  # a view: traits_past + the current tracked values
TRAITS_PAST = "traits_past"
TRAIT_RUNS = "trait_runs"
TRAIT_DEFINITIONS = TRAIT_DEFINITIONS_TABLE
TRAITS_NEXT = "_traits_next"
TRAITS_BACKUP = "_traits_previous"  # the old ``traits`` during the swap, never longer
TRAITS_LEGACY = "_traits_history_legacy"  # a pre-view history table while it is converted

VALUE_SCHEMA = {"person_id": dt.string, "trait": dt.string, "value_number": dt.float64,
                "value_text": dt.string, "value_date": dt.date}
VALUES = list(VALUE_SCHEMA)
# computed_at / run: the run that computed the value; valid_from / valid_run: the run since
# which it holds (NULL for traits kept out of the history). Runs by number: see TRAIT_RUNS.
TRAITS_SCHEMA = ibis.schema({**VALUE_SCHEMA, "computed_at": dt.timestamp, "run": dt.int64,
                             "valid_from": dt.timestamp, "valid_run": dt.int64})
HISTORY_SCHEMA = ibis.schema({**VALUE_SCHEMA, "valid_from": dt.timestamp, "run_id": dt.string})
RUNS_SCHEMA = ibis.schema({"run": dt.int64, "run_id": dt.string, "computed_at": dt.timestamp})
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


def start_next(engine: Engine) -> tuple[int, set[str]]:
    """An empty work table that this run's values are inserted into, trait by trait.
    Returns this run's number and the traits that have current values (the ones whose new
    values are compared)."""
    recover(engine)
    upgrade(engine)
    engine.drop(TRAITS_NEXT)
    engine.con.create_table(TRAITS_NEXT, schema=TRAITS_SCHEMA)
    engine.create_empty(TRAIT_RUNS, RUNS_SCHEMA)
    runs = engine.table(TRAIT_RUNS)
    number = int(engine.to_arrow(runs.run.max()).as_py() or 0) + 1
    if not engine.exists(TRAITS):
        return number, set()
    current = engine.table(TRAITS)
    had = {r["trait"] for r in engine.to_arrow(current.select("trait").distinct()).to_pylist()}
    return number, had


def insert_values(engine: Engine, rows: ir.Table, now: datetime, run: int, *,
                  tracked: bool, compare: bool) -> None:
    """Add a trait's values to the work table. A ``tracked`` value keeps the start of the
    current one when it is the same (``compare``: the trait has current values), else it
    starts now."""
    stamp = {"computed_at": ibis.literal(now, type=dt.timestamp),
             "run": ibis.literal(run, type=dt.int64)}
    started = {"valid_from": ibis.literal(now if tracked else None, type=dt.timestamp),
               "valid_run": ibis.literal(run if tracked else None, type=dt.int64)}
    if tracked and compare:
        old = engine.table(TRAITS)
        old = old.select(*(old[c].name(f"{c}_old") for c in (*VALUES, "valid_from",
                                                             "valid_run")))
        joined = rows.left_join(old, [rows.person_id == old.person_id_old,
                                      rows.trait == old.trait_old])
        same = (_same_values(joined, "_old") & joined.valid_from_old.notnull())
        started = {key: ibis.ifelse(same, joined[f"{key}_old"], value)
                   for key, value in started.items()}
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


def publish(engine: Engine, tracked: Sequence[str], now: datetime, run: int,
            run_id: str) -> int:
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
    # one pass over the current values: those whose start the work table does not carry
    # stopped holding (changed, gone, or no longer tracked)
    keys = new.select(_person=new.person_id, _trait=new.trait, _valid_run=new.valid_run)
    paired = old.left_join(keys, [old.person_id == keys._person, old.trait == keys._trait])
    stopped = paired.filter(paired._person.isnull()
                            | (paired.valid_from.notnull()
                               & ~paired.valid_run.identical_to(paired._valid_run)))
    runs = engine.table(TRAIT_RUNS)
    runs = runs.select(_run=runs.run, _run_id=runs.run_id)
    stopped = stopped.left_join(runs, stopped.valid_run == runs._run)
    stopped = engine.scratch_table("_traits_stopped", stopped.select(
        *VALUES, "valid_from", run_id=stopped._run_id, gone=stopped._person.isnull()))
    moved = stopped.filter(stopped.valid_from.notnull()).select(*HISTORY_SCHEMA.names).cast(
        HISTORY_SCHEMA)
    if tracked:
        gone = stopped.filter(stopped.gone & stopped.trait.isin(list(tracked))).select(
            "person_id", "trait", value_number=ibis.null(dt.float64),
            value_text=ibis.null(dt.string), value_date=ibis.null(dt.date),
            valid_from=ibis.literal(now, type=dt.timestamp),
            run_id=ibis.literal(run_id, type=dt.string)).cast(HISTORY_SCHEMA)
        moved = moved.union(gone, distinct=False)
        disappeared = int(engine.to_arrow(gone.count()).as_py())
    else:
        disappeared = 0
    started = engine.to_arrow(new.filter(new.valid_run == ibis.literal(run)).count()).as_py()
    this_run = ibis.memtable({"run": [run], "run_id": [run_id], "computed_at": [now]},
                             schema=RUNS_SCHEMA)
    try:
        with engine.transaction():  # history and swap commit together or not at all
            # PostgreSQL binds a view to its tables: the swap would carry it to the backup
            engine.con.drop_view(TRAITS_HISTORY, force=True)
            engine.con.insert(TRAIT_RUNS, this_run)
            engine.con.insert(TRAITS_PAST, moved)
            swap(engine)
            create_history_view(engine)
    finally:
        engine.drop("_traits_stopped")
    return int(started) + disappeared


def create_history_view(engine: Engine) -> None:
    """``traits_history``: every version of every tracked value, with when it started."""
    past, current, runs = (engine.table(t) for t in (TRAITS_PAST, TRAITS, TRAIT_RUNS))
    current = current.filter(current.valid_run.notnull())
    current = current.join(runs, current.valid_run == runs.run).select(
        *VALUES, valid_from=current.valid_from, run_id=runs.run_id)
    engine.con.create_view(TRAITS_HISTORY, past.select(*HISTORY_SCHEMA.names).cast(
        HISTORY_SCHEMA).union(current.cast(HISTORY_SCHEMA), distinct=False), overwrite=True)


def upgrade(engine: Engine) -> bool:
    """Convert a warehouse written before the history became a view (``traits`` with a
    ``run_id`` and no ``valid_from``, ``traits_history`` a table holding every version, the
    current ones included): runs are numbered in ``trait_runs``, the latest version of each
    current value becomes its start in ``traits``, the others go to ``traits_past``.
    Nothing is lost; returns True when it converted."""
    if not engine.exists(TRAITS) or "valid_from" in engine.table(TRAITS).columns:
        return False
    with engine.transaction():
        if TRAITS_HISTORY in engine.base_tables():
            engine.rename(TRAITS_HISTORY, TRAITS_LEGACY)
        engine.create_empty(TRAITS_LEGACY, HISTORY_SCHEMA)
        history, current = engine.table(TRAITS_LEGACY), engine.table(TRAITS)
        seen = history.select("run_id", at=history.valid_from).union(
            current.select("run_id", at=current.computed_at))
        runs = seen.group_by("run_id").aggregate(computed_at=seen.at.min())
        runs = runs.mutate(run=ibis.row_number().over(
            order_by=[runs.computed_at, runs.run_id]) + 1)
        engine.drop(TRAIT_RUNS)
        engine.con.create_table(TRAIT_RUNS, runs.select(*RUNS_SCHEMA.names))
        runs = engine.table(TRAIT_RUNS)
        latest = history.mutate(_n=ibis.row_number().over(
            group_by=[history.person_id, history.trait],
            order_by=[history.valid_from.desc(), history.run_id.desc()]))
        latest = latest.filter(latest._n == 0)
        latest = latest.select(*(latest[c].name(f"{c}_h") for c in HISTORY_SCHEMA.names))
        joined = current.left_join(latest, [current.person_id == latest.person_id_h,
                                            current.trait == latest.trait_h])
        holds = _same_values(joined, "_h")
        started = joined.mutate(
            _start=ibis.ifelse(holds, joined.run_id_h, ibis.null(dt.string)),
            _from=ibis.ifelse(holds, joined.valid_from_h, ibis.null(dt.timestamp)))
        computing = runs.select(_computing=runs.run, _computing_id=runs.run_id)
        starting = runs.select(_starting=runs.run, _starting_id=runs.run_id)
        numbered = started.left_join(computing, started.run_id == computing._computing_id)
        numbered = numbered.left_join(starting, numbered._start == starting._starting_id)
        engine.con.create_table(TRAITS_NEXT, numbered.select(
            *VALUES, "computed_at", run=numbered._computing, valid_from=numbered._from,
            valid_run=numbered._starting).select(*TRAITS_SCHEMA.names), overwrite=True)
        # the versions that became current values stay out of traits_past
        held = joined.filter(holds)
        past = history.anti_join(held, [history.person_id == held.person_id_h,
                                        history.trait == held.trait_h,
                                        history.valid_from == held.valid_from_h,
                                        history.run_id == held.run_id_h])
        engine.create_empty(TRAITS_PAST, HISTORY_SCHEMA)
        engine.con.insert(TRAITS_PAST, past.select(*HISTORY_SCHEMA.names))
        engine.drop(TRAITS_LEGACY)
        swap(engine)
        create_history_view(engine)
    return True


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
