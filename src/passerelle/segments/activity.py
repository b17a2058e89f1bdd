"""Person-level activity tables that event and order conditions read.

Attributing an event or an order to a person (``passerelle.identity.attribution``) joins the
events with the person map several times; a live count must not redo that for every
keystroke of the segment builder. The segments step therefore materialises, once a run,
three narrow tables that conditions filter directly:

- ``segment_events(person_id, event, at, properties)``: named events (track/page/screen),
  ``properties`` typed JSON so property filters do not re-validate the text each time;
- ``segment_orders(person_id, order_id, at)``: one row an order;
- ``segment_purchases(person_id, order_id, category, at)``: one row an (order, category).

Their narrowness (four columns, no joins left) and their order (by event or category, then
time) are what make a ten-condition count on a million profiles fast: a condition "event X
in the last 30 days" reads only the blocks whose min/max (DuckDB zone maps) can hold such
rows; on PostgreSQL an index on the same columns plays that part.

For event-driven refreshes, :func:`refresh_events` rebuilds ``segment_events`` after new
events were staged and appends to ``segment_event_arrivals(person_id, event, arrived_at)``
every person whose events changed; ``segment_activity_state(untracked_at)`` records the
last rebuild whose changes were not logged (one by `passerelle run`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir
import sqlglot as sg
import sqlglot.expressions as sge

from passerelle.engines.base import Engine
from passerelle.project.models import SourceConfig
from passerelle.runlog import utcnow
from passerelle.segments.kinds import SegmentError

EVENTS = "segment_events"
ORDERS = "segment_orders"
PURCHASES = "segment_purchases"
# Event-driven refresh: who gained or lost events, and when the log was last incomplete.
ARRIVALS = "segment_event_arrivals"
STATE = "segment_activity_state"
ARRIVALS_SCHEMA = {"person_id": dt.string, "event": dt.string, "arrived_at": dt.timestamp}
STATE_SCHEMA = {"untracked_at": dt.timestamp}
_EVENTS_NEXT, _CHANGED = "_segment_events_next", "_segment_events_changed"
ACTIVITY_SCHEMAS = {
    EVENTS: {"person_id": dt.string, "event": dt.string, "at": dt.timestamp,
             "properties": dt.json},
    ORDERS: {"person_id": dt.string, "order_id": dt.string, "at": dt.timestamp},
    PURCHASES: {"person_id": dt.string, "order_id": dt.string, "category": dt.string,
                "at": dt.timestamp},
}


def prepare_activity(engine: Engine, sources: Mapping[str, SourceConfig],
                     now: datetime | None = None) -> dict[str, int]:
    """(Re)build the three activity tables from the ``events``, ``orders`` and
    ``order_lines`` views; a missing view gives an empty table. Returns row counts.

    A rebuild whose events differ from the previous ones (another count or time span) marks
    the event arrivals as untracked up to ``now``: segments evaluated before then refresh in
    full, not incrementally (see :func:`refresh_events`)."""
    from passerelle.identity.attribution import person_order_lines, person_orders

    now = now or utcnow()
    built: dict[str, int] = {}
    if engine.exists("events") and engine.exists("person_map"):
        before = _events_fingerprint(engine)
        engine.replace_table(EVENTS, _person_events(engine, sources))
        _as_json(engine, EVENTS, "properties")
        if _events_fingerprint(engine) != before:
            _untracked(engine, now)
    if engine.exists("orders") and engine.exists("person_map"):
        o = person_orders(engine, sources)
        engine.replace_table(ORDERS, o.select(
            person_id=o.person_id, order_id=o.order_id.cast(dt.string),
            at=o.ordered_at.cast(dt.timestamp)).distinct().order_by("at"))
        if engine.exists("order_lines"):
            ln = person_order_lines(engine, sources)
            ln = ln.filter(ln.category.notnull())
            engine.replace_table(PURCHASES, ln.select(
                person_id=ln.person_id, order_id=ln.order_id.cast(dt.string),
                category=ln.category.cast(dt.string),
                at=ln.ordered_at.cast(dt.timestamp)).distinct().order_by(["category", "at"]))
    for name, schema in ACTIVITY_SCHEMAS.items():
        engine.create_empty(name, ibis.schema(schema))
        built[name] = engine.count(name)
        _index(engine, name, _INDEX_COLUMNS[name])
    return built


def _person_events(engine: Engine, sources: Mapping[str, SourceConfig]) -> ir.Table:
    from passerelle.identity.attribution import person_events

    e = person_events(engine, sources)
    e = e.filter(e.event.notnull())
    return e.select(person_id=e.person_id, event=e.event, at=e.timestamp.cast(dt.timestamp),
                    properties=e.properties.cast(dt.string)).order_by(["event", "at"])


def refresh_events(engine: Engine, sources: Mapping[str, SourceConfig],
                   now: datetime) -> int:
    """Rebuild ``segment_events`` after new events were staged and log who changed.

    The rebuilt table is compared with the previous one row for row (a multiset
    difference both ways, so late, corrected, deduplicated or re-attributed events all
    count); every ``(person_id, event)`` that gained or lost a row is appended to
    ``segment_event_arrivals`` with ``arrived_at = now``. Returns the number of such pairs.
    Orders are left alone: they change with ``passerelle run``.
    """
    if not (engine.exists("events") and engine.exists("person_map")):
        raise SegmentError("There are no attributed events yet.",
                           "Run `passerelle run` once (identity attributes events).")
    ensure_tracking(engine)
    if not engine.exists(EVENTS):
        prepare_activity(engine, sources, now)
        return 0
    engine.replace_table(_EVENTS_NEXT, _person_events(engine, sources))
    old, new = engine.table(EVENTS), engine.table(_EVENTS_NEXT)

    def rows(t: ir.Table) -> ir.Table:
        return t.select("person_id", "event", "at", properties=t.properties.cast(dt.string))

    added = rows(new).difference(rows(old), distinct=False)
    removed = rows(old).difference(rows(new), distinct=False)
    changed = added.union(removed, distinct=False).select("person_id", "event").distinct()
    engine.replace_table(_CHANGED, changed.select(
        "person_id", "event", arrived_at=ibis.literal(now, type=dt.timestamp)))
    n = engine.count(_CHANGED)
    with engine.transaction():
        engine.con.insert(ARRIVALS, engine.table(_CHANGED))
        engine.drop(EVENTS)
        engine.rename(_EVENTS_NEXT, EVENTS)
    engine.drop(_CHANGED)
    _as_json(engine, EVENTS, "properties")
    _index(engine, EVENTS, _INDEX_COLUMNS[EVENTS])
    return n


def ensure_tracking(engine: Engine) -> None:
    engine.create_empty(ARRIVALS, ibis.schema(ARRIVALS_SCHEMA))
    engine.create_empty(STATE, ibis.schema(STATE_SCHEMA))


def untracked_since(engine: Engine) -> datetime | None:
    """The last time ``segment_events`` changed without its changes being logged (a full
    rebuild by `passerelle run`): memberships evaluated before then cannot be brought up
    to date from the arrivals alone."""
    if not engine.exists(STATE):
        return None
    rows = engine.to_arrow(engine.table(STATE)).to_pylist()
    return rows[0]["untracked_at"] if rows else None


def prune_arrivals(engine: Engine, up_to: datetime) -> None:
    """Forget arrivals no segment needs any more (all evaluated at or after ``up_to``)."""
    if engine.exists(ARRIVALS):
        engine.execute(sge.delete(sg.table(ARRIVALS, quoted=True),
                                  where=sg.column("arrived_at", quoted=True) <= sge.Cast(
                                      this=sge.convert(up_to.isoformat(sep=" ")),
                                      to=sge.DataType.build("timestamp"))))


def _untracked(engine: Engine, now: datetime) -> None:
    import pyarrow as pa

    ensure_tracking(engine)
    table = pa.table({"untracked_at": [now]}, schema=ibis.schema(STATE_SCHEMA).to_pyarrow())
    with engine.transaction():
        engine.execute(sge.delete(sg.table(STATE, quoted=True)))
        engine.append_arrow(STATE, table.to_reader())
    prune_arrivals(engine, now)


def _events_fingerprint(engine: Engine) -> tuple | None:
    if not engine.exists(EVENTS):
        return None
    t = engine.table(EVENTS)
    row = engine.to_arrow(t.aggregate(n=t.count(), first=t["at"].min(),
                                      last=t["at"].max())).to_pylist()[0]
    return tuple(row.values())


_INDEX_COLUMNS = {EVENTS: ("event", "at"), ORDERS: ("at",), PURCHASES: ("category", "at")}


def _index(engine: Engine, table: str, columns: tuple[str, ...]) -> None:
    """An index on the filtered columns where the engine keeps indexes (not DuckDB: its
    zone maps over the sorted table do better, and ART indexes slow bulk writes)."""
    if engine.capabilities.scans_arrow:  # the embedded columnar engine
        return
    engine.execute(sge.Create(
        this=sge.Index(this=sg.to_identifier(f"{table}_idx", quoted=True),
                       table=sg.table(table, quoted=True),
                       params=sge.IndexParameters(columns=[
                           sge.Ordered(this=sg.column(c, quoted=True)) for c in columns])),
        kind="INDEX", exists=True))


def _as_json(engine: Engine, table: str, column: str) -> None:
    """Retype a text column as JSON in place (Ibis reads JSON back as text when it
    materialises a query, so the type is set after)."""
    col = sg.to_identifier(column, quoted=True)
    engine.execute(sge.Alter(this=sg.table(table, quoted=True), kind="TABLE", actions=[
        sge.AlterColumn(this=col, dtype=sge.DataType.build("json"),
                        using=sge.Cast(this=sg.column(column, quoted=True),
                                       to=sge.DataType.build("json")))]))
