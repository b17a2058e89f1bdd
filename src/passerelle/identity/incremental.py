"""Incremental identity runs: match only the new records when nothing else changed.

A full run rebuilds the graph from every customer record. When the only change since the
last run is that new records arrived (same rules, same Splink model, same pins, same
matching code, and every record the graph was built on still there, unchanged), the answer
of a full run can be computed from the new records alone:

- **keys**: the edges and the shared-key refusals of a key value depend only on the
  records holding that value, so only the values the new records hold are recomputed, on
  every record holding them; the old edges of those values are replaced;
- **Splink**: old pairs keep their scores (same model, same records); the new records are
  scored against the representatives the last run scored (``predict_between``) and against
  each other (``predict_within``), with the same blocking rules;
- **graph**: the components these edges touch (whole, as they were before the guards cut
  them) are recomputed with the new records, with the functions of a full run; every
  other person keeps its rows, its id and its golden record.

The last run's working state says what "unchanged" means: a digest of every record
(``_identity_record_digests``), the Splink input, and the components the guards cut.
Whenever something else changed, or that state is missing, the run is a full one and the
report says why. A full rebuild gives the same partition (tested).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.types as ir

import passerelle
from passerelle import state
from passerelle.engines.base import Engine
from passerelle.identity import deterministic, pins
from passerelle.identity.graph import GraphResult, _normalised, resolve_subgraph
from passerelle.identity.tables import (
    CUSTOMER_RECORDS,
    CUT_EDGES,
    CUT_NODES,
    EDGE_SCHEMA,
    IDENTITY_EDGES,
    IDENTITY_PINS,
    IDENTITY_SHARED_KEYS,
    PERSON_MAP,
    PROFILES,
    RECORD_DIGESTS,
    SHARED_KEYS_SCHEMA,
    SPLINK_INPUT,
    SPLINK_MEMBERS,
    SPLINK_RULES,
    node_of,
)
from passerelle.project.identity_models import IdentityConfig
from passerelle.project.load import ProjectDefinition
from passerelle.reporter import Reporter

RULES_STEP = "identity:rules"  # in the step-state table: what the graph was built with
# Past this share of new records most of the graph is touched and a full run costs about
# the same; it also re-reads everything, the safer answer to a large delivery.
MAX_NEW_SHARE = 0.5
# Lineage that says where a row came from, not what it says: a reload of the same values
# (a file delivered again, grown by a few rows) changes no edge. ``_loaded_at`` is kept
# apart: golden records read it (recency), so the persons of reloaded records get their
# golden record rebuilt, and nothing else.
_NOT_CONTENT = ("_issues", "_load_id", "_source_file", "_source_row", "_loaded_at")
# The modules whose code decides the graph: a Passerelle upgrade changing them means that
# old edges might not be what the new code gives, so the next run is a full one.
_MATCHING_CODE = ("deterministic.py", "probabilistic.py", "splink_settings.py", "graph.py",
                  "ledger.py", "golden.py", "incremental.py")

# read once, when the code is loaded: the code that runs, not a file edited since
_CODE = hashlib.sha256(b"".join((Path(__file__).parent / name).read_bytes()
                                for name in _MATCHING_CODE)).hexdigest()

DIGESTS_NEXT = "_identity_record_digests_next"
_NEW_NODES = "_identity_new_nodes"
_RELOADED = "_identity_reloaded_nodes"
_NEW_RECORDS = "_identity_new_records"
_AFFECTED = "_identity_affected_values"
_REMOVED = "_identity_removed_key_edges"
_DELTA = "_identity_delta_edges"
_SCOPE = "_identity_scope"
_SUB_EDGES = "_identity_sub_edges"
_TOUCHED = "_identity_touched_persons"
_SHARED_DELTA = "_identity_shared_keys_delta"
_KEY_DELTA = "_identity_key_edges_delta"
_SHARED_NEXT = "_identity_shared_keys_next"
_EDGE_COLUMNS = [c for c in EDGE_SCHEMA.names if c != "first_seen_run"]


@dataclass
class Plan:
    """Which path the identity step takes, and why."""

    incremental: bool
    reason: str
    new_records: int = 0


@dataclass
class Outcome:
    """What an incremental run did (resolve.py turns it into an IdentityResult)."""

    persons: int
    key_edges: int  # key edges recomputed (those of the values the new records hold)
    splink_edges: int  # Splink edges involving a new record
    shared_keys: int
    touched_records: int  # old records whose components were recomputed
    splink: dict[str, Any] = field(default_factory=dict)
    graph: GraphResult | None = None


class Fallback(Exception):
    """The incremental path found something it cannot vouch for: run the full path."""


# -- what the graph was built with ------------------------------------------------------------
def rules_fingerprint(project: ProjectDefinition, engine: Engine) -> str:
    """Everything but the records that decides the graph: identity.yml, the pins made from
    the CLI or API, the saved model and the matching code."""
    config = project.identity or IdentityConfig()
    parts = [config.model_dump_json(), passerelle.__version__, _CODE]
    if engine.exists(IDENTITY_PINS):
        p = engine.table(IDENTITY_PINS)
        parts.append(str(engine.to_arrow(p.aggregate(
            n=p.count(), active=p.active.ifelse(1, 0).sum(),
            last=p.created_at.max())).to_pylist()))
    model = config.probabilistic.model_file(project.root)
    if config.probabilistic.enabled and model.is_file():
        parts.append(hashlib.sha256(model.read_bytes()).hexdigest())
    return state.fingerprint(*parts)


def forget(engine: Engine, run_id: str) -> None:
    """Until :func:`remember` runs, the kept state is not trusted: a run stopped half-way
    makes the next one full."""
    state.remember(engine, RULES_STEP, "", run_id)


def remember(project: ProjectDefinition, engine: Engine, run_id: str) -> None:
    """The graph now matches the records of ``_identity_record_digests_next``."""
    engine.drop(RECORD_DIGESTS)
    engine.rename(DIGESTS_NEXT, RECORD_DIGESTS)
    state.remember(engine, RULES_STEP, rules_fingerprint(project, engine), run_id)


def digests(engine: Engine, records: ir.Table) -> ir.Table:
    """``(node, digest, loaded_at)``: a 64-bit hash of what each record says (not where it
    came from), and when it was loaded."""
    columns = [c for c in records.columns if c not in _NOT_CONTENT]
    if engine.name == "duckdb":  # hashes a row of typed values, no text: several times faster
        digest = ibis.struct({c: records[c] for c in columns}).hash()
    else:
        text: ir.StringValue = ibis.literal("")
        for column in columns:
            # a separator and a NULL marker no staged value holds (printable: SQL literals)
            text = text.concat(records[column].cast("string").fill_null("\u2400"), "\u241f")
        digest = text.hash()
    return records.select(node=node_of(records), digest=digest,
                          loaded_at=records["_loaded_at"])


# -- which path ---------------------------------------------------------------------------------
def plan(project: ProjectDefinition, engine: Engine, *, full: bool,
         retrain: bool) -> Plan:
    """Decide between the full and the incremental path. Always writes this run's record
    digests (the full path keeps them too) and, for an incremental run, which records are
    new and which were reloaded (``_identity_new_nodes``, ``_identity_reloaded_nodes``;
    :func:`resolve_new` reads the records themselves)."""
    decided = _plan(project, engine, full=full, retrain=retrain)
    if not decided.incremental:
        for name in (_NEW_NODES, _RELOADED):
            engine.drop(name)
    return decided


def _plan(project: ProjectDefinition, engine: Engine, *, full: bool, retrain: bool) -> Plan:
    config = project.identity or IdentityConfig()
    engine.replace_table(DIGESTS_NEXT, digests(engine, engine.table(CUSTOMER_RECORDS)))
    if full:
        return Plan(False, "a full rebuild was asked for")
    if retrain:
        return Plan(False, "the Splink model is being retrained")
    if not engine.exists(PERSON_MAP):
        return Plan(False, "first resolution")
    needed = [RECORD_DIGESTS, IDENTITY_EDGES, PROFILES, CUT_NODES, CUT_EDGES,
              IDENTITY_SHARED_KEYS]
    if config.probabilistic.enabled:
        needed += [SPLINK_INPUT, SPLINK_MEMBERS]
        if config.probabilistic.blocking == "auto":
            needed.append(SPLINK_RULES)
    if not all(engine.exists(t) for t in needed):
        return Plan(False, "the last run kept no state for an incremental run")
    if config.probabilistic.enabled and any(
            getattr(c, "term_frequencies", False) for c in config.probabilistic.comparisons):
        # every frequency moves when records arrive, so every old pair's score would too
        return Plan(False, "the Splink model weighs agreement by how frequent a value is, "
                           "and new records change the frequencies of every pair")
    if not state.is_current(engine, RULES_STEP, rules_fingerprint(project, engine)):
        return Plan(False, "identity.yml, the Splink model, the pins or the matching code "
                           "changed since the last resolution (or it did not finish)")
    old, now = engine.table(RECORD_DIGESTS), engine.table(DIGESTS_NEXT)
    changed = _count(engine, old.anti_join(now, ["node", "digest"]))
    if changed:
        return Plan(False, f"{changed:,} record(s) changed or disappeared since the last "
                           "resolution")
    engine.replace_table(_NEW_NODES, now.anti_join(old, "node").select("node"))
    both = old.join(now, "node")
    engine.replace_table(_RELOADED, both.filter(
        both.loaded_at.isnull() | both.loaded_at_right.isnull()
        | (both.loaded_at != both.loaded_at_right)).select("node"))
    new, before = engine.count(_NEW_NODES), engine.count(RECORD_DIGESTS)
    if new > MAX_NEW_SHARE * before:
        return Plan(False, f"{new:,} new records for {before:,} resolved: more than "
                           f"{MAX_NEW_SHARE:.0%}, a full run costs as much")
    ends = sorted({n for p in pins.active_pins(engine, config.pins) for n in (p.node_a, p.node_b)})
    if ends:
        fresh = engine.table(_NEW_NODES)
        if _count(engine, fresh.filter(fresh.node.isin(ends))):
            return Plan(False, "a pin names a record that has just arrived")
    return Plan(True, f"{new:,} new record(s), nothing else changed", new)


def _count(engine: Engine, table: ir.Table) -> int:
    return int(engine.to_arrow(table.count().as_table()).column(0)[0].as_py())


# -- the incremental run ------------------------------------------------------------------------
def resolve_new(project: ProjectDefinition, engine: Engine, reporter: Reporter,
                run_id: str) -> Outcome:
    """Match the new records (``plan`` found them) and update the graph around them."""
    from passerelle.identity.golden import build_profiles
    from passerelle.identity.probabilistic import keep_new, match_new

    config = project.identity or IdentityConfig()
    records = engine.table(CUSTOMER_RECORDS)
    fresh = engine.table(_NEW_NODES)
    engine.replace_table(_NEW_RECORDS, records.semi_join(fresh, node_of(records) == fresh.node))
    new_records = engine.table(_NEW_RECORDS)
    try:
        if not engine.count(_NEW_NODES):
            return _reloaded_only(engine, config, run_id, reporter)
        with reporter.step("Identity: deterministic keys"):
            # not _identity_key_edges: training measures the prior on the last full run's
            key_edges, shared = deterministic.deterministic_edges(
                engine, records, config.keys, run_id, edges_table=_KEY_DELTA,
                shared_table=_SHARED_DELTA, values_of=new_records)
            _old_key_edges(engine, records, new_records, config)
        splink: dict[str, Any] = {}
        parts = [_normalised(key_edges, run_id)]
        splink_edges = 0
        if config.probabilistic.enabled:
            with reporter.step("Identity: probabilistic matching (Splink)"):
                outcome = match_new(engine, new_records, config.probabilistic, project.root,
                                    run_id, reporter)
            parts.append(_normalised(outcome.edges, run_id))
            splink_edges = outcome.edge_count
            splink = {"records": outcome.records, "records_scored": outcome.representatives,
                      "trained": False, "model": str(outcome.model.path) if outcome.model
                      else None}
        engine.replace_table(_DELTA, ibis.union(*parts) if len(parts) > 1 else parts[0])
        touched = _scope(engine)
        _sub_edges(engine, run_id)
        graph = resolve_subgraph(engine, _SUB_EDGES, _SCOPE, run_id=run_id,
                                 max_cluster_size=config.graph.max_cluster_size,
                                 yml_pins=config.pins, reporter=reporter)
        with reporter.step("Identity: golden records"):
            pm = engine.table(PERSON_MAP)
            now = pm.semi_join(ibis.union(engine.table(_SCOPE), engine.table(_RELOADED)),
                               "node").select("person_id")
            engine.con.insert(_TOUCHED, now.distinct())
            build_profiles(engine, config.survivorship, run_id,
                           persons=engine.table(_TOUCHED))
        shared_keys = _update_shared_keys(engine, shared)
        keep_new(engine)
        return Outcome(persons=graph.persons, key_edges=_count(engine, key_edges),
                       splink_edges=splink_edges, shared_keys=shared_keys,
                       touched_records=touched, splink=splink, graph=graph)
    finally:
        for name in (_NEW_NODES, _RELOADED, _NEW_RECORDS, _AFFECTED, _REMOVED, _DELTA, _SCOPE,
                     _SUB_EDGES, _TOUCHED, _SHARED_DELTA, _SHARED_NEXT, _KEY_DELTA):
            engine.drop(name)


def _reloaded_only(engine: Engine, config: IdentityConfig, run_id: str,
                   reporter: Reporter) -> Outcome:
    """No new record: no edge can change; only golden records read the load times."""
    from passerelle.identity.golden import build_profiles

    pm = engine.table(PERSON_MAP)
    engine.replace_table(_TOUCHED, pm.semi_join(engine.table(_RELOADED), "node")
                         .select("person_id").distinct())
    if engine.count(_TOUCHED):
        with reporter.step("Identity: golden records"):
            build_profiles(engine, config.survivorship, run_id, persons=engine.table(_TOUCHED))
    persons = _count(engine, pm.select("person_id").distinct())
    return Outcome(persons=persons, key_edges=0, splink_edges=0,
                   shared_keys=engine.count(IDENTITY_SHARED_KEYS), touched_records=0)


def _old_key_edges(engine: Engine, records: ir.Table, new_records: ir.Table,
                   config: IdentityConfig) -> None:
    """``_identity_affected_values``: the (field, value) the new records hold;
    ``_identity_removed_key_edges``: the previous edges of those values, which the
    recomputed ones replace. An edge of a key joins two records holding its value, so
    its first record tells which value it belongs to."""
    previous = ibis.union(engine.table(IDENTITY_EDGES).select("node_a", "node_b", "rule"),
                          engine.table(CUT_EDGES).select("node_a", "node_b", "rule"))
    affected, removed = [], []
    for key in config.keys:
        values = deterministic.key_values(new_records, key).select("value").distinct()
        affected.append(values.select(field=ibis.literal(key.field), value=values.value))
        holding = deterministic.holders(records, new_records, key)
        mine = previous.filter(previous.rule == deterministic.key_rule(key.field))
        removed.append(mine.semi_join(holding, mine.node_a == holding.node))
    empty_affected = ibis.memtable({"field": [], "value": []},
                                   schema={"field": "string", "value": "string"})
    engine.replace_table(_AFFECTED, ibis.union(*affected) if affected else empty_affected)
    if removed:
        engine.replace_table(_REMOVED, ibis.union(*removed, distinct=True))
    else:
        engine.replace_table(_REMOVED, previous.limit(0))


def _scope(engine: Engine) -> int:
    """``_identity_scope``: the new records, and every previous person that a new or
    removed edge touches, with the whole component the guards cut it from. Also writes
    those persons' ids to ``_identity_touched_persons``. Returns the old records in it."""
    delta, removed = engine.table(_DELTA), engine.table(_REMOVED)
    seeds = ibis.union(delta.select(node=delta.node_a), delta.select(node=delta.node_b),
                       removed.select(node=removed.node_a), removed.select(node=removed.node_b),
                       engine.table(_NEW_NODES).select("node"), distinct=True)
    pm = engine.table(PERSON_MAP)
    persons = pm.semi_join(seeds, "node").select("person_id").distinct()
    nodes = pm.semi_join(persons, "person_id").select("node")
    cut = engine.table(CUT_NODES)
    reopened = cut.semi_join(cut.semi_join(nodes, "node").select("component").distinct(),
                             "component").select("node")
    engine.replace_table(_SCOPE, ibis.union(nodes, reopened, engine.table(_NEW_NODES),
                                            distinct=True))
    scope = engine.table(_SCOPE)
    engine.replace_table(_TOUCHED, pm.semi_join(scope, "node").select("person_id").distinct())
    return _count(engine, pm.semi_join(scope, "node"))


def _sub_edges(engine: Engine, run_id: str) -> None:
    """``_identity_sub_edges``: every candidate edge within the scope, as a full run would
    have them: the previous edges (kept and cut) minus those of the recomputed key values,
    plus this run's edges. Refuses to go on if an edge leaves the scope."""
    scope = engine.table(_SCOPE)
    previous = ibis.union(engine.table(IDENTITY_EDGES).select(_EDGE_COLUMNS),
                          engine.table(CUT_EDGES).select(_EDGE_COLUMNS))
    previous = previous.semi_join(scope, previous.node_a == scope.node)
    previous = previous.anti_join(engine.table(_REMOVED), ["node_a", "node_b", "rule"])
    engine.replace_table(_SUB_EDGES, _normalised(
        ibis.union(previous, engine.table(_DELTA).select(_EDGE_COLUMNS)), run_id))
    sub = engine.table(_SUB_EDGES)
    leaving = _count(engine, ibis.union(
        sub.anti_join(scope, sub.node_a == scope.node),
        sub.anti_join(scope, sub.node_b == scope.node)))
    if leaving:
        raise Fallback(f"{leaving} edge(s) join the touched persons to others: the kept "
                       "graph is not what the last run left")


def _update_shared_keys(engine: Engine, delta: ir.Table) -> int:
    """Refusals of the recomputed values replace theirs; the others stay."""
    current = engine.table(IDENTITY_SHARED_KEYS)
    kept = current.anti_join(engine.table(_AFFECTED), ["field", "value"])
    columns = SHARED_KEYS_SCHEMA.names
    engine.replace_table(_SHARED_NEXT, ibis.union(
        kept.select(columns).cast(SHARED_KEYS_SCHEMA),
        delta.select(columns).cast(SHARED_KEYS_SCHEMA)))
    engine.replace_table(IDENTITY_SHARED_KEYS, engine.table(_SHARED_NEXT))
    return engine.count(IDENTITY_SHARED_KEYS)
