"""Anonymous visitors stitched to persons (identify, alias, logged-in events), on DuckDB and
PostgreSQL, against answers worked out by hand."""

from __future__ import annotations

from datetime import datetime

import pyarrow as pa
import pytest

from passerelle.collect.loader import ALIAS_LOG, ALIAS_SCHEMA, ensure_tables
from passerelle.identity.anonymous import ANONYMOUS_IDS, stitch_anonymous
from passerelle.identity.attribution import person_events
from traits_helpers import put_customer_records, put_entity, put_person_map, source

SOURCES = {
    "crm": source("crm", "customers"),
    "web": source("web", "events", "crm"),
}
# message id, user id, anonymous id, e-mail, day of June 2024
EVENTS = [
    ("E1", None, "A1", None, 1),  # anonymous visit of device A1...
    ("E2", "C1", "A1", None, 3),  # ...that logs in as C1 (person P1) two days later
    ("E3", None, "A1", None, 5),  # and comes back without logging in
    ("E4", "C1", "A2", None, 2),  # device A2 is shared: C1 logged in on it...
    ("E5", "C2", "A2", None, 4),  # ...and C2 (person P2) too
    ("E6", None, "A2", None, 6),  # whose visit is this? nobody's
    ("E7", None, "A3", None, 1),  # A3 is only known from an identify call (aliases)
    ("E8", "old-9", None, None, 2),  # a user id the site replaced (alias previousId)
    ("E9", None, "A4", "c3@x.fr", 7),  # a newsletter form sent the e-mail of C3 (P3)
    ("E10", None, "A4", None, 8),
    ("E11", None, "A5", None, 9),  # never identified
]


@pytest.fixture
def site(engine):
    put_person_map(engine, [("crm", "C1", "P1"), ("crm", "C2", "P2"), ("crm", "C3", "P3")])
    put_customer_records(engine, [
        {"_source": "crm", "customer_id": "C1"}, {"_source": "crm", "customer_id": "C2"},
        {"_source": "crm", "customer_id": "C3", "email": "c3@x.fr"}])
    put_entity(engine, "events", "events", [
        {"_source": "web", "message_id": m, "type": "track", "user_id": u, "anonymous_id": a,
         "email": e, "timestamp": datetime(2024, 6, d)} for m, u, a, e, d in EVENTS])
    ensure_tables(engine)
    aliases = pa.Table.from_pylist([
        {"source": "web", "anonymous_id": "A3", "user_id": "C3", "previous_id": None,
         "first_seen": datetime(2024, 6, 3), "last_seen": datetime(2024, 6, 3),
         "_load_id": "L1"},
        {"source": "web", "anonymous_id": None, "user_id": "C3", "previous_id": "old-9",
         "first_seen": datetime(2024, 6, 4), "last_seen": datetime(2024, 6, 4),
         "_load_id": "L1"},
        # an alias whose user id is no customer record says nothing
        {"source": "web", "anonymous_id": "A5", "user_id": "C404", "previous_id": None,
         "first_seen": datetime(2024, 6, 9), "last_seen": datetime(2024, 6, 9),
         "_load_id": "L1"},
    ], schema=ALIAS_SCHEMA.to_pyarrow())
    engine.append_arrow(ALIAS_LOG, aliases.to_reader())
    return engine


def test_stitching_attributes_earlier_visits_and_refuses_shared_devices(site):
    result = stitch_anonymous(site, SOURCES, "R1")
    assert (result.stitched, result.ambiguous) == (4, 1)  # A1, A3, old-9, A4 | A2
    stitched = {r["anonymous_id"]: (r["person_id"], r["evidence"]) for r in
                site.to_arrow(site.table(ANONYMOUS_IDS)).to_pylist()}
    assert stitched == {"A1": ("P1", "event"), "A3": ("P3", "alias"),
                        "old-9": ("P3", "alias"), "A4": ("P3", "event")}

    events = {r["message_id"]: (r["person_id"], r["matched_by"])
              for r in site.to_arrow(person_events(site, SOURCES)).to_pylist()}
    assert events == {
        "E1": ("P1", "anonymous_id"), "E2": ("P1", "user_id"), "E3": ("P1", "anonymous_id"),
        "E4": ("P1", "user_id"), "E5": ("P2", "user_id"),
        "E7": ("P3", "anonymous_id"), "E8": ("P3", "alias"),
        "E9": ("P3", "email"), "E10": ("P3", "anonymous_id"),
    }  # E6: shared device; E11: never identified


def test_stitching_follows_identity_changes(site):
    stitch_anonymous(site, SOURCES, "R1")
    # C1 and C2 turn out to be one person: the shared device is no longer ambiguous
    put_person_map(site, [("crm", "C1", "P1"), ("crm", "C2", "P1"), ("crm", "C3", "P3")])
    result = stitch_anonymous(site, SOURCES, "R2")
    assert (result.stitched, result.ambiguous) == (5, 0)
    events = {r["message_id"]: r["person_id"]
              for r in site.to_arrow(person_events(site, SOURCES)).to_pylist()}
    assert events["E6"] == "P1"


def test_without_events_or_aliases_the_table_is_empty(duckdb_engine):
    put_person_map(duckdb_engine, [("crm", "C1", "P1")])
    assert stitch_anonymous(duckdb_engine, SOURCES, "R1").stitched == 0
    assert duckdb_engine.count(ANONYMOUS_IDS) == 0
