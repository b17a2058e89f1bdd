"""Names and schemas of the tables the identity step reads and writes.

Every identity module imports its table names from here, so a rename happens in one place
and the contract (see the identity brief) is written down once, as Ibis schemas.
"""

from __future__ import annotations

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir

from passerelle.engines.base import Engine

# -- input ---------------------------------------------------------------------------------
CUSTOMER_RECORDS = "customer_records"

# -- outputs (the contract) ------------------------------------------------------------------
IDENTITY_EDGES = "identity_edges"
IDENTITY_SHARED_KEYS = "identity_shared_keys"
PERSON_MAP = "person_map"
PERSON_ID_CHANGES = "person_id_changes"
IDENTITY_LEDGER = "identity_ledger"
IDENTITY_PINS = "identity_pins"
PROFILES = "profiles"

# -- working tables (rebuilt every run; safe to drop) -------------------------------------
KEY_EDGES = "_identity_key_edges"
CANDIDATE_EDGES = "_identity_candidate_edges"
NEXT_EDGES = "_identity_edges_next"
COMPONENTS = "_identity_components"

KEY_WEIGHT = 1000.0  # weight of key and pin edges: above any Splink match weight
PIN_RULE = "pin"
MACHINE_AUTHOR = None  # ledger entries made by a run, not by a person

_TS = dt.Timestamp()  # naive UTC everywhere

EDGE_SCHEMA = ibis.schema({
    "node_a": "string", "node_b": "string", "rule": "string", "weight": "float64",
    "match_probability": "float64", "evidence": "string", "run_id": "string",
    "first_seen_run": "string",
})
SHARED_KEYS_SCHEMA = ibis.schema({
    "field": "string", "value": "string", "distinct_names": "int64", "records": "int64",
    "run_id": "string",
})
PERSON_MAP_SCHEMA = ibis.schema({
    "node": "string", "source": "string", "record_id": "string", "person_id": "string",
    "run_id": "string", "assigned_at": _TS,
})
PERSON_ID_CHANGES_SCHEMA = ibis.schema({
    "run_id": "string", "changed_at": _TS, "kind": "string", "person_id": "string",
    "related_person_ids": "string", "records": "int64",
})
LEDGER_SCHEMA = ibis.schema({
    "run_id": "string", "at": _TS, "action": "string", "node_a": "string", "node_b": "string",
    "person_id": "string", "rule": "string", "evidence": "string", "author": "string",
})
PINS_SCHEMA = ibis.schema({
    "pin_id": "string", "kind": "string", "node_a": "string", "node_b": "string",
    "reason": "string", "author": "string", "origin": "string", "created_at": _TS,
    "active": "boolean",
})

SCHEMAS: dict[str, ibis.Schema] = {
    IDENTITY_EDGES: EDGE_SCHEMA,
    IDENTITY_SHARED_KEYS: SHARED_KEYS_SCHEMA,
    PERSON_MAP: PERSON_MAP_SCHEMA,
    PERSON_ID_CHANGES: PERSON_ID_CHANGES_SCHEMA,
    IDENTITY_LEDGER: LEDGER_SCHEMA,
    IDENTITY_PINS: PINS_SCHEMA,
}


def ensure_tables(engine: Engine) -> None:
    """Create the identity tables that do not exist yet (empty, with their schema)."""
    existing = set(engine.list_tables())
    for name, schema in SCHEMAS.items():
        if name not in existing:
            engine.create_empty(name, schema)


def node_of(records: ir.Table) -> ir.StringValue:
    """The node reference of a record: ``<_source>:<_record_id>``."""
    return records["_source"].cast("string") + ":" + records["_record_id"].cast("string")
