"""Pins: merge/split decisions, conflicts, missing records, audit. DuckDB and PostgreSQL."""

from __future__ import annotations

import pytest

from identity_graph_helpers import load, partition, persons, rec, resolve
from passerelle.errors import PasserelleError
from passerelle.identity.ledger import person_id_for, why_linked
from passerelle.identity.pins import ActivePin, active_pins, add_pin, check_conflicts, remove_pin
from passerelle.project.identity_models import Pin

ROWS = [
    rec("crm:A", "Jean", "Dupont", email="jean@x.fr"),
    rec("shop:B", "Jean", "Dupont", email="jean@x.fr"),
    rec("till:C", "Jeannot", "Dupont"),  # no key: the machine cannot link it
]


def _ledger(engine):
    rows = engine.to_arrow(engine.table("identity_ledger")).to_pylist()
    return sorted((r["action"], r["node_a"], r["node_b"], r["rule"], r["author"]) for r in rows)


def test_merge_pin_from_cli_links_records(engine):
    load(engine, ROWS)
    resolve(engine, "r1")
    pin_id = add_pin(engine, "merge", "till:C", "shop:B", "same card at the till", "alice")
    assert pin_id.startswith("pin-")
    # adding it again returns the same pin
    assert add_pin(engine, "merge", "shop:B", "till:C", "again", "bob") == pin_id
    resolve(engine, "r2")
    assert partition(engine) == {frozenset({"crm:A", "shop:B", "till:C"})}
    assert persons(engine)["till:C"] == person_id_for("crm:A")
    path = why_linked(engine, "crm:A", "till:C")
    assert [(p["rule"], p["evidence"]["pin_id"] if p["rule"] == "pin" else None)
            for p in path] == [("key:email", None), ("pin", pin_id)]
    assert ("pin_merge", "shop:B", "till:C", "pin", "alice") in _ledger(engine)

    removed = remove_pin(engine, pin_id, "bob")
    assert removed.pin_id == pin_id
    assert active_pins(engine) == []
    resolve(engine, "r3")
    assert partition(engine) == {frozenset({"crm:A", "shop:B"}), frozenset({"till:C"})}
    assert ("unpin", "shop:B", "till:C", "pin", "bob") in _ledger(engine)
    with pytest.raises(PasserelleError, match="No active pin"):
        remove_pin(engine, pin_id, "bob")


def test_split_pin_cuts_key_edges(engine):
    load(engine, ROWS)
    resolve(engine, "r1")
    add_pin(engine, "split", "crm:A", "shop:B", "two people share this address", "alice", "api")
    result = resolve(engine, "r2")
    assert partition(engine) == {frozenset({"crm:A"}), frozenset({"shop:B"}),
                                 frozenset({"till:C"})}
    assert result.guards.split_components == 1
    assert ("pin_split", "crm:A", "shop:B", "key:email", None) in _ledger(engine)


def test_conflicting_pins_rejected_naming_both(engine):
    load(engine, ROWS)
    resolve(engine, "r1")
    merge = add_pin(engine, "merge", "crm:A", "till:C", "same person", "alice")
    with pytest.raises(PasserelleError) as err:
        add_pin(engine, "split", "crm:A", "till:C", "not the same", "bob")
    assert merge in str(err.value) and "split crm:A + till:C" in str(err.value)
    # a chain of merge pins joining the two records of a split
    second = add_pin(engine, "merge", "till:C", "shop:B", "same phone", "alice")
    with pytest.raises(PasserelleError) as err:
        add_pin(engine, "split", "crm:A", "shop:B", "different", "bob")
    assert merge in str(err.value) and second in str(err.value)
    # the same conflict coming from identity.yml stops the run, naming both pins
    yml = [Pin(kind="split", records=["shop:B", "crm:A"], reason="different people")]
    with pytest.raises(PasserelleError, match="Conflicting pins") as err:
        resolve(engine, "r2", yml_pins=yml)
    assert merge in str(err.value) and second in str(err.value)


def test_check_conflicts_same_pair():
    merge = ActivePin("pin-m", "merge", "a:1", "b:2", "same", None, "yml")
    split = ActivePin("pin-s", "split", "a:1", "b:2", "not same", None, "cli")
    with pytest.raises(PasserelleError) as err:
        check_conflicts([merge, split])
    assert "pin-m" in str(err.value) and "pin-s" in str(err.value)
    check_conflicts([merge, ActivePin("pin-t", "split", "a:1", "c:3", "x", None, "cli")])


def test_pin_on_missing_record(engine):
    load(engine, ROWS)
    with pytest.raises(PasserelleError, match="crm:NOPE"):
        add_pin(engine, "merge", "crm:A", "crm:NOPE", "typo", "alice")
    yml = [Pin(kind="merge", records=["crm:A", "crm:GONE"], reason="erased since")]
    result = resolve(engine, "r1", yml_pins=yml)
    assert len(result.warnings) == 1
    assert "crm:GONE" in result.warnings[0] and "no longer exists" in result.warnings[0]
    assert partition(engine) == {frozenset({"crm:A", "shop:B"}), frozenset({"till:C"})}
    # a CLI pin whose record disappears later is reported too
    add_pin(engine, "merge", "crm:A", "till:C", "same", "alice")
    load(engine, ROWS[:2])
    result = resolve(engine, "r2")
    assert any("till:C" in w for w in result.warnings)


def test_yml_pins_are_mirrored_and_audited(engine):
    load(engine, ROWS)
    pin = Pin(kind="merge", records=["till:C", "crm:A"], reason="checked by phone",
              author="carol")
    resolve(engine, "r1", yml_pins=[pin])
    assert partition(engine) == {frozenset({"crm:A", "shop:B", "till:C"})}
    stored = engine.to_arrow(engine.table("identity_pins")).to_pylist()
    assert [(p["kind"], p["node_a"], p["node_b"], p["origin"], p["active"]) for p in stored] == [
        ("merge", "crm:A", "till:C", "yml", True)]
    resolve(engine, "r2", yml_pins=[pin])  # no second audit entry
    assert [e for e in _ledger(engine) if e[0] == "pin_merge"] == [
        ("pin_merge", "crm:A", "till:C", "pin", "carol")]
    with pytest.raises(PasserelleError, match=r"identity\.yml"):
        remove_pin(engine, stored[0]["pin_id"], "bob")
