"""Incremental identity runs: new records only, same answer as a full rebuild.

Each scenario is played twice on the same engine, from an empty warehouse: once with the
second run incremental, once with it forced full. Both must leave the same person_map
(same partition, same person ids), the same golden records and the same shared keys.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from identity_graph_helpers import load, partition, persons, rec
from passerelle.engines.base import Engine
from passerelle.engines.duckdb import DuckDBEngine
from passerelle.identity import pins
from passerelle.identity.probabilistic import train
from passerelle.identity.resolve import IdentityResult, resolve_identity
from passerelle.project.identity_models import (
    DeterministicKey,
    Graph,
    IdentityConfig,
    Pin,
    Probabilistic,
)
from passerelle.project.load import ProjectDefinition
from passerelle.project.models import ProjectConfig
from passerelle.reporter import SilentReporter
from splink_synthetic import synthetic_records

KEYS = IdentityConfig(
    keys=[DeterministicKey(field="email", max_names=2, first_names_must_agree=True),
          DeterministicKey(field="phone", max_names=2),
          DeterministicKey(field="loyalty_card", max_names=None)],
    probabilistic=Probabilistic(enabled=False),
    graph=Graph(max_cluster_size=6),
)

OLD = [
    rec("crm:A", "Jean", "Dupont", email="jean@x.fr"),
    rec("shop:B", "Jean", "Dupont", email="jean@x.fr", phone="+33611111111"),
    rec("till:C", "Jean", "Dupont", phone="+33611111111"),
    rec("crm:D", "Marie", "Roy", email="marie@x.fr"),
    rec("crm:F", "Solo", "Seul"),
    rec("crm:G", "Paul", "Martin", phone="+33622222222"),
    rec("shop:H", "Paul", "Martin", phone="+33622222222"),
    rec("crm:X", "Zoé", "Zed", email="zoe@x.fr"),
    rec("shop:Y", "Zoé", "Zed", email="zoe@x.fr"),
    # one card on seven records: over the cap of 6, cut
    *[rec(f"till:K{i}", "Anne", "Blanc", loyalty_card="L1") for i in range(7)],
]
NEW = [
    rec("web:1", "Jean", "Dupont", email="jean@x.fr"),  # joins Jean
    rec("web:2", "Marie", "Roy", email="marie@x.fr", phone="+33611111111"),  # Jean + Marie
    # a third and fourth name on Paul's phone: the phone becomes shared, Paul is split
    rec("web:3", "Pierre", "Martin", phone="+33622222222"),
    rec("web:4", "Luc", "Martin", phone="+33622222222"),
    rec("web:5", "Anne", "Blanc", loyalty_card="L1"),  # into the cut component
    rec("web:6", "Nouveau", "Client"),  # nobody
]


def project(root: Path, identity: IdentityConfig) -> ProjectDefinition:
    return ProjectDefinition(root=root, config=ProjectConfig(name="t"), identity=identity)


def resolve(engine: Engine, definition: ProjectDefinition, run_id: str,
            full: bool = False) -> IdentityResult:
    return resolve_identity(definition, engine, SilentReporter(), run_id, full=full)


def snapshot(engine: Engine) -> dict:
    """What a run leaves for its users: persons, golden records, shared keys."""
    profiles = engine.to_arrow(engine.table("profiles").drop("run_id")).to_pylist()
    shared = engine.to_arrow(engine.table("identity_shared_keys").drop("run_id")).to_pylist()
    return {"persons": persons(engine),
            "profiles": sorted(profiles, key=lambda r: r["person_id"]),
            "shared": sorted(shared, key=lambda r: (r["field"], r["value"]))}


def reset(engine: Engine) -> None:
    for name in engine.list_tables():
        try:
            engine.drop(name)
        except Exception:  # a view (Ibis' in-memory tables, Splink's registrations)
            engine.con.drop_view(name, force=True)


def play(engine: Engine, definition: ProjectDefinition, old: list[dict], new: list[dict],
         full: bool) -> tuple[IdentityResult, dict]:
    reset(engine)
    load(engine, old)
    first = resolve(engine, definition, "run-1")
    assert first.mode == "full" and first.mode_reason == "first resolution"
    load(engine, new, replace=False)
    second = resolve(engine, definition, "run-2", full=full)
    return second, snapshot(engine)


def test_new_records_give_what_a_full_rebuild_gives(engine, tmp_path):
    definition = project(tmp_path, KEYS)
    full, expected = play(engine, definition, OLD, NEW, full=True)
    assert full.mode == "full" and "asked" in full.mode_reason
    result, got = play(engine, definition, OLD, NEW, full=False)
    assert result.mode == "incremental", result.mode_reason
    assert result.new_records == len(NEW)
    assert got == expected
    groups = partition(engine)
    assert frozenset({"crm:A", "shop:B", "till:C", "web:1", "web:2", "crm:D"}) in groups
    anne = {"web:5", *(f"till:K{i}" for i in range(7))}
    parts = [g for g in groups if g & anne]
    assert max(map(len, parts)) == 6 and set().union(*parts) == anne  # cut at six
    assert frozenset({"crm:G"}) in groups and frozenset({"shop:H"}) in groups
    assert {frozenset({"crm:X", "shop:Y"}), frozenset({"web:6"})} <= groups
    # only the persons the new records touch were re-examined: not Zoé, not Solo
    assert result.touched_records == len(OLD) - 3
    # a full rebuild afterwards changes nothing, not even an id
    again = resolve(engine, definition, "run-3", full=True)
    assert again.mode == "full" and snapshot(engine) == got
    changes = engine.table("person_id_changes")
    assert changes.filter(changes.run_id == "run-3").count().to_pyarrow().as_py() == 0


def test_the_ledger_records_the_new_links(duckdb_engine, tmp_path):
    definition = project(tmp_path, KEYS)
    result, _ = play(duckdb_engine, definition, OLD, NEW, full=False)
    assert result.mode == "incremental"
    ledger = duckdb_engine.table("identity_ledger")
    mine = duckdb_engine.to_arrow(ledger.filter(ledger.run_id == "run-2")).to_pylist()
    linked = {(r["node_a"], r["node_b"]) for r in mine if r["action"] == "link"}
    unlinked = {(r["node_a"], r["node_b"]) for r in mine if r["action"] == "unlink"}
    assert ("crm:A", "web:1") in linked
    assert ("crm:G", "shop:H") in unlinked  # the phone shared by three names
    edges = duckdb_engine.to_arrow(duckdb_engine.table("identity_edges")).to_pylist()
    assert {(e["node_a"], e["node_b"]) for e in edges} >= {("crm:A", "web:1"),
                                                           ("crm:X", "shop:Y")}


def test_nothing_new_changes_nothing(duckdb_engine, tmp_path):
    definition = project(tmp_path, KEYS)
    load(duckdb_engine, OLD)
    resolve(duckdb_engine, definition, "run-1")
    before = snapshot(duckdb_engine)
    result = resolve(duckdb_engine, definition, "run-2")
    assert result.mode == "incremental" and result.new_records == 0
    assert snapshot(duckdb_engine) == before


@pytest.mark.parametrize("change, reason", [
    ("edit", "changed or disappeared"),
    ("delete", "changed or disappeared"),
    ("rules", "identity.yml"),
    ("pin", "pins"),
    ("pin_on_new", "pin names a record"),
    ("lost_state", "kept no state"),
    ("many", "more than"),
])
def test_anything_else_than_new_records_means_a_full_run(duckdb_engine, tmp_path, change,
                                                         reason):
    identity = KEYS
    if change == "pin_on_new":  # a pin in identity.yml waiting for its second record
        identity = KEYS.model_copy(update={"pins": [
            Pin(kind="merge", records=["crm:F", "web:1"], reason="same client")]})
    definition = project(tmp_path, identity)
    load(duckdb_engine, OLD)
    resolve(duckdb_engine, definition, "run-1")
    rows = OLD + NEW[:1]
    if change == "edit":
        rows = [dict(r, email="autre@x.fr") if r["_record_id"] == "A" else r for r in rows]
    elif change == "delete":
        rows = rows[1:]
    elif change == "rules":
        definition = project(tmp_path, KEYS.model_copy(update={"graph": Graph(
            max_cluster_size=10)}))
    elif change == "pin":
        pins.add_pin(duckdb_engine, "split", "crm:A", "shop:B", "two people", None, "cli")
    elif change == "lost_state":
        duckdb_engine.drop("_identity_record_digests")
    elif change == "many":
        rows = OLD + [rec(f"web:n{i}", "Nouveau", f"Client{i}") for i in range(len(OLD))]
    load(duckdb_engine, rows)
    result = resolve(duckdb_engine, definition, "run-2")
    assert result.mode == "full"
    assert reason in result.mode_reason


def synthetic(n_people: int) -> list[dict]:
    """The Splink tests' synthetic people as complete customer records, some with the
    e-mail address of their first record."""
    table, _ = synthetic_records(n_people, seed=3)
    rows = []
    for i, row in enumerate(table.to_pylist()):
        node = f"{row.pop('_source')}:{row.pop('_record_id')}"
        if i % 4 == 0 and row["first_name"]:
            row["email"] = f"{row['first_name'][:3].lower()}{i % 40}@example.fr"
        first, last = row.pop("first_name"), row.pop("last_name")
        row.pop("customer_id")
        rows.append(rec(node, first, last, **{k: v for k, v in row.items() if v is not None}))
    return rows


SPLINK = IdentityConfig(
    keys=[DeterministicKey(field="email", max_names=2)],
    probabilistic=Probabilistic(blocking=[
        ["last_name", "birth_date"], ["first_name", "birth_date"], ["last_name", "postcode"],
        ["birth_date", "postcode"], ["first_name", "postcode"]]),
)


def test_new_records_scored_by_splink_give_what_a_full_rebuild_gives(engine, tmp_path):
    definition = project(tmp_path, SPLINK)
    rows = synthetic(160)
    old = [r for i, r in enumerate(rows) if i % 12]
    new = [r for i, r in enumerate(rows) if not i % 12]
    # the model is trained once, on DuckDB (a saved model scores the same on every engine)
    with DuckDBEngine(tmp_path / "training.duckdb") as trainer:
        load(trainer, old)
        train(trainer, trainer.table("customer_records"), SPLINK.probabilistic,
              tmp_path / SPLINK.probabilistic.model_path, SilentReporter())
    _, expected = play(engine, definition, old, new, full=True)
    result, got = play(engine, definition, old, new, full=False)
    assert result.mode == "incremental", result.mode_reason
    assert result.splink_edges > 0 and result.splink["records_scored"] == len(new)
    assert got["persons"] == expected["persons"]
    assert got == expected
    # the new records did link to earlier ones
    old_nodes = {f"{r['_source']}:{r['_record_id']}" for r in old}
    assert any(len(g) > 1 and not g <= old_nodes and g & old_nodes
               for g in partition(engine))


def test_blocking_auto_incremental_run_blocks_with_the_rules_of_the_full_run(duckdb_engine,
                                                                              tmp_path):
    import json

    from passerelle.identity.tables import SPLINK_RULES

    config = SPLINK.model_copy(update={"probabilistic": SPLINK.probabilistic.model_copy(
        update={"blocking": "auto"})})
    definition = project(tmp_path, config)
    rows = synthetic(160)
    old = [r for i, r in enumerate(rows) if i % 12]
    new = [r for i, r in enumerate(rows) if not i % 12]
    reset(duckdb_engine)
    load(duckdb_engine, old)
    first = resolve(duckdb_engine, definition, "run-1")
    assert first.mode == "full" and first.splink_edges > 0
    kept = [json.loads(r["rule"]) for r in
            duckdb_engine.to_arrow(duckdb_engine.table(SPLINK_RULES)).to_pylist()]
    assert kept and all(set(rule) <= {c.field for c in config.probabilistic.comparisons}
                        for rule in kept)
    assert first.splink["blocking_auto"] and first.splink["blocking_rules"] == kept
    load(duckdb_engine, new, replace=False)
    second = resolve(duckdb_engine, definition, "run-2")
    assert second.mode == "incremental", second.mode_reason
    assert second.splink["records_scored"] == len(new) and second.splink_edges > 0
