"""Aggregate traits, favourites, days since last visit, person attribution and history, on
DuckDB and PostgreSQL, against answers computed by hand."""

from __future__ import annotations

from datetime import date, datetime

import ibis
import pytest

from passerelle.identity.attribution import person_events, person_orders
from passerelle.project.traits_models import AggregateTrait, BuiltinTrait
from passerelle.traits import TRAIT_DEFINITIONS, changed_since, compute_traits, store
from traits_helpers import (
    put_customer_records,
    put_entity,
    put_person_map,
    rows_of,
    source,
)

NOW = datetime(2024, 6, 30, 12, 0)
SOURCES = {
    "crm": source("crm", "customers"),
    "shop": source("shop", "customers"),
    "eshop": source("eshop", "orders", "shop"),
    "crm_orders": source("crm_orders", "orders", "crm"),
    "store": source("store", "orders"),
    "lines": source("lines", "order_lines"),
    "web": source("web", "events", "crm"),
}


def order(oid, src, at, amount, channel, **kw):
    return {"_source": src, "order_id": oid, "ordered_at": at, "amount": amount,
            "channel": channel, **kw}


ORDERS = [
    order("O1", "eshop", datetime(2024, 6, 20), 100, "web", customer_id="S1"),
    order("O2", "eshop", datetime(2024, 5, 1), 50, "web", customer_id="S1"),
    order("O3", "eshop", datetime(2024, 1, 10), 30, "app", customer_id="S1", status="cancelled"),
    order("O4", "store", datetime(2024, 6, 29), 20, "store", loyalty_card="L3"),
    order("O5", "store", datetime(2024, 3, 1), 40, "store", email="c3@x.fr"),
    order("O6", "store", datetime(2024, 6, 1), 70, "store", email="shared@x.fr"),
    order("O7", "eshop", datetime(2024, 6, 1), 80, "web", customer_id="S9"),
    order("O8", "eshop", datetime(2024, 7, 5), 999, "web", customer_id="S1"),
    order("O9", "crm_orders", datetime(2024, 6, 25, 9), 10, "web", customer_id="C2"),
    order("O10", "crm_orders", datetime(2024, 6, 25, 9), 10, "store", customer_id="C2"),
]
LINES = [
    ("O1", 1, "shoes"), ("O1", 2, "hats"), ("O2", 1, "bags"), ("O3", 1, "bags"),
    ("O4", 1, "socks"), ("O5", 1, "hats"), ("O9", 1, "toys"), ("O10", 1, "books"),
    ("O7", 1, "bags"),
]
EVENTS = [
    ("E1", "C1", None, datetime(2024, 6, 28, 23)),
    ("E2", None, "c3@x.fr", datetime(2024, 6, 1)),
    ("E3", None, None, datetime(2024, 6, 29)),
    ("E4", "C2", None, datetime(2024, 7, 2)),
    ("E5", "C2", None, datetime(2024, 6, 30, 8)),
]


@pytest.fixture
def shop(engine):
    put_person_map(engine, [("crm", "C1", "P1"), ("shop", "S1", "P1"), ("crm", "C2", "P2"),
                            ("crm", "C3", "P3"), ("crm", "C4", "P4")])
    put_customer_records(engine, [
        {"_source": "crm", "customer_id": "C3", "email": "c3@x.fr", "loyalty_card": "L3"},
        {"_source": "crm", "customer_id": "C2", "email": "shared@x.fr"},
        {"_source": "crm", "customer_id": "C4", "email": "shared@x.fr"},
        {"_source": "crm", "customer_id": "C1"},
        {"_source": "shop", "customer_id": "S1"},
    ])
    put_entity(engine, "orders", "orders", ORDERS)
    put_entity(engine, "order_lines", "order_lines", [
        {"_source": "lines", "order_id": o, "line_number": n, "category": c, "amount": 1}
        for o, n, c in LINES])
    put_entity(engine, "events", "events", [
        {"_source": "web", "message_id": m, "type": "track", "user_id": u, "email": e,
         "timestamp": ts} for m, u, e, ts in EVENTS])
    return engine


def agg(name, function, column=None, entity="orders", **kw):
    return AggregateTrait(name=name, description=f"{name} by hand", owner="tests",
                          type="aggregate", entity=entity, function=function, column=column,
                          **kw)


def builtin(name, which, **kw):
    return BuiltinTrait(name=name, description=name, owner="tests", type="builtin",
                        builtin=which, **kw)


def test_rows_are_attributed_to_persons(shop):
    got = shop.to_arrow(person_orders(shop, SOURCES)).to_pylist()
    assert {(r["order_id"], r["person_id"], r["matched_by"]) for r in got} == {
        ("O1", "P1", "customer_id"), ("O2", "P1", "customer_id"), ("O3", "P1", "customer_id"),
        ("O8", "P1", "customer_id"), ("O4", "P3", "loyalty_card"), ("O5", "P3", "email"),
        ("O9", "P2", "customer_id"), ("O10", "P2", "customer_id"),
    }  # O6: e-mail shared by two people; O7: unknown customer
    events = shop.to_arrow(person_events(shop, SOURCES)).to_pylist()
    assert {(r["message_id"], r["person_id"], r["matched_by"]) for r in events} == {
        ("E1", "P1", "user_id"), ("E2", "P3", "email"), ("E4", "P2", "user_id"),
        ("E5", "P2", "user_id")}


TRAITS = [
    agg("orders_90d", "count", window_days=90),
    agg("total_spend", "sum", "amount", where="status IS NULL OR status <> 'cancelled'"),
    agg("last_purchase", "max", "ordered_at"),
    agg("web_orders", "count", "order_id", where="channel = 'web'"),
    agg("first_channel", "first", "channel"),
    agg("last_channel", "last", "channel"),
    agg("avg_basket", "avg", "amount", window_days=365),
    agg("smallest_order", "min", "amount"),
    agg("channels", "count_distinct", "channel"),
    agg("top_channel_90d", "mode", "channel", window_days=90),
    agg("line_categories", "count_distinct", "category", entity="order_lines",
        where="category <> 'toys'"),
    agg("page_views", "count", entity="events", where="type = 'page'"),
    builtin("favourite_channel", "favourite_channel"),
    builtin("favourite_category", "favourite_category"),
    builtin("days_since_last_visit", "days_since_last_visit", history=False),
]


def test_aggregates_windows_filters_and_favourites(shop):
    summary = compute_traits(shop, TRAITS, SOURCES, "R1", NOW)
    assert summary.failed == {}
    got = rows_of(shop)
    expected = {
        # window (2024-04-01 12:00, now]: O3 (Jan) and O5 (Mar) out, O8 (future) never in
        "orders_90d": {"P1": 2, "P2": 2, "P3": 1, "P4": 0},
        "total_spend": {"P1": 150, "P2": 20, "P3": 60},  # O3 cancelled
        "last_purchase": {"P1": date(2024, 6, 20), "P2": date(2024, 6, 25),
                          "P3": date(2024, 6, 29)},
        "web_orders": {"P1": 2, "P2": 1, "P3": 0, "P4": 0},
        # P2's two orders share an instant: the smaller value wins ('store' < 'web')
        "first_channel": {"P1": "app", "P2": "store", "P3": "store"},
        "last_channel": {"P1": "web", "P2": "store", "P3": "store"},
        "avg_basket": {"P1": 60, "P2": 10, "P3": 30},
        "smallest_order": {"P1": 30, "P2": 10, "P3": 20},
        "channels": {"P1": 2, "P2": 2, "P3": 1, "P4": 0},
        "top_channel_90d": {"P1": "web", "P2": "store", "P3": "store"},
        "line_categories": {"P1": 3, "P2": 1, "P3": 2, "P4": 0},
        "page_views": {"P1": 0, "P2": 0, "P3": 0, "P4": 0},
        # P1: web 2 orders vs app 1. P2: web 1 / store 1 at the same instant -> 'store'
        "favourite_channel": {"P1": "web", "P2": "store", "P3": "store"},
        # P1: bags 2 lines. P3: socks 1 (06-29) vs hats 1 (03-01): the most recent wins.
        # P2: toys / books at the same instant: alphabetical -> 'books'
        "favourite_category": {"P1": "bags", "P2": "books", "P3": "socks"},
        # E1 06-28 23:00 -> 2 days; E5 06-30 08:00 -> 0 (E4 is after now); E2 06-01 -> 29
        "days_since_last_visit": {"P1": 2, "P2": 0, "P3": 29},
    }
    flat = {(p, t): v for t, per in expected.items() for p, v in per.items()}
    assert got == flat
    assert summary.persons["orders_90d"] == 4 and summary.persons["total_spend"] == 3
    definitions = {r["name"]: r for r in shop.to_arrow(shop.table(TRAIT_DEFINITIONS)).to_pylist()}
    assert definitions["total_spend"]["owner"] == "tests"
    assert definitions["total_spend"]["description"] == "total_spend by hand"
    assert definitions["total_spend"]["computed_at"] == NOW
    assert definitions["total_spend"]["persons"] == 3
    assert '"where": "status IS NULL' in definitions["total_spend"]["definition"]


HISTORY_TRAITS = [
    agg("orders_90d", "count", window_days=90),
    agg("total_spend", "sum", "amount"),
    agg("last_purchase", "max", "ordered_at"),
    builtin("favourite_channel", "favourite_channel"),
    builtin("days_since_last_visit", "days_since_last_visit", history=False),
]


def test_history_records_only_changes(shop):
    first = compute_traits(shop, HISTORY_TRAITS, SOURCES, "R1", NOW)
    assert first.history_rows == 4 + 3 + 3 + 3  # every value is new; days_since not tracked
    later = datetime(2024, 7, 1, 12)
    put_entity(shop, "orders", "orders", [
        *[o for o in ORDERS if o["order_id"] not in ("O4", "O5")],  # P3 loses every order
        order("O11", "crm_orders", datetime(2024, 6, 26), 5, "web", customer_id="C2"),
    ])
    second = compute_traits(shop, HISTORY_TRAITS, SOURCES, "R2", later)
    history = shop.to_arrow(shop.table("traits_history").filter(
        shop.table("traits_history").run_id == "R2")).to_pylist()
    changes = {(r["person_id"], r["trait"]): (r["value_number"], r["value_text"],
                                              r["value_date"]) for r in history}
    assert changes == {
        ("P2", "orders_90d"): (3.0, None, None),
        ("P2", "total_spend"): (25.0, None, None),
        ("P2", "last_purchase"): (None, None, date(2024, 6, 26)),
        ("P2", "favourite_channel"): (None, "web", None),
        ("P3", "orders_90d"): (0.0, None, None),
        ("P3", "total_spend"): (None, None, None),  # the value is gone: a NULL row says so
        ("P3", "last_purchase"): (None, None, None),
        ("P3", "favourite_channel"): (None, None, None),
    }
    assert second.history_rows == 8
    assert ("P3", "total_spend") not in rows_of(shop)
    assert rows_of(shop, trait="days_since_last_visit")[("P1", "days_since_last_visit")] == 3
    third = compute_traits(shop, HISTORY_TRAITS, SOURCES, "R3", later)
    assert third.history_rows == 0
    assert shop.to_arrow(changed_since(shop, datetime(2024, 7, 1))).num_rows == 8
    assert shop.to_arrow(changed_since(shop, days=7, now=later)).num_rows == 13 + 8


def history_of(engine) -> set[tuple]:
    h = engine.table("traits_history")
    return {(r["person_id"], r["trait"], r["value_number"], r["value_text"], r["value_date"],
             r["valid_from"], r["run_id"]) for r in engine.to_arrow(h).to_pylist()}


def test_history_keeps_every_version_without_copying_current_values(shop):
    spend = agg("total_spend", "sum", "amount")
    compute_traits(shop, [spend], SOURCES, "R1", NOW)
    assert shop.count("traits_past") == 0  # first values are held once, in traits
    assert history_of(shop) == {("P1", "total_spend", 180.0, None, None, NOW, "R1"),
                                ("P2", "total_spend", 20.0, None, None, NOW, "R1"),
                                ("P3", "total_spend", 60.0, None, None, NOW, "R1")}
    later, last = datetime(2024, 7, 1), datetime(2024, 7, 2)
    put_entity(shop, "orders", "orders", [o for o in ORDERS if o["order_id"] != "O9"])
    compute_traits(shop, [spend], SOURCES, "R2", later)  # P2: 20 -> 10
    put_entity(shop, "orders", "orders", ORDERS)
    compute_traits(shop, [spend], SOURCES, "R3", last)  # P2: 10 -> 20 again
    p2 = sorted((r[5], r[2], r[6]) for r in history_of(shop) if r[0] == "P2")
    assert p2 == [(NOW, 20.0, "R1"), (later, 10.0, "R2"), (last, 20.0, "R3")]
    unchanged = rows_of(shop, trait="total_spend")
    assert unchanged[("P1", "total_spend")] == 180  # computed by R3, holding since R1:
    p1 = shop.table("traits").filter(shop.table("traits").person_id == "P1")
    runs = {r["run"]: r["run_id"] for r in shop.to_arrow(shop.table("trait_runs")).to_pylist()}
    assert [(runs[r["run"]], runs[r["valid_run"]]) for r in shop.to_arrow(p1).to_pylist()] == [
        ("R3", "R1")]
    # a trait dropped from the project, or no longer tracked, keeps its history
    compute_traits(shop, [agg("orders_90d", "count", window_days=90)], SOURCES, "R4", last)
    assert {r[:3] for r in history_of(shop) if r[1] == "total_spend"} == {
        ("P1", "total_spend", 180.0), ("P2", "total_spend", 20.0),
        ("P2", "total_spend", 10.0), ("P3", "total_spend", 60.0)}
    compute_traits(shop, [agg("orders_90d", "count", window_days=90, history=False)],
                   SOURCES, "R5", last)
    assert {r[2] for r in history_of(shop) if r[1] == "orders_90d"} == {2.0, 1.0, 0.0}
    assert shop.to_arrow(shop.table("traits").valid_from.notnull().any()).as_py() is False


def test_a_warehouse_with_the_old_history_table_is_converted(shop):
    """Before the view, traits_history was a table holding every version, current values
    included, and traits had no valid_from: the first run converts it, losing nothing."""
    traits = [agg("total_spend", "sum", "amount"),
              agg("orders_90d", "count", window_days=90, history=False)]
    compute_traits(shop, traits, SOURCES, "R1", NOW)
    put_entity(shop, "orders", "orders", [o for o in ORDERS if o["order_id"] != "O9"])
    compute_traits(shop, traits, SOURCES, "R2", datetime(2024, 7, 1))
    versions = history_of(shop)
    current = rows_of(shop)
    # the old layout, written by hand
    history_rows = shop.to_arrow(shop.table("traits_history"))
    new, runs = shop.table("traits"), shop.table("trait_runs")
    old_traits = shop.to_arrow(new.join(runs, new.run == runs.run).select(
        "person_id", "trait", "value_number", "value_text", "value_date",
        computed_at=new.computed_at, run_id=runs.run_id))
    shop.con.drop_view("traits_history")
    for name in ("traits_past", "traits", "trait_runs"):
        shop.drop(name)
    shop.con.create_table("traits_history", history_rows)
    shop.con.create_table("traits", old_traits)

    assert store.upgrade(shop) is True
    assert "traits_history" not in shop.base_tables()
    assert history_of(shop) == versions and rows_of(shop) == current
    assert shop.count("traits_past") == 1  # P2's 20, replaced by 10
    assert store.upgrade(shop) is False
    third = compute_traits(shop, traits, SOURCES, "R3", datetime(2024, 7, 1))
    assert third.history_rows == 0 and history_of(shop) == versions


def test_a_failed_trait_keeps_its_previous_values(shop):
    traits = [agg("total_spend", "sum", "amount"), builtin("clv", "clv")]
    compute_traits(shop, traits[:1], SOURCES, "R1", NOW)
    shop.con.insert("traits", shop.table("traits").mutate(trait=ibis.literal("clv")))
    second = compute_traits(shop, traits, SOURCES, "R2", NOW)
    assert "BG/NBD needs" in second.failed["clv"]  # three buyers: too few to fit
    assert rows_of(shop, trait="clv") == {("P1", "clv"): 180, ("P2", "clv"): 20,
                                          ("P3", "clv"): 60}
    assert second.history_rows == 0  # the kept values did not change
    status = {r["name"]: r["status"] for r in
              shop.to_arrow(shop.table(TRAIT_DEFINITIONS)).to_pylist()}
    assert status == {"total_spend": "ok", "clv": "failed"}


def test_the_glossary_says_which_segments_use_a_trait():
    from passerelle.project.segments_models import SegmentConfig
    from passerelle.project.traits_models import TraitDefinitions
    from passerelle.segments.validate import SegmentDefinitions
    from passerelle.traits.glossary import trait_entries

    def segment(name, where):
        return SegmentConfig(name=name, description=name, owner="tests", where=where)

    segments = SegmentDefinitions(segments={
        "loyal": segment("loyal", {"all": [
            {"trait": "spend", "op": ">=", "value": 100},
            {"not": {"any": [{"trait": "rfm_monetary", "op": "<", "value": 2}]}}]}),
        "big": segment("big", {"trait": "spend", "op": ">", "value": 1000}),
        "web": segment("web", {"field": "country", "op": "=", "value": "FR"}),
    })
    traits = TraitDefinitions(traits=[agg("spend", "sum", "amount"), builtin("rfm", "rfm"),
                                      builtin("clv", "clv")], origin={})
    used = {e["name"]: e["used_by"] for e in trait_entries(traits, None, {}, segments)}
    assert used == {"spend": ["segment big", "segment loyal"], "rfm": ["segment loyal"],
                    "clv": []}
