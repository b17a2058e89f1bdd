"""Hand-made ``customer_records`` for the identity graph tests (known answers)."""

from __future__ import annotations

from datetime import datetime

import pyarrow as pa

from passerelle.engines.base import Engine
from passerelle.identity.tables import CUSTOMER_RECORDS

_STRING = [
    "_source", "_record_id", "customer_id", "email", "phone", "first_name", "last_name",
    "address_line1", "address_line2", "postcode", "city", "country", "loyalty_card",
    "region", "national_id", "gender", "_issues", "_load_id", "_source_file",
]
SCHEMA = pa.schema(
    [(c, pa.string()) for c in _STRING[:9]]
    + [("birth_date", pa.date32())]
    + [(c, pa.string()) for c in _STRING[9:16]]
    + [("consent_email", pa.bool_()), ("consent_sms", pa.bool_()),
       ("consent_updated_at", pa.timestamp("us")), ("created_at", pa.timestamp("us")),
       ("updated_at", pa.timestamp("us"))]
    + [(c, pa.string()) for c in _STRING[16:]]
    + [("_loaded_at", pa.timestamp("us")), ("_source_row", pa.int64())]
)


def rec(node: str, first: str | None = None, last: str | None = None, **fields: str) -> dict:
    """One record: ``node`` is ``source:record_id``; other fields by name."""
    source, record_id = node.split(":", 1)
    row = dict.fromkeys(SCHEMA.names)
    row.update(_source=source, _record_id=record_id, customer_id=record_id,
               first_name=first, last_name=last, _loaded_at=datetime(2024, 1, 1),
               _source_row=1, **fields)
    return row


def load(engine: Engine, rows: list[dict], replace: bool = True) -> None:
    """(Re)write ``customer_records`` as a table holding exactly ``rows``."""
    if replace:
        engine.drop(CUSTOMER_RECORDS)
    engine.append_arrow(CUSTOMER_RECORDS,
                        pa.Table.from_pylist(rows, schema=SCHEMA).to_reader())


def resolve(engine: Engine, run_id: str, keys=None, cap: int = 50, yml_pins=()):
    """Deterministic edges + graph step on the current ``customer_records``."""
    from passerelle.identity.deterministic import deterministic_edges
    from passerelle.identity.graph import resolve_graph
    from passerelle.project.identity_models import IdentityConfig

    keys = IdentityConfig().keys if keys is None else keys
    records = engine.table(CUSTOMER_RECORDS)
    edges, _ = deterministic_edges(engine, records, keys, run_id)
    return resolve_graph(engine, [edges], run_id=run_id, max_cluster_size=cap,
                         yml_pins=yml_pins)


def persons(engine: Engine) -> dict[str, str]:
    """node -> person_id of the current person_map."""
    rows = engine.to_arrow(engine.table("person_map")).to_pylist()
    return {r["node"]: r["person_id"] for r in rows}


def partition(engine: Engine) -> set[frozenset[str]]:
    groups: dict[str, set[str]] = {}
    for node, pid in persons(engine).items():
        groups.setdefault(pid, set()).add(node)
    return {frozenset(g) for g in groups.values()}
