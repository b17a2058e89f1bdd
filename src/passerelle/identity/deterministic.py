"""Deterministic matching: records sharing a normalised key value are one person.

Staging has already normalised the values (lower-case e-mail, E.164 phone...), so matching
is an equality join, done in SQL. Two things keep it safe and small:

- the *shared-key guard*: a value seen with more distinct names than ``max_names`` (a
  family e-mail, a shop's phone number) is not used to merge, and is listed instead;
- a *spanning* set of edges: the k records holding one value are each linked to the
  smallest of them (k-1 edges), never all k·(k-1)/2 pairs, so a loyalty card typed on
  10,000 till tickets stays 9,999 edges. Components are the same either way. Records
  already in ``person_map`` (earlier runs) are preferred as the root, so a new record
  with a smaller reference adds one edge instead of re-wiring the k-1 existing ones
  (which the ledger would report as k-1 unlinks and k links).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import ibis
import ibis.expr.types as ir

from passerelle.engines.base import Engine
from passerelle.identity.tables import (
    EDGE_SCHEMA,
    IDENTITY_SHARED_KEYS,
    KEY_EDGES,
    KEY_WEIGHT,
    PERSON_MAP,
    SHARED_KEYS_SCHEMA,
    node_of,
)
from passerelle.project.identity_models import DeterministicKey

_EDGE_COLUMNS = [c for c in EDGE_SCHEMA.names if c != "first_seen_run"]


def key_rule(field: str) -> str:
    """The ``rule`` written on edges made by a key on ``field``."""
    return f"key:{field}"


def _keyed(records: ir.Table, key: DeterministicKey) -> ir.Table:
    """(node, value, name) of the records that hold a usable value for ``key``."""
    if key.sources:
        records = records.filter(records["_source"].isin(list(key.sources)))
    first, last = records["first_name"], records["last_name"]
    # NULL names say nothing: they never count as a distinct name.
    name = ibis.ifelse(
        first.isnull() & last.isnull(), ibis.null("string"),
        first.cast("string").fill_null("") + "|" + last.cast("string").fill_null(""),
    )
    keyed = records.select(
        node=node_of(records), value=records[key.field].cast("string"), name=name)
    return keyed.filter(keyed.value.notnull() & (keyed.value.strip() != ""))


def _edges_for_key(keyed: ir.Table, key: DeterministicKey, run_id: str,
                   known: ir.Table | None) -> ir.Table:
    if known is not None:  # records of earlier runs first: a newcomer never moves the root
        marked = keyed.left_join(known, "node")
        rank = ibis.ifelse(marked.seen.isnull(), "1", "0") + marked.node
        roots = marked.group_by("value").agg(root=rank.min().substr(1))
    else:
        roots = keyed.group_by("value").agg(root=keyed.node.min())
    joined = keyed.join(roots, "value")
    joined = joined.filter(joined.node != joined.root)
    return joined.select(
        node_a=joined.root, node_b=joined.node,
        rule=ibis.literal(key_rule(key.field)),
        weight=ibis.literal(KEY_WEIGHT, "float64"),
        match_probability=ibis.literal(1.0, "float64"),
        evidence=ibis.literal(json.dumps({"field": key.field})),
        run_id=ibis.literal(run_id),
    ).distinct()


def deterministic_edges(engine: Engine, records: ir.Table, keys: Sequence[DeterministicKey],
                        run_id: str, *, edges_table: str = KEY_EDGES,
                        shared_table: str = IDENTITY_SHARED_KEYS) -> tuple[ir.Table, ir.Table]:
    """Link the records sharing a value of each key; refuse values shared by many names.

    Writes the edges to the working table ``_identity_key_edges`` (identity_edges columns
    without ``first_seen_run``, which the graph step adds) and the refused values to
    ``identity_shared_keys`` (replaced: it describes this run). Returns both tables. A
    preview (`identity diff`) passes other table names so the current graph is untouched.
    """
    known = None
    if engine.exists(PERSON_MAP):
        pm = engine.table(PERSON_MAP)
        known = pm.select(node=pm.node, seen=ibis.literal(True))
    edge_parts: list[ir.Table] = []
    shared_parts: list[ir.Table] = []
    for key in keys:
        keyed = _keyed(records, key)
        if key.max_names is not None:
            stats = keyed.group_by("value").agg(
                distinct_names=keyed.name.nunique(), records=keyed.count())
            refused = stats.filter(stats.distinct_names > key.max_names)
            shared_parts.append(refused.select(
                field=ibis.literal(key.field), value=refused.value,
                distinct_names=refused.distinct_names.cast("int64"),
                records=refused.records.cast("int64"), run_id=ibis.literal(run_id)))
            keyed = keyed.anti_join(refused.select("value"), "value")
        edge_parts.append(_edges_for_key(keyed, key, run_id, known))

    if edge_parts:
        edges = ibis.union(*edge_parts, distinct=True) if len(edge_parts) > 1 else edge_parts[0]
        engine.replace_table(edges_table, edges.cast(
            {c: EDGE_SCHEMA[c] for c in _EDGE_COLUMNS}).select(_EDGE_COLUMNS))
    else:
        engine.drop(edges_table)
        engine.create_empty(edges_table, ibis.schema({c: EDGE_SCHEMA[c] for c in _EDGE_COLUMNS}))

    if shared_parts:
        shared = ibis.union(*shared_parts) if len(shared_parts) > 1 else shared_parts[0]
        engine.replace_table(shared_table, shared)
    else:
        engine.drop(shared_table)
        engine.create_empty(shared_table, SHARED_KEYS_SCHEMA)
    return engine.table(edges_table), engine.table(shared_table)
