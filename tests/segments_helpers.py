"""A small hand-made world for the segment tests: six profiles, three traits, events and
orders attached to persons through person_map (the identity and staging steps are not run).

now = 2024-06-01 12:00. Hand-computed facts are written next to each row.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import pyarrow as pa

from passerelle.engines.base import Engine
from passerelle.project.segments_models import SegmentConfig
from passerelle.segments import prepare_activity
from traits_helpers import put, put_entity, put_person_map, source

NOW = datetime(2024, 6, 1, 12, 0)
PROFILE_SCHEMA = pa.schema([
    ("person_id", pa.string()), ("customer_id", pa.string()), ("email", pa.string()),
    ("phone", pa.string()), ("first_name", pa.string()), ("last_name", pa.string()),
    ("birth_date", pa.date32()), ("postcode", pa.string()), ("city", pa.string()),
    ("country", pa.string()), ("consent_email", pa.bool_()), ("consent_sms", pa.bool_()),
    ("record_count", pa.int64()), ("first_seen_at", pa.timestamp("us")), ("run_id", pa.string()),
])
PEOPLE: list[dict[str, Any]] = [
    dict(person_id="P1", customer_id="C1", email="alice@example.fr", phone="+33611111111",
         first_name="Alice", last_name="Martin", birth_date=date(1980, 5, 1),
         postcode="75011", city="Paris", country="FR", consent_email=True, consent_sms=True),
    dict(person_id="P2", customer_id="C2", email="bruno@example.fr", phone=None,
         first_name="Bruno", birth_date=date(1995, 2, 2), postcode="69001", city="Lyon",
         country="FR", consent_email=True, consent_sms=False),
    dict(person_id="P3", customer_id="C3", email=None, phone="+32470000000",
         first_name="Chloé", birth_date=None, postcode="1000", city="Bruxelles", country="BE",
         consent_email=True, consent_sms=True),
    dict(person_id="P4", customer_id="C4", email="david@example.fr", phone="+33644444444",
         first_name="David", birth_date=date(2001, 7, 7), postcode="75002", city="Paris",
         country="FR", consent_email=False, consent_sms=None),
    dict(person_id="P5", customer_id="C5", email="eva@example.de", phone=None,
         first_name="Eva", birth_date=date(1970, 1, 1), postcode="10115", city="Berlin",
         country="DE", consent_email=None, consent_sms=None),
    dict(person_id="P6", customer_id=None, email="fanny@example.fr", phone=None,
         first_name="Fanny", birth_date=date(1990, 3, 3), postcode=None, city=None,
         country=None, consent_email=True, consent_sms=False),
]
TRAITS = [  # (person, trait, number, text, date)
    ("P1", "order_count", 3.0, None, None), ("P2", "order_count", 1.0, None, None),
    ("P3", "order_count", 2.0, None, None), ("P4", "order_count", 1.0, None, None),
    ("P1", "favourite_category", None, "shoes", None),
    ("P2", "favourite_category", None, "bags", None),
    ("P3", "favourite_category", None, "shoes", None),
    ("P1", "last_order_date", None, None, date(2024, 5, 20)),
    ("P2", "last_order_date", None, None, date(2023, 1, 10)),
    ("P3", "last_order_date", None, None, date(2024, 5, 25)),
]
TRAIT_KINDS = {"order_count": "number", "favourite_category": "text",
               "last_order_date": "date"}


def days_ago(n: float) -> datetime:
    return NOW - timedelta(days=n)


EVENTS = [  # (message, customer, event, timestamp, properties)
    ("e1", "C1", "Product Viewed", days_ago(1), '{"category": "shoes"}'),
    ("e2", "C1", "Product Viewed", days_ago(5), '{"category": "shoes"}'),
    ("e3", "C1", "Product Viewed", days_ago(20), '{"category": "bags"}'),
    ("e4", "C1", "Product Viewed", days_ago(60), '{"category": "bags"}'),
    ("e5", "C2", "Product Viewed", days_ago(5), '{"category": "shoes", "price": 50}'),
    ("e6", "C3", "Newsletter Opened", days_ago(10), "{}"),
    ("e7", "C4", "Product Viewed", days_ago(100), '{"category": "shoes"}'),
    ("e8", "C4", "Product Viewed", days_ago(101), '{"category": "shoes"}'),
    ("e9", "C4", "Product Viewed", days_ago(102), '{"category": "shoes"}'),
    ("e10", "C5", "Product Viewed", NOW + timedelta(days=1), '{"category": "shoes"}'),
]
ORDERS = [  # (order, customer, ordered_at, [categories])
    ("O1", "C1", datetime(2024, 5, 20), ["shoes", "socks"]),
    ("O2", "C1", datetime(2024, 2, 1), ["shoes"]),
    ("O3", "C1", datetime(2023, 6, 1), ["shoes"]),
    ("O4", "C2", datetime(2023, 1, 10), ["bags"]),
    ("O5", "C3", datetime(2024, 3, 1), ["shoes"]),
    ("O6", "C3", datetime(2024, 5, 25), ["bags"]),
    ("O7", "C4", datetime(2022, 1, 1), ["shoes"]),
]
SOURCES = {"crm": source("crm", "customers"), "web": source("web", "events", "crm"),
           "shop": source("shop", "orders", "crm"), "lines": source("lines", "order_lines")}


def put_profiles(engine: Engine, people: list[dict[str, Any]]) -> None:
    rows = [{"record_count": 1, "first_seen_at": datetime(2024, 1, 1), "run_id": "R1", **p}
            for p in people]
    put(engine, "profiles", PROFILE_SCHEMA, rows)


def put_traits(engine: Engine) -> None:
    schema = pa.schema([("person_id", pa.string()), ("trait", pa.string()),
                        ("value_number", pa.float64()), ("value_text", pa.string()),
                        ("value_date", pa.date32()), ("computed_at", pa.timestamp("us")),
                        ("run_id", pa.string())])
    put(engine, "traits", schema, [
        dict(person_id=p, trait=t, value_number=n, value_text=s, value_date=d,
             computed_at=NOW, run_id="R1") for p, t, n, s, d in TRAITS])


def build_world(engine: Engine) -> None:
    put_profiles(engine, PEOPLE)
    put_traits(engine)
    put_person_map(engine, [("crm", p["customer_id"], p["person_id"]) for p in PEOPLE
                            if p["customer_id"]])
    put_entity(engine, "events", "events", [
        dict(_source="web", message_id=m, type="track", event=e, user_id=c, timestamp=ts,
             properties=props) for m, c, e, ts, props in EVENTS])
    put_entity(engine, "orders", "orders", [
        dict(_source="shop", order_id=o, customer_id=c, ordered_at=ts, amount=10)
        for o, c, ts, _ in ORDERS])
    put_entity(engine, "order_lines", "order_lines", [
        dict(_source="lines", order_id=o, line_number=i + 1, category=cat, amount=5)
        for o, _, _, cats in ORDERS for i, cat in enumerate(cats)])
    prepare_activity(engine, SOURCES, NOW)


def seg(where: dict, name: str = "s", **extra: Any) -> SegmentConfig:
    return SegmentConfig.model_validate({"name": name, "description": "test", "owner": "tests",
                                         "where": where, **extra})


def members(engine: Engine, segment: SegmentConfig, others: dict | None = None,
            now: datetime = NOW) -> set[str]:
    from passerelle.segments import compile_segment

    expr = compile_segment(engine, segment, others or {}, now, TRAIT_KINDS)
    return set(engine.to_arrow(expr)["person_id"].to_pylist())
