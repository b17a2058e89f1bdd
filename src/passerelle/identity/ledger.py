"""History of the identity graph: stable person ids, the edge ledger, ``why_linked``.

Person ids survive runs: each new cluster keeps the previous id that holds most of its
records; when several clusters claim one id (a split), the one with most of its records
keeps it; everything else gets ``P`` + 12 hex of sha256(smallest node), so a rebuild from
scratch gives the same ids. Every id change is appended to ``person_id_changes`` so
downstream tables can follow. Edges that appear or disappear between runs go to the
ledger (``link``/``unlink``) and each edge keeps the run it was first seen in, so "since
when are these two records one person, and why" always has an answer.
"""

from __future__ import annotations

import hashlib
import json
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import ibis
import ibis.expr.types as ir

from passerelle.engines.base import Engine
from passerelle.engines.hashing import sha256_hex
from passerelle.errors import PasserelleError
from passerelle.identity.pins import write_ledger
from passerelle.identity.tables import (
    EDGE_SCHEMA,
    IDENTITY_EDGES,
    IDENTITY_LEDGER,
    LEDGER_SCHEMA,
    NEXT_EDGES,
    PERSON_ID_CHANGES,
    PERSON_ID_CHANGES_SCHEMA,
    PERSON_MAP,
    PERSON_MAP_SCHEMA,
    PIN_RULE,
    ensure_tables,
    replace_rows,
    swap_in,
)
from passerelle.runlog import utcnow

_OVERLAP = "_identity_id_overlap"
_IDS = "_identity_ids"
_MAP_NEXT = "_identity_person_map_next"


@dataclass
class IdSummary:
    persons: int
    records: int
    kept: int  # persons that kept a previous id
    new: int
    merged: int
    split: int
    removed: int


def person_id_for(node: str, attempt: int = 0) -> str:
    """The id a brand-new cluster gets (Python twin of the SQL, for collisions)."""
    text = node if attempt == 0 else f"{node}#{attempt}"
    return "P" + hashlib.sha256(text.encode()).hexdigest()[:12]


# -- stable person ids ------------------------------------------------------------------------
def _scalar(engine: Engine, expr: ir.Scalar) -> object:
    return engine.to_arrow(expr.as_table()).column(0)[0].as_py()


def _resolve_collisions(engine: Engine, prev: ir.Table) -> None:
    """Give another id to a new cluster whose id is taken (rare: 48-bit hashes)."""
    for attempt in range(1, 20):
        ids = engine.table(_IDS)
        fresh = ids.filter(ids.is_new)
        rank = ibis.row_number().over(group_by=fresh.person_id, order_by=fresh.component)
        dup = fresh.mutate(rk=rank).filter(lambda t: t.rk > 0).select("component")
        live = ibis.union(prev.select(pid=prev.person_id),
                          ids.filter(~ids.is_new).select(pid=ids.person_id))
        clash = fresh.semi_join(live, fresh.person_id == live.pid).select("component")
        bad = engine.to_arrow(ibis.union(dup, clash, distinct=True))["component"].to_pylist()
        if not bad:
            return
        fixes = ibis.memtable({"component": bad,
                               "fixed": [person_id_for(c, attempt) for c in bad]})
        joined = ids.left_join(fixes, "component")
        fixed = engine.scratch_table(_IDS + "_fix", joined.select(
            *[c for c in ids.columns if c != "person_id"],
            person_id=joined.fixed.fill_null(joined.person_id)))
        engine.scratch_table(_IDS, fixed)
        engine.drop(_IDS + "_fix")
    raise RuntimeError("could not find free person ids")  # pragma: no cover


def assign_person_ids(engine: Engine, components: ir.Table, run_id: str,
                      scope: ir.Table | None = None) -> IdSummary:
    """Write ``person_map`` (replaced) and append ``person_id_changes`` for this run.

    ``components(node, component)``: component is the smallest node of the cluster.
    ``scope`` (an incremental run: a table of ``node``) says which records ``components``
    covers: whole previous persons plus new records. Only their rows of ``person_map`` are
    rewritten; every other person keeps its id, untouched, as a full run would give it.
    Changes: ``new`` (only new records), ``merge`` (a kept id that absorbed other persons'
    or new records; related = the absorbed ids), ``split`` (a new id made of records of
    related ids), ``removed`` (an id whose records are all gone). ``records`` is the
    person's record count after the change (before, for ``removed``).
    """
    ensure_tables(engine)
    at = utcnow()
    comp = components.select("node", "component")
    every = engine.table(PERSON_MAP)
    prev = every if scope is None else every.semi_join(scope, "node")
    sizes = comp.group_by("component").agg(size=comp.count())
    ov = comp.join(prev.select(node=prev.node, prev_id=prev.person_id), "node")
    ov = engine.scratch_table(_OVERLAP, ov.group_by("component", "prev_id").agg(n=ov.count()))

    best = ov.mutate(rk=ibis.row_number().over(
        group_by=ov.component, order_by=[ibis.desc(ov.n), ov.prev_id])).filter(
        lambda t: t.rk == 0)
    keep = best.mutate(rk2=ibis.row_number().over(
        group_by=best.prev_id, order_by=[ibis.desc(best.n), best.component])).filter(
        lambda t: t.rk2 == 0).select("component", kept_id="prev_id")
    ids = sizes.left_join(keep, "component")
    new_id = "P" + sha256_hex(engine, ids.component).substr(0, 12)
    engine.scratch_table(_IDS, ids.select(
        component=ids.component, size=ids.size.cast("int64"),
        person_id=ids.kept_id.fill_null(new_id), is_new=ids.kept_id.isnull()))
    _resolve_collisions(engine, every)
    ids = engine.table(_IDS)

    # -- person_id_changes (SQL, appended) --
    ovj = ov.join(ids.select("component", "person_id"), "component")
    ovj = ovj.filter(ovj.prev_id != ovj.person_id)
    related = ovj.group_by("component").agg(
        related=ovj.prev_id.group_concat(",", order_by=ovj.prev_id))
    carried = ov.group_by("component").agg(carried=ov.n.sum())
    x = ids.left_join(related, "component").left_join(carried, "component")
    x = x.select("component", "size", "person_id", "is_new", "related", "carried")
    fresh_records = x.size - x.carried.fill_null(0)
    kind = ibis.cases(
        (~x.is_new & (x.related.notnull() | (fresh_records > 0)), "merge"),
        (x.is_new & x.carried.isnull(), "new"),
        (x.is_new, "split"), else_=ibis.null("string"))
    x = x.mutate(kind=kind)
    changed = x.filter(x.kind.notnull()).select(
        run_id=ibis.literal(run_id), changed_at=ibis.literal(at, "timestamp"), kind=x.kind,
        person_id=x.person_id, related_person_ids=x.related.cast("string"),
        records=x.size.cast("int64"))
    gone = prev.group_by("person_id").agg(records=prev.count())
    gone = gone.anti_join(ov, gone.person_id == ov.prev_id)
    removed = gone.select(
        run_id=ibis.literal(run_id), changed_at=ibis.literal(at, "timestamp"),
        kind=ibis.literal("removed"), person_id=gone.person_id,
        related_person_ids=ibis.null("string"), records=gone.records.cast("int64"))
    engine.con.insert(PERSON_ID_CHANGES, ibis.union(changed, removed).cast(
        PERSON_ID_CHANGES_SCHEMA).select(PERSON_ID_CHANGES_SCHEMA.names))

    # -- person_map (replaced; unchanged rows keep the run that assigned them) --
    m = comp.join(ids.select("component", "person_id"), "component")
    colon = m.node.find(":")
    m = m.select(node=m.node, source=m.node.left(colon), record_id=m.node.substr(colon + 1),
                 person_id=m.person_id)
    p = prev.select(node=prev.node, old_id=prev.person_id, old_run=prev.run_id,
                    old_at=prev.assigned_at)
    j = m.left_join(p, "node")
    same = j.old_id.notnull() & (j.old_id == j.person_id)
    engine.replace_table(_MAP_NEXT, j.select(
        node=j.node, source=j.source, record_id=j.record_id, person_id=j.person_id,
        run_id=ibis.ifelse(same, j.old_run, ibis.literal(run_id)),
        assigned_at=ibis.ifelse(same, j.old_at, ibis.literal(at, "timestamp")),
    ).cast(PERSON_MAP_SCHEMA))
    if scope is None:
        swap_in(engine, _MAP_NEXT, PERSON_MAP)
    else:
        replace_rows(engine, PERSON_MAP, "node", scope, engine.table(_MAP_NEXT))

    counts = dict(zip(*_kind_counts(engine, run_id), strict=True))
    totals = engine.to_arrow(ids.aggregate(
        persons=ids.count(), records=ids.size.sum(),
        kept=ids.is_new.ifelse(0, 1).sum())).to_pylist()[0]
    if scope is not None:  # the persons outside the scope kept their ids
        pm = engine.table(PERSON_MAP)
        whole = engine.to_arrow(pm.aggregate(persons=pm.person_id.nunique(),
                                             records=pm.count())).to_pylist()[0]
        outside = int(whole["persons"]) - int(totals["persons"])
        totals = {"persons": whole["persons"], "records": whole["records"],
                  "kept": int(totals["kept"] or 0) + outside}
    for name in (_OVERLAP, _IDS, _MAP_NEXT):
        engine.drop(name)
    return IdSummary(persons=int(totals["persons"]), records=int(totals["records"] or 0),
                     kept=int(totals["kept"] or 0), new=counts.get("new", 0),
                     merged=counts.get("merge", 0), split=counts.get("split", 0),
                     removed=counts.get("removed", 0))


def _kind_counts(engine: Engine, run_id: str) -> tuple[list[str], list[int]]:
    c = engine.table(PERSON_ID_CHANGES)
    mine = c.filter(c.run_id == run_id)
    rows = engine.to_arrow(mine.group_by("kind").agg(n=mine.count()))
    return rows["kind"].to_pylist(), [int(n) for n in rows["n"].to_pylist()]


# -- edges across runs ----------------------------------------------------------------------
def _scoped_edges(engine: Engine, scope: ir.Table | None) -> ir.Table:
    """``identity_edges``, or its edges within ``scope``: an edge never joins two persons,
    and a scope is made of whole persons, so ``node_a`` tells."""
    edges = engine.table(IDENTITY_EDGES)
    return edges if scope is None else edges.semi_join(scope, edges.node_a == scope.node)


def stage_edges(engine: Engine, kept: ir.Table, run_id: str,
                scope: ir.Table | None = None) -> ir.Table:
    """The run's final edges with the run each was first seen in (``_identity_edges_next``)."""
    ensure_tables(engine)
    prev = _scoped_edges(engine, scope)
    p = prev.select("node_a", "node_b", "rule", seen=prev.first_seen_run)
    j = kept.left_join(p, ["node_a", "node_b", "rule"])
    engine.replace_table(NEXT_EDGES, j.select(
        *[j[c] for c in EDGE_SCHEMA.names if c != "first_seen_run"],
        first_seen_run=j.seen.fill_null(run_id)).cast(EDGE_SCHEMA))
    return engine.table(NEXT_EDGES)


def _ledger_rows(edges: ir.Table, person_map: ir.Table, action: str, run_id: str,
                 at: object) -> ir.Table:
    j = edges.left_join(person_map.select("node", "person_id"), edges.node_a == person_map.node)
    return j.select(
        run_id=ibis.literal(run_id), at=ibis.literal(at, "timestamp"),
        action=ibis.literal(action), node_a=j.node_a, node_b=j.node_b, person_id=j.person_id,
        rule=j.rule, evidence=j.evidence, author=ibis.null("string"),
    ).cast(LEDGER_SCHEMA)


def record_edges(engine: Engine, run_id: str, guards_cuts: Sequence[dict] = (),
                 scope: ir.Table | None = None) -> tuple[int, int]:
    """Ledger the difference between the previous and this run's edges, then replace
    ``identity_edges`` with ``_identity_edges_next``. Returns (links, unlinks). With
    ``scope`` (an incremental run), only the edges within it are compared and replaced.

    Cut edges (``action`` cap_cut / pin_split) are written unless the pair's last entry is
    already that cut, so a cut that holds run after run is written once.
    """
    at = utcnow()
    prev, nxt = _scoped_edges(engine, scope), engine.table(NEXT_EDGES)
    pm = engine.table(PERSON_MAP)
    on = ["node_a", "node_b", "rule"]
    linked = nxt.anti_join(prev, on)
    unlinked = prev.anti_join(nxt, on)
    cut_keys = {(c["node_a"], c["node_b"], c["rule"]) for c in guards_cuts}
    if cut_keys:
        cuts = ibis.memtable([dict(zip(on, k, strict=True)) for k in sorted(cut_keys)])
        unlinked = unlinked.anti_join(cuts, on)
    links = int(_scalar(engine, linked.count()))
    unlinks = int(_scalar(engine, unlinked.count()))
    if links:
        engine.con.insert(IDENTITY_LEDGER, _ledger_rows(linked, pm, "link", run_id, at))
    if unlinks:
        engine.con.insert(IDENTITY_LEDGER, _ledger_rows(unlinked, pm, "unlink", run_id, at))
    _ledger_cuts(engine, run_id, at, guards_cuts)
    if scope is None:
        swap_in(engine, NEXT_EDGES, IDENTITY_EDGES)
    else:
        replace_rows(engine, IDENTITY_EDGES, "node_a", scope, nxt)
    return links, unlinks


def _ledger_cuts(engine: Engine, run_id: str, at: object, cuts: Sequence[dict]) -> None:
    if not cuts:
        return
    led = engine.table(IDENTITY_LEDGER)
    firsts = sorted({c["node_a"] for c in cuts})
    history = engine.to_arrow(led.filter(
        led.node_a.isin(firsts) & led.action.isin(["link", "unlink", "cap_cut", "pin_split"])
    ).order_by("at").select("node_a", "node_b", "rule", "action")).to_pylist()
    last = {(h["node_a"], h["node_b"], h["rule"]): h["action"] for h in history}
    pm = engine.table(PERSON_MAP)
    person = {r["node"]: r["person_id"] for r in engine.to_arrow(
        pm.filter(pm.node.isin(firsts)).select("node", "person_id")).to_pylist()}
    write_ledger(engine, [
        dict(run_id=run_id, at=at, action=c["action"], node_a=c["node_a"], node_b=c["node_b"],
             person_id=person.get(c["node_a"]), rule=c["rule"], evidence=c.get("evidence"),
             author=None)
        for c in cuts if last.get((c["node_a"], c["node_b"], c["rule"])) != c["action"]])


# -- why are these two one person? ------------------------------------------------------------
def why_linked(engine: Engine, node_a: str, node_b: str) -> list[dict]:
    """The chain of edges joining two records in the current graph, strongest edges first.

    Each step: node_a, node_b (in path order), rule, weight, match_probability, evidence
    (parsed JSON), first_seen_run, run_id. Empty when the records are different persons.
    Bounded: only the edges of their one person are read.
    """
    ensure_tables(engine)
    pm = engine.table(PERSON_MAP)
    found = {r["node"]: r["person_id"] for r in engine.to_arrow(
        pm.filter(pm.node.isin([node_a, node_b])).select("node", "person_id")).to_pylist()}
    missing = [n for n in (node_a, node_b) if n not in found]
    if missing:
        raise PasserelleError(f"No resolved record {', '.join(missing)}.",
                              "Give records as '<source>:<record_id>' and run the pipeline.")
    if node_a == node_b or found[node_a] != found[node_b]:
        return []
    members = pm.filter(pm.person_id == found[node_a]).select("node")
    e = engine.table(IDENTITY_EDGES)
    rows = engine.to_arrow(e.semi_join(members, e.node_a == members.node)).to_pylist()
    rows.sort(key=lambda r: (r["rule"] != PIN_RULE, -(r["weight"] or 0.0), r["node_a"],
                             r["node_b"], r["rule"]))
    adjacency: dict[str, list[tuple[str, dict]]] = {}
    for r in rows:  # strongest first, so BFS prefers strong edges among equal-length paths
        adjacency.setdefault(r["node_a"], []).append((r["node_b"], r))
        adjacency.setdefault(r["node_b"], []).append((r["node_a"], r))
    came: dict[str, tuple[str, dict] | None] = {node_a: None}
    queue = deque([node_a])
    while queue:
        node = queue.popleft()
        if node == node_b:
            break
        for nxt, r in adjacency.get(node, []):
            if nxt not in came:
                came[nxt] = (node, r)
                queue.append(nxt)
    if node_b not in came:
        return []
    path, node = [], node_b
    while came[node] is not None:
        before, r = came[node]  # type: ignore[misc]
        path.append(dict(node_a=before, node_b=node, rule=r["rule"], weight=r["weight"],
                         match_probability=r["match_probability"],
                         evidence=_parse(r["evidence"]), first_seen_run=r["first_seen_run"],
                         run_id=r["run_id"]))
        node = before
    return path[::-1]


def _parse(evidence: str | None) -> dict:
    try:
        return json.loads(evidence) if evidence else {}
    except ValueError:
        return {"text": evidence}
