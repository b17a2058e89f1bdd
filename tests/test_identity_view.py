"""find_persons and the 360° view on hand-made identity tables (DuckDB and PostgreSQL)."""

from __future__ import annotations

import json

import pytest
from rich.console import Console

from identity_golden_helpers import (
    EVENTS,
    IDENTITY_EDGES,
    IDENTITY_PINS,
    ORDERS,
    birth,
    customer_records,
    day,
    edge,
    person_map,
    record,
    write,
)
from passerelle.identity.golden import build_profiles
from passerelle.identity.view import (
    IdentityNotBuilt,
    PersonNotFound,
    find_persons,
    mask_email,
    mask_phone,
    person_view,
    render_person,
)
from passerelle.project.identity_models import Survivorship

P1, P2 = "P00000000000a", "P00000000000b"
ORDERS_SOURCES = {"eshop_orders": "eshop", "store_tickets": "loyalty"}
EVENTS_SOURCES = {"web": "eshop"}
SPLINK = {"first_name": {"level": "exact", "weight": 5.2},
          "birth_date": {"level": "exact", "weight": 7.0}}


@pytest.fixture
def warehouse(engine):
    customer_records(engine, [
        record("crm", "C1", email="helene@example.fr", phone="+33612345678", first_name="Hélène",
               last_name="Dupont", birth_date=birth(1985, 3, 4), address_line1="12 rue des Lilas",
               consent_email=True, consent_updated_at=day(2023, 1, 1),
               updated_at=day(2023, 1, 1), _source_row=7),
        record("eshop", "E1", email="helene@example.fr", first_name="Hélène",
               consent_email=False, consent_updated_at=day(2024, 2, 1),
               updated_at=day(2024, 2, 1)),
        record("loyalty", "L1", phone="+33612345678", loyalty_card="LC-77",
               updated_at=day(2022, 5, 5)),
        record("crm", "C2", email="marc@example.fr", first_name="Marc", loyalty_card="LC-88"),
        record("newsletter", "E1", email="marc@example.fr"),  # same id as eshop:E1, other person
    ])
    person_map(engine, {P1: ["crm:C1", "eshop:E1", "loyalty:L1"],
                        P2: ["crm:C2", "newsletter:E1"]})
    build_profiles(engine, Survivorship(), "R2")
    write(engine, "identity_edges", IDENTITY_EDGES, [
        edge("crm:C1", "eshop:E1", "key:email", {"field": "email"}),
        edge("crm:C1", "loyalty:L1", "splink", SPLINK, weight=12.2, probability=0.9998,
             run="R2", first="R2"),
        edge("crm:C2", "newsletter:E1", "key:email", {"field": "email"}),
        edge("eshop:E1", "crm:C2", "splink", SPLINK, weight=3.0, probability=0.5),  # between
    ])
    write(engine, "identity_pins", IDENTITY_PINS, [
        {"pin_id": "pin1", "kind": "merge", "node_a": "crm:C1", "node_b": "loyalty:L1",
         "reason": "same card holder", "author": "it@shop.fr", "origin": "yml",
         "created_at": day(2024, 1, 1), "active": True},
        {"pin_id": "pin2", "kind": "split", "node_a": "crm:C2", "node_b": "eshop:E1",
         "reason": "homonyms", "author": "it@shop.fr", "origin": "cli",
         "created_at": day(2024, 1, 2), "active": True},
        {"pin_id": "pin3", "kind": "split", "node_a": "crm:C2", "node_b": "crm:C9",
         "reason": "not her", "author": None, "origin": "api", "created_at": day(2024, 1, 3),
         "active": False},
    ])
    write(engine, "orders", ORDERS, [
        {"_source": "eshop_orders", "order_id": "O1", "customer_id": "E1",
         "ordered_at": day(2024, 1, 10), "amount": 50.0, "channel": "web"},
        {"_source": "store_tickets", "order_id": "T1", "loyalty_card": "LC-77",
         "ordered_at": day(2024, 2, 1), "amount": 20.5, "channel": "store"},
        {"_source": "eshop_orders", "order_id": "O2", "customer_id": "C1",  # eshop:C1: nobody
         "ordered_at": day(2024, 3, 1), "amount": 99.0},
        {"_source": "eshop_orders", "order_id": "O3", "email": "helene@example.fr",  # guest
         "ordered_at": day(2023, 12, 1), "amount": 10.0},
        {"_source": "eshop_orders", "order_id": "O4", "customer_id": "E9",
         "ordered_at": day(2024, 1, 1), "amount": 5.0},
        {"_source": "store_tickets", "order_id": "T2", "loyalty_card": "LC-88",
         "ordered_at": day(2024, 1, 1), "amount": 7.0},
    ])
    write(engine, "events", EVENTS, [
        {"_source": "web", "message_id": "m1", "type": "track", "event": "Product Viewed",
         "user_id": "E1", "timestamp": day(2024, 3, 1), "properties": '{"sku": "A1"}'},
        {"_source": "web", "message_id": "m2", "type": "identify", "email": "helene@example.fr",
         "timestamp": day(2024, 3, 2)},
        {"_source": "web", "message_id": "m3", "type": "track", "event": "Cart Viewed",
         "user_id": "C1", "timestamp": day(2024, 3, 3)},  # web ids are e-shop ids: not C1
        {"_source": "web", "message_id": "m4", "type": "page", "user_id": "E2",
         "timestamp": day(2024, 3, 4)},
    ])
    import pyarrow as pa
    engine.append_arrow("traits", pa.Table.from_pylist([
        {"person_id": P1, "trait": "rfm_segment", "value_number": None, "value_text": "loyal",
         "value_date": None, "computed_at": day(2024, 3, 5)},
        {"person_id": P1, "trait": "clv", "value_number": 420.5, "value_text": None,
         "value_date": None, "computed_at": day(2024, 3, 5)},
        {"person_id": P1, "trait": "first_order", "value_number": None, "value_text": None,
         "value_date": birth(2024, 1, 10), "computed_at": day(2024, 3, 5)},
        {"person_id": P2, "trait": "clv", "value_number": 12.0, "value_text": None,
         "value_date": None, "computed_at": day(2024, 3, 5)},
    ]).to_reader())
    return engine


def view(engine, person_id=P1, **kw):
    return person_view(engine, person_id, orders_sources=ORDERS_SOURCES,
                       events_sources=EVENTS_SOURCES, **kw)


# ---------------------------------------------------------------------------- lookup
FIND_CASES = [
    (P1, [{"person_id": P1, "matched_by": ["person_id"], "nodes": []}]),
    ("eshop:E1", [{"person_id": P1, "matched_by": ["node"], "nodes": ["eshop:E1"]}]),
    ("C2", [{"person_id": P2, "matched_by": ["customer_id"], "nodes": ["crm:C2"]}]),
    ("  HELENE@Example.FR ", [{"person_id": P1, "matched_by": ["email"],
                               "nodes": ["crm:C1", "eshop:E1"]}]),
    ("06 12 34 56 78", [{"person_id": P1, "matched_by": ["phone"],
                         "nodes": ["crm:C1", "loyalty:L1"]}]),
    ("+33 6 12 34 56 78", [{"person_id": P1, "matched_by": ["phone"],
                            "nodes": ["crm:C1", "loyalty:L1"]}]),
    ("LC-88", [{"person_id": P2, "matched_by": ["loyalty_card"], "nodes": ["crm:C2"]}]),
    ("Hélène Dupont", [{"person_id": P1, "matched_by": ["name"], "nodes": ["crm:C1"]}]),
    ("dupont HELENE", [{"person_id": P1, "matched_by": ["name"], "nodes": ["crm:C1"]}]),
    ("marc", [{"person_id": P2, "matched_by": ["name"], "nodes": ["crm:C2"]}]),
    ("Hélène Martin", []),  # every word must be one of the person's names
    ("nobody", []),
    ("   ", []),
]


def test_find_persons_by_each_identifier(warehouse):
    for query, expected in FIND_CASES:
        assert find_persons(warehouse, query, default_region="FR") == expected, query


def test_find_persons_several_and_limit(warehouse):
    # "E1" is a customer id in two sources, of two people
    found = find_persons(warehouse, "E1", default_region="FR")
    assert found == [
        {"person_id": P1, "matched_by": ["customer_id"], "nodes": ["eshop:E1"]},
        {"person_id": P2, "matched_by": ["customer_id"], "nodes": ["newsletter:E1"]},
    ]
    assert [p["person_id"] for p in find_persons(warehouse, "E1", limit=1)] == [P1]


def test_find_persons_lists_every_matching_record(warehouse):
    assert find_persons(warehouse, "marc@example.fr")[0]["nodes"] == ["crm:C2", "newsletter:E1"]


# ------------------------------------------------------------------------------ view
def test_golden_and_records(warehouse):
    v = view(warehouse)
    assert v["person_id"] == P1
    assert v["golden"]["email"] == {"value": "helene@example.fr", "source": "eshop"}
    assert v["golden"]["phone"] == {"value": "+33612345678", "source": "crm"}
    assert v["golden"]["birth_date"] == {"value": "1985-03-04", "source": "crm"}
    assert v["golden"]["loyalty_card"] == {"value": "LC-77", "source": "loyalty"}
    assert v["summary"] == {
        "record_count": 3, "sources": ["crm", "eshop", "loyalty"],
        "first_seen_at": "2024-01-01T00:00:00", "last_updated_at": "2024-02-01T00:00:00",
        "profile_built": True, "orders": 3, "revenue": 80.5, "events": 2}
    assert [r["node"] for r in v["records"]] == ["crm:C1", "eshop:E1", "loyalty:L1"]
    crm = v["records"][0]
    assert (crm["source"], crm["record_id"]) == ("crm", "C1")
    assert crm["fields"]["last_name"] == "Dupont"
    assert crm["fields"]["address_line1"] == "12 rue des Lilas"
    assert crm["lineage"] == {"_issues": None, "_load_id": "L-crm",
                              "_loaded_at": "2024-01-01T00:00:00", "_source_file": "crm.csv",
                              "_source_row": 7}
    json.dumps(v)  # plain data all the way down


def test_orders_and_events(warehouse):
    v = view(warehouse, recent_orders=2)
    orders = v["orders"]
    assert (orders["total"], orders["amount"]) == (3, 80.5)  # O1, T1, O3; not O2/O4/T2
    assert [(o["order_id"], o["matched_by"]) for o in orders["recent"]] == [
        ("T1", "loyalty_card"), ("O1", "customer_id")]
    every = view(warehouse)["orders"]["recent"]
    assert [(o["order_id"], o["matched_by"]) for o in every] == [
        ("T1", "loyalty_card"), ("O1", "customer_id"), ("O3", "email")]
    events = v["events"]
    assert events["total"] == 2
    assert [(e["message_id"], e["matched_by"]) for e in events["recent"]] == [
        ("m2", "email"), ("m1", "user_id")]
    assert events["recent"][1]["properties"] == {"sku": "A1"}
    p2 = view(warehouse, P2)
    assert [o["order_id"] for o in p2["orders"]["recent"]] == ["T2"]
    assert p2["events"] == {"total": 0, "recent": []}


def test_events_of_a_stitched_device(warehouse):
    from passerelle.identity.anonymous import stitch_anonymous
    from traits_helpers import put_entity, source

    put_entity(warehouse, "events", "events", [
        {"_source": "web", "message_id": "a1", "type": "page", "anonymous_id": "dev-1",
         "timestamp": day(2024, 2, 20)},  # before the login: anonymous
        {"_source": "web", "message_id": "a2", "type": "identify", "user_id": "E1",
         "anonymous_id": "dev-1", "timestamp": day(2024, 2, 21)},
    ])
    sources = {"eshop": source("eshop", "customers"), "web": source("web", "events", "eshop")}
    assert stitch_anonymous(warehouse, sources, "R3").stitched == 1
    v = view(warehouse)
    assert [(e["message_id"], e["matched_by"]) for e in v["events"]["recent"]] == [
        ("a2", "user_id"), ("a1", "anonymous_id")]
    assert v["why"]["anonymous_ids"] == ["dev-1"]


def test_consents_and_traits(warehouse):
    v = view(warehouse)
    assert v["consents"]["golden"]["consent_email"] == {
        "value": False, "source": "eshop", "updated_at": "2024-02-01T00:00:00"}
    assert v["consents"]["by_record"][:2] == [
        {"node": "crm:C1", "source": "crm", "consent_email": True, "consent_sms": None,
         "consent_updated_at": "2023-01-01T00:00:00"},
        {"node": "eshop:E1", "source": "eshop", "consent_email": False, "consent_sms": None,
         "consent_updated_at": "2024-02-01T00:00:00"},
    ]
    # the value comes from whichever typed column holds it (the terminal once showed "—")
    assert v["traits"] == [
        {"trait": "clv", "value": 420.5, "computed_at": "2024-03-05T00:00:00"},
        {"trait": "first_order", "value": "2024-01-10", "computed_at": "2024-03-05T00:00:00"},
        {"trait": "rfm_segment", "value": "loyal", "computed_at": "2024-03-05T00:00:00"}]


def test_why(warehouse):
    why = view(warehouse)["why"]
    assert [(e["node_a"], e["node_b"], e["rule"]) for e in why["edges"]] == [
        ("crm:C1", "eshop:E1", "key:email"), ("crm:C1", "loyalty:L1", "splink")]
    key, splink = why["edges"]
    assert key["evidence"] == {"field": "email"}
    assert (key["first_seen_run"], key["weight"], key["match_probability"]) == ("R1", 1000.0, 1.0)
    assert splink["evidence"] == SPLINK
    assert (splink["first_seen_run"], splink["match_probability"]) == ("R2", 0.9998)
    assert [(p["pin_id"], p["kind"]) for p in why["pins"]] == [("pin1", "merge"),
                                                                ("pin2", "split")]


def test_masking(warehouse):
    v = view(warehouse, mask_pii=True)
    assert v["masked"] is True
    g = v["golden"]
    assert g["email"]["value"] == "h***@example.fr"
    assert g["phone"]["value"] == "+33 6** ** ** 78"
    assert g["birth_date"]["value"] == "1985"
    assert g["address_line1"]["value"] == "***"
    assert g["last_name"]["value"] == "Dupont"  # names are not masked
    crm = v["records"][0]["fields"]
    assert (crm["email"], crm["phone"], crm["birth_date"], crm["address_line1"]) == (
        "h***@example.fr", "+33 6** ** ** 78", "1985", "***")
    guest = next(o for o in v["orders"]["recent"] if o["order_id"] == "O3")
    assert guest["email"] == "h***@example.fr"
    assert v["events"]["recent"][0]["email"] == "h***@example.fr"
    assert "helene@" not in json.dumps(v) and "12345678" not in json.dumps(v)


def test_mask_helpers():
    assert mask_email("a@b.fr") == "a***@b.fr"
    assert mask_email("broken") == "***"
    assert mask_phone("+33612345678") == "+33 6** ** ** 78"
    assert mask_phone("+4915123456789") == "+49 1** ** ** ** 89"  # 11 national digits


def test_not_found(warehouse):
    with pytest.raises(PersonNotFound) as err:
        view(warehouse, "Pffffffffffff")
    assert "Pffffffffffff" in err.value.reason


def test_no_identity_yet(duckdb_engine):
    with pytest.raises(IdentityNotBuilt):
        find_persons(duckdb_engine, "x@y.fr")


def test_render_person(warehouse):
    console = Console(record=True, width=160)
    console.print(render_person(view(warehouse)))
    out = console.export_text()
    assert "P00000000000a  Hélène Dupont" in out
    assert "Golden record" in out and "Why these records are one person" in out
    assert "same email" in out
    assert "first_name: exact (+5.2); birth_date: exact (+7.0)" in out
    assert "pin merge: crm:C1 · loyalty:L1: same card holder (it@shop.fr)" in out
    assert "crm.csv:7" in out
    assert "0.9998" in out
    console = Console(record=True, width=160)
    console.print(render_person(view(warehouse, mask_pii=True)))
    masked = console.export_text()
    assert "h***@example.fr" in masked and "helene@" not in masked
