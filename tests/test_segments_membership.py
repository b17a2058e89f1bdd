"""Memberships across refreshes: entered/exited history, "new since", "member on date",
identity merges and splits, skipping unchanged segments, freshness."""

from __future__ import annotations

from datetime import timedelta

import ibis

from passerelle.segments import (
    changes_since,
    freshness,
    members_on,
    new_members_since,
    refresh_memberships,
    was_member,
)
from passerelle.segments.membership import HISTORY, MEMBERSHIP
from segments_helpers import NOW, PEOPLE, build_world, put_profiles, seg

FR = seg({"field": "country", "op": "=", "value": "FR"}, name="fr", refresh_every="1h")
RECENT = seg({"did": {"event": "Product Viewed", "in_last_days": 30}}, name="recent_viewers",
             refresh_every="15m")
EMPTY = seg({"field": "country", "op": "=", "value": "JP"}, name="nobody")
SEGMENTS = {"fr": FR, "recent_viewers": RECENT, "nobody": EMPTY}


def _ids(engine, expr) -> set[str]:
    return set(engine.to_arrow(expr)["person_id"].to_pylist())


def _current(engine, segment: str) -> set[str]:
    m = engine.table(MEMBERSHIP)
    return _ids(engine, m.filter(m.segment == segment))


def _history(engine, segment: str) -> list[tuple]:
    h = engine.table(HISTORY)
    rows = engine.to_arrow(h.filter(h.segment == segment).order_by(
        ["person_id", "entered_at"])).to_pylist()
    return [(r["person_id"], r["entered_run"], r["exited_run"], r["exit_reason"])
            for r in rows]


def test_history_across_refreshes(engine):
    build_world(engine)
    t1, t2 = NOW, NOW + timedelta(hours=2)
    first = refresh_memberships(engine, SEGMENTS, "R1", t1)
    assert first.refreshed == {"fr": {"members": 3, "entered": 3, "exited": 0},
                               "recent_viewers": {"members": 2, "entered": 2, "exited": 0},
                               "nobody": {"members": 0, "entered": 0, "exited": 0}}
    assert _current(engine, "fr") == {"P1", "P2", "P4"}

    # P2 moves to Belgium, P7 (French) appears
    people = [dict(p, country="BE") if p["person_id"] == "P2" else p for p in PEOPLE]
    people.append(dict(person_id="P7", customer_id="C7", email="g@example.fr", country="FR"))
    put_profiles(engine, people)
    second = refresh_memberships(engine, SEGMENTS, "R2", t2)
    assert second.refreshed["fr"] == {"members": 3, "entered": 1, "exited": 1}
    assert _current(engine, "fr") == {"P1", "P4", "P7"}
    assert _history(engine, "fr") == [("P1", "R1", None, None), ("P2", "R1", "R2", "condition"),
                                      ("P4", "R1", None, None), ("P7", "R2", None, None)]
    # entered_at of those who stayed is still the first refresh
    m = engine.table(MEMBERSHIP)
    kept = engine.to_arrow(m.filter((m.segment == "fr") & (m.person_id == "P1"))).to_pylist()
    assert kept[0]["entered_at"] == t1 and kept[0]["run_id"] == "R1"

    assert _ids(engine, new_members_since(engine, "fr", t1)) == {"P7"}
    assert _ids(engine, members_on(engine, "fr", t1 + timedelta(minutes=1))) == {
        "P1", "P2", "P4"}
    assert _ids(engine, members_on(engine, "fr", t2)) == {"P1", "P4", "P7"}
    assert _ids(engine, members_on(engine, "fr", t1 - timedelta(days=1))) == set()
    assert was_member(engine, "fr", "P2", t1 + timedelta(hours=1))
    assert not was_member(engine, "fr", "P2", t2)
    diff = engine.to_arrow(changes_since(engine, "fr", t1)).to_pylist()
    assert sorted((r["person_id"], r["change"]) for r in diff) == [("P2", "exited"),
                                                                   ("P7", "entered")]
    assert _current(engine, "nobody") == set()


def test_unchanged_segments_are_skipped_until_due(engine):
    build_world(engine)
    refresh_memberships(engine, SEGMENTS, "R1", NOW)
    # nothing changed, 10 minutes later: nothing is recomputed
    again = refresh_memberships(engine, SEGMENTS, "R2", NOW + timedelta(minutes=10))
    assert again.refreshed == {} and sorted(again.unchanged) == ["fr", "nobody",
                                                                 "recent_viewers"]
    # 20 minutes later the windowed segment is due (15m) and recomputed; the others are not
    # (no window: the clock alone cannot change them)
    due = refresh_memberships(engine, SEGMENTS, "R3", NOW + timedelta(minutes=30))
    assert list(due.refreshed) == ["recent_viewers"]
    # a changed definition is recomputed at once
    wider = {**SEGMENTS, "fr": seg({"field": "country", "op": "in", "value": ["FR", "BE"]},
                                   name="fr", refresh_every="1h")}
    changed = refresh_memberships(engine, wider, "R4", NOW + timedelta(minutes=31))
    assert list(changed.refreshed) == ["fr"]
    assert changed.refreshed["fr"]["entered"] == 1  # P3 (BE)

    status = {r["segment"]: r for r in freshness(engine, NOW + timedelta(minutes=32))}
    assert status["fr"]["last_refreshed_at"] == NOW + timedelta(minutes=31)
    assert status["fr"]["next_refresh_at"] == NOW + timedelta(minutes=91)
    assert status["fr"]["stale"] is False and status["fr"]["members"] == 4
    later = {r["segment"]: r for r in freshness(engine, NOW + timedelta(hours=3))}
    assert later["fr"]["stale"] is True


def test_identity_merge_and_split_flow_through(engine):
    build_world(engine)
    refresh_memberships(engine, {"fr": FR}, "R1", NOW)
    # identity merges P4 into P1 (P4 disappears) and splits P8 off P2
    people = [p for p in PEOPLE if p["person_id"] != "P4"]
    people.append(dict(person_id="P8", customer_id="C8", email="h@example.fr", country="FR"))
    put_profiles(engine, people)
    changes = ibis.memtable({"run_id": ["R2", "R2"], "kind": ["merge", "split"],
                             "person_id": ["P1", "P8"], "related_person_ids": ["P4", "P2"],
                             "records": [2, 1]})
    engine.replace_table("person_id_changes", changes)
    out = refresh_memberships(engine, {"fr": FR}, "R2", NOW + timedelta(minutes=5))
    assert out.refreshed["fr"] == {"members": 3, "entered": 1, "exited": 1}
    assert _current(engine, "fr") == {"P1", "P2", "P8"}
    assert ("P4", "R1", "R2", "person_id_changed") in _history(engine, "fr")
    assert ("P8", "R2", None, None) in _history(engine, "fr")


def test_a_failing_segment_keeps_its_members_and_is_stale(engine):
    build_world(engine)
    refresh_memberships(engine, {"fr": FR}, "R1", NOW)
    broken = seg({"field": "no_such_field", "op": "=", "value": "x"}, name="fr")
    out = refresh_memberships(engine, {"fr": broken}, "R2", NOW + timedelta(hours=2))
    assert "no_such_field" in out.failed["fr"]
    assert _current(engine, "fr") == {"P1", "P2", "P4"}
    status = freshness(engine, NOW + timedelta(hours=2))[0]
    assert status["status"] == "failed" and status["stale"] is True


def test_segments_step_refreshes_and_builds_audiences(engine):
    from passerelle.project.segments_models import AudienceConfig
    from passerelle.segments import SegmentDefinitions, run_segments_step
    from segments_helpers import SOURCES

    build_world(engine)
    fr = seg({"field": "country", "op": "=", "value": "FR"}, name="fr",
             audiences=[{"name": "fr_email", "channel": "email", "holdout_percent": 0}])
    defs = SegmentDefinitions(segments={"fr": fr}, audiences={a.name: a for a in fr.audiences})
    assert isinstance(defs.audiences["fr_email"], AudienceConfig)
    out = run_segments_step(engine, defs, SOURCES, "R1", NOW)
    assert out.activity == {"segment_events": 10, "segment_orders": 7,
                            "segment_purchases": 8}
    assert out.memberships.refreshed["fr"]["members"] == 3
    # fr = P1 P2 P4; P4 refused e-mails
    summary = out.audiences["fr_email"]
    assert (summary.segment_members, summary.no_consent, summary.eligible) == (3, 1, 2)
