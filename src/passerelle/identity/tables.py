"""Names and schemas of the tables the identity step reads and writes.

Every identity module imports its table names from here, so a rename happens in one place
and the contract (see the identity brief) is written down once, as Ibis schemas.
"""

from __future__ import annotations

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir

from passerelle.engines.base import Engine
from passerelle.tables import ANONYMOUS_IDS_TABLE, CUSTOMER_RECORDS_TABLE, PERSON_MAP_TABLE

# -- input ---------------------------------------------------------------------------------
CUSTOMER_RECORDS = CUSTOMER_RECORDS_TABLE

# -- outputs (the contract) ------------------------------------------------------------------
IDENTITY_EDGES = "identity_edges"
IDENTITY_SHARED_KEYS = "identity_shared_keys"
PERSON_MAP = PERSON_MAP_TABLE
PERSON_ID_CHANGES = "person_id_changes"
IDENTITY_LEDGER = "identity_ledger"
IDENTITY_PINS = "identity_pins"
PROFILES = "profiles"

# -- working tables (rebuilt every run; safe to drop) -------------------------------------
KEY_EDGES = "_identity_key_edges"
CANDIDATE_EDGES = "_identity_candidate_edges"
NEXT_EDGES = "_identity_edges_next"
COMPONENTS = "_identity_components"

# -- kept between runs for the incremental path (safe to drop: the next run is then full) --
# node, digest, loaded_at: the records the graph was built on
RECORD_DIGESTS = "_identity_record_digests"
# node, rep, sig_size and the prepared columns: every record and the representative of its
# signature that Splink scored
SPLINK_MEMBERS = "_identity_splink_members"
SPLINK_INPUT = "_identity_splink_input"  # the prepared representatives Splink scored
SPLINK_RULES = "_identity_splink_rules"  # rule (JSON list of fields): the blocking rules used
CUT_NODES = "_identity_cut_nodes"  # node, component: components the guards cut, before the cut
CUT_EDGES = "_identity_cut_edges"  # the edges the guards refused (identity_edges columns)

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


def swap_in(engine: Engine, staged: str, table: str) -> None:
    """Replace ``table`` by the materialised ``staged`` (renamed: no copy of the rows)."""
    with engine.transaction():
        engine.drop(table)
        engine.rename(staged, table)


def replace_rows(engine: Engine, table: str, column: str, scope: ir.Table,
                 rows: ir.Table) -> None:
    """Delete the rows of ``table`` whose ``column`` is in ``scope`` (a one-column table),
    then insert ``rows`` (already materialised: it must not read ``table``).

    An incremental run rewrites a few thousand rows of million-row tables this way,
    instead of copying them whole.
    """
    import sqlglot as sg
    import sqlglot.expressions as sge

    target = engine.table(table)
    (scope_column,) = scope.columns
    inner = ibis.to_sql(scope.select(scope_column).distinct(), dialect=engine.dialect)
    condition = sg.column(column, quoted=True).isin(
        query=sg.parse_one(inner, read=engine.dialect))
    with engine.transaction():
        engine.execute(sge.delete(sg.table(table, quoted=True), where=condition))
        engine.con.insert(table, rows.select(target.columns).cast(target.schema()))


def node_of(records: ir.Table) -> ir.StringValue:
    """The node reference of a record: ``<_source>:<_record_id>``."""
    return records["_source"].cast("string") + ":" + records["_record_id"].cast("string")
# Anonymous and user ids attributed to persons (identity/anonymous.py rebuilds it).
ANONYMOUS_IDS = ANONYMOUS_IDS_TABLE
