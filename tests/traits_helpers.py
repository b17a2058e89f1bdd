"""Builders for the trait tests: person_map, orders, order_lines, events and customer_records
tables made by hand (the identity and staging steps are not run)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pyarrow as pa

from passerelle.engines.base import Engine
from passerelle.model import ENTITIES, Kind
from passerelle.project.models import SourceConfig

_ARROW = {Kind.DATE: pa.date32(), Kind.TIMESTAMP: pa.timestamp("us"),
          Kind.DECIMAL: pa.decimal128(18, 2), Kind.INTEGER: pa.int64(),
          Kind.BOOLEAN: pa.bool_()}


def entity_schema(entity: str) -> pa.Schema:
    fields = [("_source", pa.string()), ("_record_id", pa.string())]
    fields += [(f.name, _ARROW.get(f.kind, pa.string())) for f in ENTITIES[entity].fields]
    return pa.schema(fields)


def put(engine: Engine, name: str, schema: pa.Schema, rows: list[dict[str, Any]]) -> None:
    def cast(value: Any, typ: pa.DataType) -> Any:
        if value is not None and pa.types.is_decimal(typ):
            return Decimal(str(value))
        return value

    table = pa.Table.from_pylist(
        [{f.name: cast(r.get(f.name), f.type) for f in schema} for r in rows], schema=schema)
    engine.drop(name)
    engine.append_arrow(name, pa.RecordBatchReader.from_batches(schema, table.to_batches()))


def put_entity(engine: Engine, entity: str, view: str, rows: list[dict[str, Any]]) -> None:
    """``rows`` need ``_source`` and the entity's key; ``_record_id`` defaults to the key."""
    key = ENTITIES[entity].key
    filled = [{"_record_id": ":".join(str(r[k]) for k in key), **r} for r in rows]
    put(engine, view, entity_schema(entity), filled)


def put_person_map(engine: Engine, rows: list[tuple[str, str, str]]) -> None:
    """(source, record_id, person_id) triples."""
    schema = pa.schema([("node", pa.string()), ("source", pa.string()),
                        ("record_id", pa.string()), ("person_id", pa.string()),
                        ("run_id", pa.string()), ("assigned_at", pa.timestamp("us"))])
    put(engine, "person_map", schema, [
        {"node": f"{s}:{r}", "source": s, "record_id": r, "person_id": p, "run_id": "R0",
         "assigned_at": datetime(2024, 1, 1)} for s, r, p in rows])


def put_customer_records(engine: Engine, rows: list[dict[str, Any]]) -> None:
    put_entity(engine, "customers", "customer_records", rows)


def source(name: str, entity: str, customer_source: str | None = None) -> SourceConfig:
    doc: dict[str, Any] = {"name": name, "entity": entity,
                           "connector": {"type": "csv", "path": f"{name}.csv"},
                           "columns": {f.name: f.name for f in ENTITIES[entity].fields
                                       if f.required}}
    if customer_source:
        doc["customer_source"] = customer_source
    return SourceConfig.model_validate(doc)


def rows_of(engine: Engine, table: str = "traits", trait: str | None = None) -> dict:
    """{(person_id, trait): value} of the non-null value column."""
    t = engine.table(table)
    if trait is not None:
        t = t.filter(t.trait == trait)
    out = {}
    for r in engine.to_arrow(t).to_pylist():
        value = next((r[c] for c in ("value_number", "value_text", "value_date")
                      if r[c] is not None), None)
        out[(r["person_id"], r["trait"])] = value
    return out


D = date
T = datetime
