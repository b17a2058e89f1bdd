"""The identity graph: components in SQL, guards on the few components that need them.

Connected components are computed by min-label propagation with pointer jumping, each
iteration materialised as a table so expressions stay small and the engine does the work:

    label(n) <- min(label(n), min label of n's neighbours)      (propagation)
    label(n) <- label(label(n))                                 (pointer jumping)

Labels only decrease and always name a node of the same component; when no label moves,
every component carries its smallest node. Pointer jumping makes a long chain converge in
a logarithmic number of iterations instead of one per link.

Two guards then run in Python, on the few components concerned only (bounded): a
component larger than ``max_cluster_size`` is cut along its weakest edges, and a component
holding both records of a split pin is cut between them. Both are one constrained Kruskal
pass: edges are added strongest first (merge pins before everything, never refused), and
an edge is refused when it would join the two sides of a split pin or grow a part past
the cap. Refused edges whose ends end in different parts are the cut, written to the
ledger as ``pin_split`` or ``cap_cut``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import ibis
import ibis.expr.types as ir
import pyarrow as pa

from passerelle.engines.base import Engine
from passerelle.identity import ledger, pins
from passerelle.identity.tables import (
    CANDIDATE_EDGES,
    COMPONENTS,
    CUSTOMER_RECORDS,
    CUT_EDGES,
    CUT_NODES,
    EDGE_SCHEMA,
    NEXT_EDGES,
    PIN_RULE,
    ensure_tables,
    node_of,
    replace_rows,
    swap_in,
)
from passerelle.project.identity_models import Pin
from passerelle.reporter import Reporter, SilentReporter

_LABELS = ("_identity_cc_labels_a", "_identity_cc_labels_b")
_ARCS = "_identity_cc_arcs"
_STEP = "_identity_cc_step"
_IDS = "_identity_cc_ids"
_FIXES = "_identity_cc_fixes"
_CUTS = "_identity_cuts"
_GUARDED = "_identity_guarded"
MAX_ITERATIONS = 200
_EDGE_COLUMNS = [c for c in EDGE_SCHEMA.names if c != "first_seen_run"]


@dataclass
class CutEdge:
    node_a: str
    node_b: str
    rule: str
    weight: float
    evidence: str | None
    action: str  # 'cap_cut' | 'pin_split'


@dataclass
class GuardReport:
    components_cut: int = 0  # components cut by the size cap
    biggest_sizes: list[int] = field(default_factory=list)  # their sizes before the cut
    split_components: int = 0  # components cut to honour split pins
    cuts: list[CutEdge] = field(default_factory=list)
    over_cap_by_pins: list[int] = field(default_factory=list)  # parts held over cap by pins
    # node -> component before the cut, for every component the guards looked at (an
    # incremental run reopens the whole component when new records touch one part)
    guarded: dict[str, str] = field(default_factory=dict)


@dataclass
class GraphResult:
    iterations: int
    persons: int
    guards: GuardReport
    ids: ledger.IdSummary
    links: int
    unlinks: int
    warnings: list[str]


# -- connected components -----------------------------------------------------------------
def label_components(engine: Engine, edges: ir.Table, nodes: ir.Table,
                     table: str = COMPONENTS) -> tuple[ir.Table, int]:
    """Materialise ``table(node, component)`` and return it with the iteration count.

    ``nodes`` has a ``node`` column (every record, linked or not); edges between nodes
    missing from ``nodes`` are ignored. ``component`` is the smallest node reachable.
    """
    # Work on dense integers numbered in node order (so the smallest id is the smallest
    # node): joins on integers are several times faster than on strings.
    node_set = nodes.select("node").distinct()
    ids = engine.scratch_table(_IDS, node_set.mutate(id=ibis.row_number().over(order_by="node")))
    e = edges.select("node_a", "node_b")
    e = e.filter(e.node_a != e.node_b)
    e = e.join(ids, e.node_a == ids.node).select(a=ids.id, node_b=e.node_b)
    other = ids.view()
    e = e.join(other, e.node_b == other.node).select(a=e.a, b=other.id)
    arcs = ibis.union(e.select(src=e.a, dst=e.b), e.select(src=e.b, dst=e.a), distinct=True)
    stored = engine.scratch_table(_ARCS, arcs)
    # only nodes with an edge take part: a record linked to nobody is its own component
    linked = stored.select(node=stored.src).distinct()
    engine.scratch_table(_LABELS[0], linked.select(node=linked.node, label=linked.node))

    iterations, current = 0, 0
    total = _label_sum(engine, _LABELS[0])
    while True:
        iterations += 1
        cur, nxt = _LABELS[current], _LABELS[1 - current]
        lab, arc = engine.table(cur), engine.table(_ARCS)
        reach = arc.join(lab, arc.dst == lab.node)
        hop = reach.group_by("src").agg(m=reach.label.min())
        step = lab.left_join(hop, lab.node == hop.src)
        step = step.select(node=step.node, label=ibis.least(step.label,
                                                            step.m.fill_null(step.label)))
        step = engine.scratch_table(_STEP, step)  # materialised: the jump joins it to itself
        other = step.view()
        jumped = step.join(other, step.label == other.node)
        engine.scratch_table(nxt, jumped.select(node=jumped.node, label=jumped.label_right))
        current = 1 - current
        # Labels never increase, so an unchanged sum means no label moved.
        new_total = _label_sum(engine, nxt)
        if new_total == total:
            break
        total = new_total
        if iterations >= MAX_ITERATIONS:  # pragma: no cover - diameter 2**200
            raise RuntimeError("connected components did not converge")
    final = engine.table(_LABELS[current])
    final = final.select(fid=final.node, label=final.label)
    alone = ids.anti_join(final, ids.id == final.fid)
    final = ibis.union(final, alone.select(fid=alone.id, label=alone.id))
    named = final.join(ids, final.fid == ids.id).select("node", "label")
    comp = ids.select(cid=ids.id, component=ids.node)
    named = named.join(comp, named.label == comp.cid)
    engine.replace_table(table, named.select("node", "component"))
    for name in (*_LABELS, _ARCS, _STEP, _IDS):
        engine.drop(name)
    return engine.table(table), iterations


def _label_sum(engine: Engine, name: str) -> int:
    t = engine.table(name)
    return int(engine.to_arrow(t.label.sum().as_table()).column(0)[0].as_py() or 0)


def connected_components(engine: Engine, edges: ir.Table, nodes: ir.Table,
                         reporter: Reporter | None = None,
                         table: str = COMPONENTS) -> ir.Table:
    """``(node, component)``, component = smallest node reachable. See label_components."""
    result, iterations = label_components(engine, edges, nodes, table)
    if reporter is not None:
        reporter.info(f"identity graph: components found in {iterations} iterations")
    return result


# -- guards ---------------------------------------------------------------------------------
class _Parts:
    """Union-find with part sizes (bounded: one component's nodes)."""

    def __init__(self, nodes: Sequence[str]) -> None:
        self.parent = {n: n for n in nodes}
        self.size = dict.fromkeys(nodes, 1)

    def find(self, n: str) -> str:
        root = n
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[n] != root:
            self.parent[n], n = root, self.parent[n]
        return root

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        if self.size[ra] < self.size[rb]:
            ra, rb = rb, ra
        self.parent[rb] = ra
        self.size[ra] += self.size[rb]


def cut_component(nodes: Sequence[str], edges: Sequence[dict], cap: int,
                  splits: Sequence[tuple[str, str]]) -> tuple[dict[str, str], list[CutEdge]]:
    """Cut one component: returns node -> new component (smallest node of its part), cuts.

    Edges are dicts with node_a, node_b, rule, weight, evidence. Merge pins are always
    kept (conflicts with split pins were refused before), even past the cap.
    """
    parts = _Parts(nodes)
    order = sorted(edges, key=lambda e: (e["rule"] != PIN_RULE, -float(e["weight"] or 0.0),
                                         e["node_a"], e["node_b"], e["rule"]))
    refused: list[tuple[dict, str]] = []
    for e in order:
        ra, rb = parts.find(e["node_a"]), parts.find(e["node_b"])
        if ra == rb:
            continue
        if e["rule"] != PIN_RULE:
            if any({parts.find(x), parts.find(y)} == {ra, rb} for x, y in splits):
                refused.append((e, "pin_split"))
                continue
            if parts.size[ra] + parts.size[rb] > cap:
                refused.append((e, "cap_cut"))
                continue
        parts.union(e["node_a"], e["node_b"])
    cuts = [CutEdge(e["node_a"], e["node_b"], e["rule"], float(e["weight"] or 0.0),
                    e.get("evidence"), action)
            for e, action in refused if parts.find(e["node_a"]) != parts.find(e["node_b"])]
    smallest: dict[str, str] = {}
    for n in nodes:
        root = parts.find(n)
        smallest[root] = min(smallest.get(root, n), n)
    return {n: smallest[parts.find(n)] for n in nodes}, cuts


def enforce_guards(engine: Engine, edges: ir.Table, components: ir.Table, *,
                   max_cluster_size: int, split_pins: Sequence[pins.ActivePin] = (),
                   table: str = COMPONENTS) -> GuardReport:
    """Cut oversized components and those joining the two records of a split pin.

    Rewrites ``table(node, component)`` for the nodes of the cut components and returns
    the report with every cut edge (the caller removes them and writes the ledger).
    """
    report = GuardReport()
    sizes = components.group_by("component").agg(n=components.count())
    over = engine.to_arrow(sizes.filter(sizes.n > max_cluster_size).order_by(
        ibis.desc("n"), "component")).to_pylist()
    targets = {r["component"] for r in over}
    report.components_cut = len(over)
    report.biggest_sizes = [int(r["n"]) for r in over[:10]]

    split_pairs = [(p.node_a, p.node_b) for p in split_pins if p.kind == "split"]
    if split_pairs:
        ends = sorted({n for pair in split_pairs for n in pair})
        ends_rows = engine.to_arrow(components.filter(components.node.isin(ends))).to_pylist()
        where = {r["node"]: r["component"] for r in ends_rows}
        joined = {where[a] for a, b in split_pairs if a in where and where.get(b) == where[a]}
        report.split_components = len(joined - targets)
        targets |= joined
    if not targets:
        return report

    members = engine.to_arrow(components.filter(components.component.isin(sorted(targets))))
    comp_of = dict(zip(members["node"].to_pylist(), members["component"].to_pylist(),
                       strict=True))
    inside = edges.filter(edges.node_a.isin(list(comp_of)))
    rows = engine.to_arrow(inside.select("node_a", "node_b", "rule", "weight", "evidence"))
    by_component: dict[str, list[dict]] = {c: [] for c in targets}
    for e in rows.to_pylist():
        if e["node_b"] in comp_of:
            by_component[comp_of[e["node_a"]]].append(e)
    nodes_of: dict[str, list[str]] = {c: [] for c in targets}
    for n, c in comp_of.items():
        nodes_of[c].append(n)

    report.guarded = comp_of
    fixes: dict[str, str] = {}
    for comp in sorted(targets):
        local_splits = [(a, b) for a, b in split_pairs if comp_of.get(a) == comp_of.get(b) == comp]
        labels, cuts = cut_component(sorted(nodes_of[comp]), by_component[comp],
                                     max_cluster_size, local_splits)
        fixes.update(labels)
        report.cuts.extend(cuts)
        part_sizes: dict[str, int] = {}
        for label in labels.values():
            part_sizes[label] = part_sizes.get(label, 0) + 1
        report.over_cap_by_pins += [s for s in part_sizes.values() if s > max_cluster_size]

    engine.drop(_FIXES)
    engine.append_arrow(_FIXES, pa.table({"node": list(fixes), "fixed": list(fixes.values())})
                        .to_reader())
    staged = f"{table}__guarded"
    fix = engine.table(_FIXES)
    joined = components.left_join(fix, "node")
    engine.replace_table(staged, joined.select(
        node=joined.node, component=joined.fixed.fill_null(joined.component)))
    swap_in(engine, staged, table)
    engine.drop(_FIXES)
    return report


def _without_cuts(engine: Engine, edges: ir.Table, cuts: Sequence[CutEdge]) -> ir.Table:
    if not cuts:
        return edges
    engine.drop(_CUTS)
    engine.append_arrow(_CUTS, pa.Table.from_pylist(
        [{"node_a": c.node_a, "node_b": c.node_b, "rule": c.rule} for c in cuts]).to_reader())
    return edges.anti_join(engine.table(_CUTS), ["node_a", "node_b", "rule"])


# -- the whole graph step ------------------------------------------------------------------
def _normalised(edges: ir.Table, run_id: str) -> ir.Table:
    """Edges with node_a < node_b, one row per (pair, rule), identity_edges types."""
    a, b = edges.node_a.cast("string"), edges.node_b.cast("string")
    e = edges.select(
        node_a=ibis.least(a, b), node_b=ibis.greatest(a, b), rule=edges.rule.cast("string"),
        weight=edges.weight.cast("float64"),
        match_probability=edges.match_probability.cast("float64"),
        evidence=edges.evidence.cast("string"))
    e = e.filter(e.node_a != e.node_b)
    e = e.group_by("node_a", "node_b", "rule").agg(
        weight=e.weight.max(), match_probability=e.match_probability.max(),
        evidence=e.evidence.max())
    return e.mutate(run_id=ibis.literal(run_id)).select(_EDGE_COLUMNS)


def resolve_graph(engine: Engine, edges: Sequence[ir.Table], *, run_id: str,
                  max_cluster_size: int, yml_pins: Sequence[Pin] = (),
                  records: ir.Table | None = None,
                  reporter: Reporter | None = None) -> GraphResult:
    """Edges -> pins -> components -> guards -> stable person ids -> ledger.

    ``edges``: tables with node_a, node_b, rule, weight, match_probability, evidence
    (deterministic_edges' output, Splink's). Writes person_map, person_id_changes,
    identity_edges (with first_seen_run) and the ledger. Raises PasserelleError on
    conflicting pins; pins on missing records are returned as warnings.
    """
    reporter = reporter or SilentReporter()
    ensure_tables(engine)
    records = records if records is not None else engine.table(CUSTOMER_RECORDS)
    nodes = records.select(node=node_of(records)).distinct()
    applied, warnings = _pins(engine, yml_pins, run_id, reporter)

    parts = [_normalised(e, run_id) for e in edges]
    parts.append(_normalised(pins.merge_pin_edges(applied, run_id), run_id))
    engine.replace_table(CANDIDATE_EDGES, ibis.union(*parts) if len(parts) > 1 else parts[0])
    return _resolve(engine, engine.table(CANDIDATE_EDGES), nodes, applied, warnings,
                    run_id=run_id, max_cluster_size=max_cluster_size, reporter=reporter)


def resolve_subgraph(engine: Engine, candidate: str, scope: str, *, run_id: str,
                     max_cluster_size: int, yml_pins: Sequence[Pin] = (),
                     reporter: Reporter | None = None) -> GraphResult:
    """The graph step of an incremental run, on part of the graph only.

    ``scope`` (a table of ``node``) holds new records and whole components of the
    previous graph (before the guards' cuts); ``candidate`` (a materialised table) every
    edge within it, pins included. Components, guards, person ids, the ledger and the
    guards' state are computed for the scope alone, with the functions of a full run;
    everything outside keeps its rows.
    """
    reporter = reporter or SilentReporter()
    ensure_tables(engine)
    applied, warnings = _pins(engine, yml_pins, run_id, reporter)
    return _resolve(engine, engine.table(candidate), engine.table(scope), applied, warnings,
                    run_id=run_id, max_cluster_size=max_cluster_size, reporter=reporter,
                    scope=engine.table(scope))


def _pins(engine: Engine, yml_pins: Sequence[Pin], run_id: str,
          reporter: Reporter) -> tuple[list[pins.ActivePin], list[str]]:
    pins.sync_yml_pins(engine, yml_pins, run_id)
    every_pin = pins.active_pins(engine, yml_pins)
    pins.check_conflicts(every_pin)
    applied, warnings = pins.usable_pins(engine, every_pin)
    for w in warnings:
        reporter.warning(w)
    return applied, warnings


def _keep_guard_state(engine: Engine, candidate: ir.Table, guards: GuardReport,
                      scope: ir.Table | None) -> None:
    """What an incremental run needs to reopen a cut component: its nodes before the cut
    and the edges refused (they are not in identity_edges)."""
    nodes = pa.table({"node": pa.array(list(guards.guarded), pa.string()),
                      "component": pa.array(list(guards.guarded.values()), pa.string())})
    refused = (candidate.semi_join(engine.table(_CUTS), ["node_a", "node_b", "rule"])
               if guards.cuts else candidate.limit(0))
    if scope is None:
        engine.drop(CUT_NODES)
        engine.append_arrow(CUT_NODES, nodes.to_reader())
        engine.replace_table(CUT_EDGES, refused)
        return
    engine.drop(_GUARDED)
    engine.append_arrow(_GUARDED, nodes.to_reader())
    replace_rows(engine, CUT_NODES, "node", scope, engine.table(_GUARDED))
    engine.replace_table(_GUARDED, refused)
    replace_rows(engine, CUT_EDGES, "node_a", scope, engine.table(_GUARDED))
    engine.drop(_GUARDED)


def _resolve(engine: Engine, candidate: ir.Table, nodes: ir.Table,
             applied: list[pins.ActivePin], warnings: list[str], *, run_id: str,
             max_cluster_size: int, reporter: Reporter,
             scope: ir.Table | None = None) -> GraphResult:
    with reporter.step("identity graph"):
        components, iterations = label_components(engine, candidate, nodes)
        guards = enforce_guards(engine, candidate, components,
                                max_cluster_size=max_cluster_size, split_pins=applied)
    if guards.components_cut:
        reporter.warning(
            f"{guards.components_cut} cluster(s) over {max_cluster_size} records were cut "
            f"along their weakest links (biggest: {', '.join(map(str, guards.biggest_sizes))}).")
    if guards.over_cap_by_pins:
        reporter.warning(f"merge pins hold {len(guards.over_cap_by_pins)} person(s) over "
                         f"{max_cluster_size} records.")

    kept = _without_cuts(engine, candidate, guards.cuts)
    with reporter.step("Identity: person ids and ledger"):
        _keep_guard_state(engine, candidate, guards, scope)
        ledger.stage_edges(engine, kept, run_id, scope)
        ids = ledger.assign_person_ids(engine, engine.table(COMPONENTS), run_id, scope)
        links, unlinks = ledger.record_edges(engine, run_id, guards_cuts=[
            dict(node_a=c.node_a, node_b=c.node_b, rule=c.rule, evidence=c.evidence,
                 action=c.action) for c in guards.cuts], scope=scope)
    for name in (CANDIDATE_EDGES, NEXT_EDGES, _CUTS):
        engine.drop(name)
    return GraphResult(iterations=iterations, persons=ids.persons, guards=guards, ids=ids,
                       links=links, unlinks=unlinks, warnings=warnings)

