"""Identity graph: components, cap guard, stable person ids, ledger, why_linked.

Exact answers on hand-made records, on DuckDB and PostgreSQL.
"""

from __future__ import annotations

import time

import ibis
import pyarrow as pa
import pytest

from identity_graph_helpers import load, partition, persons, rec, resolve
from passerelle.identity.graph import connected_components, cut_component, label_components
from passerelle.identity.ledger import person_id_for, why_linked


def _changes(engine, run_id):
    c = engine.table("person_id_changes")
    rows = engine.to_arrow(c.filter(c.run_id == run_id)).to_pylist()
    return sorted((r["kind"], r["person_id"], r["related_person_ids"], r["records"])
                  for r in rows)


def _ledger(engine, action=None):
    t = engine.table("identity_ledger")
    if action:
        t = t.filter(t.action == action)
    return sorted((r["run_id"], r["action"], r["node_a"], r["node_b"], r["rule"])
                  for r in engine.to_arrow(t).to_pylist())


BASE = [
    rec("crm:A", "Jean", "Dupont", email="jean@x.fr"),
    rec("shop:B", "Jean", "Dupont", email="jean@x.fr", phone="+33611111111"),
    rec("till:C", "Jean", "Dupont", phone="+33611111111"),
    rec("crm:D", "Marie", "Roy", email="marie@x.fr"),
    rec("shop:E", "Marie", "Roy", email="marie@x.fr"),
    rec("crm:F", "Solo", "Seul"),  # no usable key
]


def test_connected_components_exact(engine):
    nodes = ibis.memtable({"node": ["a", "b", "c", "d", "e", "f", "g"]})
    edges = ibis.memtable({"node_a": ["c", "b", "e", "f", "zz"],
                           "node_b": ["d", "c", "f", "g", "a"]})
    comps, iterations = label_components(engine, edges, nodes)
    got = {r["node"]: r["component"] for r in engine.to_arrow(comps).to_pylist()}
    assert got == {"a": "a", "b": "b", "c": "b", "d": "b", "e": "e", "f": "e", "g": "e"}
    assert 1 <= iterations <= 4


def test_long_chain_converges_in_few_iterations(duckdb_engine):
    n = 1000
    names = [f"n{i:05d}" for i in range(n)]
    nodes = ibis.memtable({"node": names})
    edges = ibis.memtable({"node_a": names[:-1], "node_b": names[1:]})
    comps, iterations = label_components(duckdb_engine, edges, nodes)
    got = duckdb_engine.to_arrow(comps.component.nunique().as_table()).column(0)[0].as_py()
    assert got == 1
    assert iterations <= 15  # pointer jumping: logarithmic, not 999


@pytest.mark.slow
def test_components_million_nodes_duckdb(duckdb_engine):
    n = 1_000_000
    import numpy as np

    rng = np.random.default_rng(7)
    nodes = pa.table({"node": [f"s:{i:07d}" for i in range(n)]})
    a, b = rng.integers(0, n, n), rng.integers(0, n, n)
    edges = pa.table({"node_a": [f"s:{i:07d}" for i in a], "node_b": [f"s:{i:07d}" for i in b]})
    duckdb_engine.append_arrow("nodes", nodes.to_reader())
    duckdb_engine.append_arrow("edges", edges.to_reader())
    started = time.perf_counter()
    _, iterations = label_components(duckdb_engine, duckdb_engine.table("edges"),
                                     duckdb_engine.table("nodes"))
    seconds = time.perf_counter() - started
    count = duckdb_engine.count("_identity_components")
    print(f"1M nodes / 1M edges: {seconds:.1f}s, {iterations} iterations")
    assert count == n
    assert seconds < 60


def test_chain_and_single_record_persons(engine):
    load(engine, BASE)
    result = resolve(engine, "r1")
    assert partition(engine) == {frozenset({"crm:A", "shop:B", "till:C"}),
                                 frozenset({"crm:D", "shop:E"}), frozenset({"crm:F"})}
    ids = persons(engine)
    assert ids["crm:A"] == person_id_for("crm:A")
    assert ids["crm:F"] == person_id_for("crm:F")
    assert ids["crm:D"] == "P" + __import__("hashlib").sha256(b"crm:D").hexdigest()[:12]
    assert result.persons == 3 and result.ids.new == 3 and result.links == 3
    assert _changes(engine, "r1") == sorted([
        ("new", person_id_for("crm:A"), None, 3), ("new", person_id_for("crm:D"), None, 2),
        ("new", person_id_for("crm:F"), None, 1)])
    pm = engine.to_arrow(engine.table("person_map")).to_pylist()
    row = next(r for r in pm if r["node"] == "till:C")
    assert (row["source"], row["record_id"], row["run_id"]) == ("till", "C", "r1")
    assert _ledger(engine, "link") == [
        ("r1", "link", "crm:A", "shop:B", "key:email"),
        ("r1", "link", "crm:D", "shop:E", "key:email"),
        ("r1", "link", "shop:B", "till:C", "key:phone")]


def test_rerun_unchanged_is_identical(engine):
    load(engine, BASE)
    resolve(engine, "r1")
    before = sorted(engine.to_arrow(engine.table("person_map")).to_pylist(),
                    key=lambda r: r["node"])
    result = resolve(engine, "r2")
    after = sorted(engine.to_arrow(engine.table("person_map")).to_pylist(),
                   key=lambda r: r["node"])
    assert after == before
    assert _changes(engine, "r2") == []
    assert (result.links, result.unlinks) == (0, 0)
    edges = engine.to_arrow(engine.table("identity_edges")).to_pylist()
    assert {r["first_seen_run"] for r in edges} == {"r1"}
    assert {r["run_id"] for r in edges} == {"r2"}


def test_new_record_joins_existing_person(engine):
    load(engine, BASE)
    resolve(engine, "r1")
    load(engine, [*BASE, rec("app:G", "Marie", "Roy", email="marie@x.fr")])
    resolve(engine, "r2")
    ids = persons(engine)
    assert ids["app:G"] == ids["crm:D"] == person_id_for("crm:D")
    assert _changes(engine, "r2") == [("merge", person_id_for("crm:D"), None, 3)]
    # the new record hangs on the existing root: one new edge, nothing re-wired
    assert [e for e in _ledger(engine) if e[0] == "r2"] == [
        ("r2", "link", "app:G", "crm:D", "key:email")]
    row = next(r for r in engine.to_arrow(engine.table("person_map")).to_pylist()
               if r["node"] == "app:G")
    assert row["run_id"] == "r2"


def test_merge_keeps_id_of_larger(engine):
    load(engine, BASE)
    resolve(engine, "r1")
    # a record that carries Jean's phone and Marie's e-mail joins the two persons
    load(engine, [*BASE, rec("app:H", "Jean", "Dupont", email="marie@x.fr",
                             phone="+33611111111")])
    result = resolve(engine, "r2")
    ids = persons(engine)
    big, small = person_id_for("crm:A"), person_id_for("crm:D")
    assert {ids[n] for n in ("crm:A", "shop:B", "till:C", "crm:D", "shop:E", "app:H")} == {big}
    assert _changes(engine, "r2") == [("merge", big, small, 6)]
    assert result.ids.merged == 1 and result.ids.removed == 0


def test_split_pin_keeps_id_for_bigger_part(engine):
    from passerelle.project.identity_models import Pin

    load(engine, BASE)
    resolve(engine, "r1")
    pin = Pin(kind="split", records=["shop:B", "till:C"], reason="two brothers")
    result = resolve(engine, "r2", yml_pins=[pin])
    ids = persons(engine)
    kept = person_id_for("crm:A")
    assert ids["crm:A"] == ids["shop:B"] == kept
    assert ids["till:C"] == person_id_for("till:C")
    assert _changes(engine, "r2") == [("split", person_id_for("till:C"), kept, 1)]
    assert result.ids.split == 1
    assert _ledger(engine, "pin_split") == [
        ("r2", "pin_split", "shop:B", "till:C", "key:phone"),  # the cut edge
        ("r2", "pin_split", "shop:B", "till:C", "pin"),  # the pin itself (audit)
    ]
    assert _ledger(engine, "unlink") == []
    # the split holds on the next run, and is not written twice
    resolve(engine, "r3", yml_pins=[pin])
    assert _changes(engine, "r3") == []
    assert len(_ledger(engine, "pin_split")) == 2
    # removing the pin from identity.yml rejoins them under the bigger person's id
    resolve(engine, "r4")
    assert persons(engine)["till:C"] == kept
    assert _changes(engine, "r4") == [("merge", kept, person_id_for("till:C"), 3)]
    assert ("r4", "unpin", "shop:B", "till:C", "pin") in _ledger(engine, "unpin")
    assert ("r4", "link", "shop:B", "till:C", "key:phone") in _ledger(engine, "link")


def test_removed_person_and_unlink(engine):
    load(engine, BASE)
    resolve(engine, "r1")
    load(engine, [r for r in BASE if r["_record_id"] not in ("F", "E")])
    resolve(engine, "r2")
    assert _changes(engine, "r2") == [("removed", person_id_for("crm:F"), None, 1)]
    assert _ledger(engine, "unlink") == [("r2", "unlink", "crm:D", "shop:E", "key:email")]


def test_from_scratch_rebuild_same_partition_and_ids(engine):
    load(engine, BASE)
    resolve(engine, "r1")
    load(engine, [*BASE, rec("app:H", "Jean", "Dupont", email="marie@x.fr",
                             phone="+33611111111")])
    resolve(engine, "r2")
    incremental = partition(engine)
    rebuilt = []
    for run in ("r3", "r4"):
        for table in ("person_map", "identity_edges", "person_id_changes", "identity_ledger"):
            engine.drop(table)
        resolve(engine, run)
        rebuilt.append(persons(engine))
    assert partition(engine) == incremental
    assert rebuilt[0] == rebuilt[1]  # reproducible: the id of each cluster's smallest node
    assert set(rebuilt[0].values()) == {person_id_for("app:H"), person_id_for("crm:F")}


def test_cap_cuts_a_long_chain(engine):
    rows = []
    for i in range(60):  # r00-r01 share an e-mail, r01-r02 a phone, and so on
        email = f"e{i // 2}@x.fr"
        phone = f"+336{(i + 1) // 2:08d}"
        rows.append(rec(f"s:r{i:02d}", "Jean", "Dupont", email=email, phone=phone))
    load(engine, rows)
    result = resolve(engine, "r1", cap=50)
    sizes = sorted(len(p) for p in partition(engine))
    assert sizes == [10, 50]
    assert result.guards.components_cut == 1
    assert result.guards.biggest_sizes == [60]
    cut = _ledger(engine, "cap_cut")
    assert cut == [("r1", "cap_cut", "s:r49", "s:r50", "key:phone")]
    edges = engine.to_arrow(engine.table("identity_edges")).to_pylist()
    assert ("s:r49", "s:r50") not in {(e["node_a"], e["node_b"]) for e in edges}
    resolve(engine, "r2", cap=50)  # the same cut next run: not written again
    assert len(_ledger(engine, "cap_cut")) == 1


def test_cut_component_keeps_strongest_and_pins():
    nodes = ["a", "b", "c", "d"]
    edges = [dict(node_a="a", node_b="b", rule="splink", weight=9.0, evidence=None),
             dict(node_a="b", node_b="c", rule="splink", weight=2.0, evidence=None),
             dict(node_a="c", node_b="d", rule="pin", weight=1000.0, evidence=None),
             dict(node_a="a", node_b="d", rule="splink", weight=5.0, evidence=None)]
    labels, cuts = cut_component(nodes, edges, cap=2, splits=[])
    assert labels == {"a": "a", "b": "a", "c": "c", "d": "c"}
    assert sorted((c.node_a, c.node_b, c.action) for c in cuts) == [
        ("a", "d", "cap_cut"), ("b", "c", "cap_cut")]
    labels, cuts = cut_component(nodes, edges, cap=50, splits=[("a", "c")])
    assert labels == {"a": "a", "b": "a", "c": "c", "d": "c"}
    assert {(c.node_a, c.node_b, c.action) for c in cuts} == {
        ("a", "d", "pin_split"), ("b", "c", "pin_split")}


def test_cap_terminates_quickly_on_thousands(duckdb_engine):
    n = 3000
    names = [f"s:{i:05d}" for i in range(n)]
    nodes = ibis.memtable({"node": names})
    edges = ibis.memtable({"node_a": names[:-1], "node_b": names[1:], "rule": ["splink"] * (n - 1),
                           "weight": [float(i % 7) for i in range(n - 1)],
                           "evidence": [None] * (n - 1)})
    from passerelle.identity.graph import enforce_guards

    comps = connected_components(duckdb_engine, edges, nodes)
    started = time.perf_counter()
    report = enforce_guards(duckdb_engine, edges, comps, max_cluster_size=50)
    assert time.perf_counter() - started < 10
    sizes = duckdb_engine.to_arrow(duckdb_engine.table("_identity_components")
                                   .group_by("component").agg(n=lambda t: t.count()))
    assert max(sizes["n"].to_pylist()) <= 50
    assert sum(sizes["n"].to_pylist()) == n
    assert len(report.cuts) == sizes.num_rows - 1


def test_why_linked_returns_the_path(engine):
    load(engine, BASE)
    resolve(engine, "r1")
    path = why_linked(engine, "crm:A", "till:C")
    assert [(p["node_a"], p["node_b"], p["rule"], p["first_seen_run"]) for p in path] == [
        ("crm:A", "shop:B", "key:email", "r1"), ("shop:B", "till:C", "key:phone", "r1")]
    assert path[0]["evidence"] == {"field": "email"}
    assert why_linked(engine, "crm:A", "crm:D") == []
    from passerelle.errors import PasserelleError

    with pytest.raises(PasserelleError, match="crm:ZZ"):
        why_linked(engine, "crm:A", "crm:ZZ")
