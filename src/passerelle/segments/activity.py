"""Person-level activity tables that event and order conditions read.

Attributing an event or an order to a person (``passerelle.traits.persons``) joins the
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
"""

from __future__ import annotations

from collections.abc import Mapping

import ibis.expr.datatypes as dt
import sqlglot as sg
import sqlglot.expressions as sge

from passerelle.engines.base import Engine
from passerelle.project.models import SourceConfig

EVENTS = "segment_events"
ORDERS = "segment_orders"
PURCHASES = "segment_purchases"
ACTIVITY_SCHEMAS = {
    EVENTS: {"person_id": dt.string, "event": dt.string, "at": dt.timestamp,
             "properties": dt.json},
    ORDERS: {"person_id": dt.string, "order_id": dt.string, "at": dt.timestamp},
    PURCHASES: {"person_id": dt.string, "order_id": dt.string, "category": dt.string,
                "at": dt.timestamp},
}


def prepare_activity(engine: Engine, sources: Mapping[str, SourceConfig]) -> dict[str, int]:
    """(Re)build the three activity tables from the ``events``, ``orders`` and
    ``order_lines`` views; a missing view gives an empty table. Returns row counts."""
    import ibis

    from passerelle.traits.persons import person_events, person_order_lines, person_orders

    built: dict[str, int] = {}
    if engine.exists("events") and engine.exists("person_map"):
        e = person_events(engine, sources)
        e = e.filter(e.event.notnull())
        engine.replace_table(EVENTS, e.select(
            person_id=e.person_id, event=e.event, at=e.timestamp.cast(dt.timestamp),
            properties=e.properties.cast(dt.string)).order_by(["event", "at"]))
        _as_json(engine, EVENTS, "properties")
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
