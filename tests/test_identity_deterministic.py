"""Deterministic keys: exact answers on hand-made records, DuckDB and PostgreSQL."""

from __future__ import annotations

from identity_graph_helpers import load, rec
from passerelle.identity.deterministic import deterministic_edges
from passerelle.identity.tables import CUSTOMER_RECORDS
from passerelle.project.identity_models import DeterministicKey


def _edges(engine, keys):
    edges, shared = deterministic_edges(engine, engine.table(CUSTOMER_RECORDS), keys, "r1")
    e = sorted((r["node_a"], r["node_b"], r["rule"])
               for r in engine.to_arrow(edges).to_pylist())
    s = sorted((r["field"], r["value"], r["distinct_names"], r["records"], r["run_id"])
               for r in engine.to_arrow(shared).to_pylist())
    return e, s


def test_same_email_links_and_evidence(engine):
    load(engine, [
        rec("crm:1", "Jean", "Dupont", email="jean@x.fr"),
        rec("shop:9", "Jean", "Dupont", email="jean@x.fr"),
        rec("shop:10", "Paul", "Martin", email="paul@x.fr"),
        rec("shop:11", "Anne", "Roy", email=None),
        rec("shop:12", "Anne", "Roy", email=""),
        rec("shop:13", "Anne", "Roy", email=""),
    ])
    edges, shared = _edges(engine, [DeterministicKey(field="email")])
    assert edges == [("crm:1", "shop:9", "key:email")]
    assert shared == []
    row = engine.to_arrow(engine.table("_identity_key_edges")).to_pylist()[0]
    assert (row["weight"], row["match_probability"], row["run_id"]) == (1000.0, 1.0, "r1")
    assert row["evidence"] == '{"field": "email"}'


def test_family_email_refused_and_listed(engine):
    load(engine, [
        rec("crm:1", "Jean", "Dupont", email="famille@x.fr"),
        rec("crm:2", "Marie", "Dupont", email="famille@x.fr"),
        rec("crm:3", "Luc", "Dupont", email="famille@x.fr"),
        rec("crm:4", "Zoé", "Dupont", email="famille@x.fr"),
        rec("crm:5", None, None, email="famille@x.fr"),  # NULL names are not a 5th name
        rec("crm:6", "Jean", "Dupont", email="famille@x.fr"),  # same name as crm:1
        # three names plus an anonymous record: within the guard, linked
        rec("shop:1", "Ana", "Lima", email="trio@x.fr"),
        rec("shop:2", "Bea", "Lima", email="trio@x.fr"),
        rec("shop:3", "Caro", "Lima", email="trio@x.fr"),
        rec("shop:4", None, None, email="trio@x.fr"),
    ])
    edges, shared = _edges(engine, [DeterministicKey(field="email", max_names=3)])
    assert shared == [("email", "famille@x.fr", 4, 6, "r1")]
    assert edges == [("shop:1", "shop:2", "key:email"), ("shop:1", "shop:3", "key:email"),
                     ("shop:1", "shop:4", "key:email")]
    assert engine.count("identity_shared_keys") == 1


def test_phone_and_loyalty_card_keys(engine):
    load(engine, [
        rec("crm:1", "Jean", "Dupont", phone="+33612345678"),
        rec("till:7", "J", "Dupont", phone="+33612345678"),
        rec("till:8", "Marie", "Roy", loyalty_card="L-1"),
        rec("loyalty:L-1", "Marie", "Roy", loyalty_card="L-1"),
        rec("loyalty:L-2", "Paul", "Roy", loyalty_card="L-2"),
    ])
    edges, _ = _edges(engine, [DeterministicKey(field="phone"),
                               DeterministicKey(field="loyalty_card", max_names=None)])
    assert edges == [("crm:1", "till:7", "key:phone"),
                     ("loyalty:L-1", "till:8", "key:loyalty_card")]


def test_sources_restriction(engine):
    load(engine, [
        rec("crm:C1", "Jean", "Dupont"),
        rec("shop:C1", "Jean", "Dupont"),
        rec("till:C1", "Marc", "Petit"),  # the till numbers its tickets C1 too
    ])
    key = DeterministicKey(field="customer_id", sources=["crm", "shop"])
    edges, _ = _edges(engine, [key])
    assert edges == [("crm:C1", "shop:C1", "key:customer_id")]


def test_spanning_edges_not_all_pairs(engine):
    rows = [rec(f"till:{i:03d}", "Marie", "Roy", loyalty_card="CARD") for i in range(40)]
    load(engine, rows)
    edges, _ = _edges(engine, [DeterministicKey(field="loyalty_card", max_names=None)])
    assert len(edges) == 39  # k-1 edges, not 780 pairs
    assert {a for a, _, _ in edges} == {"till:000"}


def test_no_keys_and_email_phone_on_same_pair(engine):
    load(engine, [
        rec("crm:1", "Jean", "Dupont", email="j@x.fr", phone="+33600000001"),
        rec("shop:1", "Jean", "Dupont", email="j@x.fr", phone="+33600000001"),
    ])
    assert _edges(engine, []) == ([], [])
    edges, _ = _edges(engine, [DeterministicKey(field="email"), DeterministicKey(field="phone")])
    assert edges == [("crm:1", "shop:1", "key:email"), ("crm:1", "shop:1", "key:phone")]
