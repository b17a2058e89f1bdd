"""Hand-made identity tables with the contract's columns (IDENTITY.md), for the golden record,
360° view and report tests. Only the columns a test cares about need to be given."""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

import pyarrow as pa

from passerelle.engines.base import Engine

TS = pa.timestamp("us")

CUSTOMER_RECORDS = pa.schema([
    ("_source", pa.string()), ("_record_id", pa.string()), ("customer_id", pa.string()),
    ("email", pa.string()), ("phone", pa.string()), ("first_name", pa.string()),
    ("last_name", pa.string()), ("birth_date", pa.date32()), ("address_line1", pa.string()),
    ("address_line2", pa.string()), ("postcode", pa.string()), ("city", pa.string()),
    ("country", pa.string()), ("loyalty_card", pa.string()), ("region", pa.string()),
    ("national_id", pa.string()), ("gender", pa.string()), ("consent_email", pa.bool_()),
    ("consent_sms", pa.bool_()), ("consent_updated_at", TS), ("created_at", TS),
    ("updated_at", TS), ("_issues", pa.string()), ("_load_id", pa.string()),
    ("_loaded_at", TS), ("_source_file", pa.string()), ("_source_row", pa.int64()),
])
PERSON_MAP = pa.schema([
    ("node", pa.string()), ("source", pa.string()), ("record_id", pa.string()),
    ("person_id", pa.string()), ("run_id", pa.string()), ("assigned_at", TS),
])
IDENTITY_EDGES = pa.schema([
    ("node_a", pa.string()), ("node_b", pa.string()), ("rule", pa.string()),
    ("weight", pa.float64()), ("match_probability", pa.float64()), ("evidence", pa.string()),
    ("run_id", pa.string()), ("first_seen_run", pa.string()),
])
IDENTITY_PINS = pa.schema([
    ("pin_id", pa.string()), ("kind", pa.string()), ("node_a", pa.string()),
    ("node_b", pa.string()), ("reason", pa.string()), ("author", pa.string()),
    ("origin", pa.string()), ("created_at", TS), ("active", pa.bool_()),
])
SHARED_KEYS = pa.schema([
    ("field", pa.string()), ("value", pa.string()), ("distinct_names", pa.int64()),
    ("records", pa.int64()), ("run_id", pa.string()),
])
ORDERS = pa.schema([
    ("_source", pa.string()), ("order_id", pa.string()), ("customer_id", pa.string()),
    ("email", pa.string()), ("loyalty_card", pa.string()), ("ordered_at", TS),
    ("amount", pa.float64()), ("currency", pa.string()), ("channel", pa.string()),
    ("store_id", pa.string()), ("status", pa.string()),
])
EVENTS = pa.schema([
    ("_source", pa.string()), ("message_id", pa.string()), ("type", pa.string()),
    ("event", pa.string()), ("user_id", pa.string()), ("anonymous_id", pa.string()),
    ("email", pa.string()), ("timestamp", TS), ("channel", pa.string()),
    ("campaign_id", pa.string()), ("properties", pa.string()), ("context", pa.string()),
])

LOADED = datetime(2024, 1, 1)


def write(engine: Engine, name: str, schema: pa.Schema, rows: list[dict[str, Any]]) -> None:
    """Create ``name`` with ``schema`` and these rows (missing columns are NULL)."""
    unknown = {k for r in rows for k in r} - set(schema.names)
    assert not unknown, f"columns not in the contract of {name}: {unknown}"
    table = pa.Table.from_pylist([{c: r.get(c) for c in schema.names} for r in rows],
                                 schema=schema)
    engine.append_arrow(name, table.to_reader())


def record(source: str, record_id: str, **fields: Any) -> dict[str, Any]:
    """One customer record; ``customer_id`` is the record id, lineage filled in."""
    row: dict[str, Any] = {"_source": source, "_record_id": record_id, "customer_id": record_id,
                           "_load_id": f"L-{source}", "_loaded_at": LOADED,
                           "_source_file": f"{source}.csv", "_source_row": 1, "_issues": None}
    row.update(fields)
    return row


def customer_records(engine: Engine, rows: list[dict[str, Any]]) -> None:
    write(engine, "customer_records", CUSTOMER_RECORDS, rows)


def person_map(engine: Engine, persons: dict[str, list[str]], run_id: str = "R1") -> None:
    """``{person_id: [node, ...]}`` -> ``person_map``."""
    rows = []
    for pid, nodes in persons.items():
        for node in nodes:
            source, record_id = node.split(":", 1)
            rows.append({"node": node, "source": source, "record_id": record_id,
                         "person_id": pid, "run_id": run_id, "assigned_at": LOADED})
    write(engine, "person_map", PERSON_MAP, rows)


def edge(a: str, b: str, rule: str, evidence: dict[str, Any], weight: float = 1000.0,
         probability: float = 1.0, run: str = "R1", first: str = "R1") -> dict[str, Any]:
    a, b = sorted((a, b))
    return {"node_a": a, "node_b": b, "rule": rule, "weight": weight,
            "match_probability": probability, "evidence": json.dumps(evidence),
            "run_id": run, "first_seen_run": first}


def day(y: int, m: int, d: int) -> datetime:
    return datetime(y, m, d)


def birth(y: int, m: int, d: int) -> date:
    return date(y, m, d)
