"""Event-driven refresh: new events arrive, only the segments over events are brought up to
date from the people whose answer can have changed, and the result (members and history)
is the one a full refresh gives."""

from __future__ import annotations

from datetime import timedelta

from passerelle.segments import prepare_activity, refresh_memberships
from passerelle.segments.activity import ARRIVALS, refresh_events
from passerelle.segments.incremental import candidates, event_segments, refresh_after_events
from passerelle.segments.membership import HISTORY, MEMBERSHIP, STATUS
from segments_helpers import EVENTS, NOW, SOURCES, TRAIT_KINDS, build_world, members, seg
from traits_helpers import put_entity

LATER = NOW + timedelta(days=11)  # P1's view of 20 days ago leaves a 30-day window
SEGMENTS = {
    # at NOW: P1 (3 views in 30 days); at LATER: P2 (3 with the new ones), not P1 (2 left)
    "keen": seg({"did": {"event": "Product Viewed", "at_least": 3, "in_last_days": 30}},
                name="keen"),
    # P5's view stamped NOW + 1 day enters the window as time passes
    "viewers": seg({"did": {"event": "Product Viewed", "in_last_days": 30}}, name="viewers"),
    # P3 opened 10 days before NOW: out at NOW, in at LATER (21 days)
    "quiet": seg({"not": {"did": {"event": "Newsletter Opened", "in_last_days": 15}}},
                 name="quiet"),
    "keen_fr": seg({"all": [{"in_segment": "keen"},
                            {"field": "country", "op": "=", "value": "FR"}]}, name="keen_fr"),
    "fr": seg({"field": "country", "op": "=", "value": "FR"}, name="fr"),
}
NEW_EVENTS = [  # P2 views twice more
    ("n1", "C2", "Product Viewed", LATER - timedelta(hours=2), '{"category": "bags"}'),
    ("n2", "C2", "Product Viewed", LATER - timedelta(hours=1), '{"category": "bags"}'),
]


def _put_events(engine, rows) -> None:
    put_entity(engine, "events", "events", [
        dict(_source="web", message_id=m, type="track", event=e, user_id=c, timestamp=ts,
             properties=props) for m, c, e, ts, props in rows])


def _stored(engine) -> dict[str, set[str]]:
    rows = engine.to_arrow(engine.table(MEMBERSHIP)).to_pylist()
    out: dict[str, set[str]] = {name: set() for name in SEGMENTS}
    for r in rows:
        out[r["segment"]].add(r["person_id"])
    return out


def _history(engine) -> list[tuple]:
    h = engine.table(HISTORY)
    rows = engine.to_arrow(h.order_by(["segment", "person_id", "entered_at"])).to_pylist()
    return [(r["segment"], r["person_id"], r["entered_run"], r["exited_run"],
             r["exit_reason"]) for r in rows]


def test_event_segments_include_their_dependants():
    assert event_segments(SEGMENTS) == ["keen", "viewers", "quiet", "keen_fr"]


def test_new_events_and_time_refresh_incrementally(engine):
    build_world(engine)
    refresh_memberships(engine, SEGMENTS, "R1", NOW, trait_kinds=TRAIT_KINDS)
    before = _stored(engine)
    assert before["keen"] == {"P1"} and "P3" not in before["quiet"]
    assert "P5" not in before["viewers"]

    _put_events(engine, EVENTS + NEW_EVENTS)
    assert refresh_events(engine, SOURCES, LATER) == 1  # (P2, Product Viewed)
    summary = refresh_after_events(engine, SEGMENTS, "R2", LATER, trait_kinds=TRAIT_KINDS)

    assert set(summary.incremental) == {"keen", "viewers", "quiet", "keen_fr"}
    assert not summary.failed
    # only people with new events or with events crossing a window edge were looked at
    assert summary.incremental["keen"] < len(before["fr"]) + 3
    stored = _stored(engine)
    for name, segment in SEGMENTS.items():
        assert stored[name] == members(engine, segment, SEGMENTS, LATER), name
    assert stored["keen"] == {"P2"}
    assert "P5" in stored["viewers"] and "P3" in stored["quiet"]
    assert summary.refreshed["keen"] == {"members": 1, "entered": 1, "exited": 1}

    history = _history(engine)
    assert ("keen", "P1", "R1", "R2", "condition") in history
    assert ("keen", "P2", "R2", None, None) in history
    assert ("quiet", "P3", "R2", None, None) in history
    # the segment without events was not touched
    status = {r["segment"]: r for r in engine.to_arrow(engine.table(STATUS)).to_pylist()}
    assert status["fr"]["run_id"] == "R1"
    assert status["keen"]["evaluated_at"] == LATER and status["keen"]["status"] == "refreshed"
    # arrivals every segment has seen are forgotten
    assert engine.count(ARRIVALS) == 0

    # a full refresh at the same instant finds nothing to change
    full = refresh_memberships(engine, SEGMENTS, "R3", LATER, full=True,
                               trait_kinds=TRAIT_KINDS)
    for name in SEGMENTS:
        assert full.refreshed[name]["entered"] == 0, name
        assert full.refreshed[name]["exited"] == 0, name
    assert _history(engine) == history


def test_candidates_are_people_with_moving_rows(engine):
    build_world(engine)
    # between NOW and NOW + 1 h nothing crosses a 30-day edge and nothing arrived
    people = candidates(engine, "keen", SEGMENTS, NOW, NOW + timedelta(hours=1))
    assert engine.to_arrow(people).num_rows == 0
    # P1's view of 20 days ago leaves the window by LATER; P5's future view comes in
    people = candidates(engine, "keen", SEGMENTS, NOW, LATER)
    assert set(engine.to_arrow(people)["person_id"].to_pylist()) == {"P1", "P5"}


def test_a_rebuild_by_run_forces_a_full_refresh(engine):
    build_world(engine)
    refresh_memberships(engine, SEGMENTS, "R1", NOW, trait_kinds=TRAIT_KINDS)
    _put_events(engine, EVENTS + NEW_EVENTS)
    # `passerelle run` rebuilt the events without logging who changed
    prepare_activity(engine, SOURCES, LATER - timedelta(minutes=5))
    summary = refresh_after_events(engine, SEGMENTS, "R2", LATER, trait_kinds=TRAIT_KINDS)
    assert summary.incremental == {}
    assert set(summary.refreshed) == {"keen", "viewers", "quiet", "keen_fr"}
    assert _stored(engine)["keen"] == {"P2"}


def test_changed_definition_refreshes_in_full(engine):
    build_world(engine)
    refresh_memberships(engine, SEGMENTS, "R1", NOW, trait_kinds=TRAIT_KINDS)
    changed = dict(SEGMENTS, keen=seg({"did": {"event": "Product Viewed", "at_least": 2,
                                               "in_last_days": 30}}, name="keen"))
    summary = refresh_after_events(engine, changed, "R2", NOW + timedelta(minutes=5),
                                   trait_kinds=TRAIT_KINDS)
    assert "keen" not in summary.incremental and "keen" in summary.refreshed
    assert "keen_fr" not in summary.incremental  # it references keen
    assert "viewers" in summary.incremental
    assert _stored(engine)["keen"] == {"P1"}
