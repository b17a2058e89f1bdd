"""Audiences: consent and identifier exclusions counted, holdout stable and ~10 %."""

from __future__ import annotations

from datetime import timedelta

import pytest

from passerelle.project.segments_models import AudienceConfig
from passerelle.segments import (
    AUDIENCE_HOLDOUTS,
    AUDIENCE_MEMBERS,
    build_audience,
    holdout_group,
    refresh_memberships,
    write_audience,
)
from passerelle.segments.kinds import SegmentError
from segments_helpers import NOW, PEOPLE, PROFILE_SCHEMA, build_world, put_profiles, seg
from traits_helpers import put

EVERYONE = seg({"field": "person_id", "op": "not_null"}, name="everyone")


def _audience(channel: str, pct: float = 0.0, **kw) -> AudienceConfig:
    return AudienceConfig(name=f"all_{channel}", channel=channel, holdout_percent=pct,
                          segment="everyone", **kw)


@pytest.mark.parametrize("channel, expected", [
    # members P1..P6; consent_email T: P1 P2 P3 P6 (P3 has no e-mail); P4 F, P5 NULL
    ("email", dict(no_consent=2, no_identifier=1, eligible=3, ids={"P1", "P2", "P6"})),
    # consent_sms T: P1 P3, both with a phone
    ("sms", dict(no_consent=4, no_identifier=0, eligible=2, ids={"P1", "P3"})),
    # a marketing consent (P1 P2 P3 P6) and a customer id (P6 has none)
    ("push", dict(no_consent=2, no_identifier=1, eligible=3, ids={"P1", "P2", "P3"})),
    # an identifier consented to: P1 (both), P2 (e-mail), P3 (phone), P6 (e-mail)
    ("ads", dict(no_consent=2, no_identifier=0, eligible=4, ids={"P1", "P2", "P3", "P6"})),
])
def test_consent_and_identifier_exclusions(duckdb_engine, channel, expected):
    engine = duckdb_engine
    build_world(engine)
    rows, summary = build_audience(engine, _audience(channel), NOW,
                                   segments={"everyone": EVERYONE})
    assert summary.segment_members == 6
    assert (summary.no_consent, summary.no_identifier, summary.eligible) == (
        expected["no_consent"], expected["no_identifier"], expected["eligible"])
    assert summary.holdout == 0 and summary.treated == expected["eligible"]
    got = engine.to_arrow(rows).to_pylist()
    assert {r["person_id"] for r in got} == expected["ids"]
    by_id = {r["person_id"]: r for r in got}
    if channel == "ads":  # only identifiers the person consented to are written
        assert by_id["P2"]["phone"] is None and by_id["P3"]["email"] is None
    if channel == "email":  # the phone too when SMS was consented to (Brevo's SMS column)
        assert by_id["P1"]["phone"] is not None and by_id["P2"]["phone"] is None
    if channel == "sms":
        assert by_id["P1"]["email"] is not None and by_id["P3"]["email"] is None


def test_ads_write_only_the_identifiers_consented_to(duckdb_engine):
    """Everyone has both an e-mail and a phone here, so an identifier written without its
    consent shows (the shared world leaves P2 without a phone and P3 without an e-mail)."""
    engine = duckdb_engine
    build_world(engine)
    people = [{**p, "email": p["email"] or f"{p['person_id'].lower()}@example.fr",
               "phone": p["phone"] or f"+3360000000{p['person_id'][1]}"} for p in PEOPLE]
    for p in people:
        if p["person_id"] == "P4":  # refused e-mails, accepts texts
            p["consent_sms"] = True
    put_profiles(engine, people)
    rows, summary = build_audience(engine, _audience("ads"), NOW,
                                   segments={"everyone": EVERYONE})
    # P5 expressed no consent at all: left out although both identifiers are known
    assert (summary.no_consent, summary.no_identifier, summary.eligible) == (1, 0, 5)
    by_id = {r["person_id"]: r for r in engine.to_arrow(rows).to_pylist()}
    assert set(by_id) == {"P1", "P2", "P3", "P4", "P6"}
    written = {pid: (r["email"] is not None, r["phone"] is not None) for pid, r in by_id.items()}
    consented = {p["person_id"]: (bool(p["consent_email"]), bool(p["consent_sms"]))
                 for p in people if p["person_id"] in by_id}
    assert written == consented
    assert written["P2"] == (True, False) and written["P4"] == (False, True)


def test_audience_from_refreshed_members_is_written(engine):
    build_world(engine)
    refresh_memberships(engine, {"everyone": EVERYONE}, "R1", NOW)
    summary = write_audience(engine, _audience("email"), NOW, "R1")
    assert summary.eligible == 3
    rows = engine.to_arrow(engine.table(AUDIENCE_MEMBERS).order_by("person_id")).to_pylist()
    assert [(r["audience"], r["person_id"], r["group"], r["email"], r["run_id"]) for r in rows] \
        == [("all_email", "P1", "treated", "alice@example.fr", "R1"),
            ("all_email", "P2", "treated", "bruno@example.fr", "R1"),
            ("all_email", "P6", "treated", "fanny@example.fr", "R1")]
    # rebuilding replaces this audience's rows, it does not add to them
    write_audience(engine, _audience("email"), NOW, "R2")
    assert engine.count(AUDIENCE_MEMBERS) == 3
    # activation sends exactly the group the audience calls treated
    from passerelle.activation.members import treated

    assert engine.to_arrow(treated(engine, "all_email")).num_rows == summary.treated


def test_an_empty_build_is_recorded_as_built(engine):
    """Nobody eligible is a build like any other: freshness says built (with the exclusion
    counts), and activation says empty rather than "never built"."""
    from passerelle.activation import DestinationError
    from passerelle.activation.members import sendable_build
    from passerelle.segments.audience import audience_freshness

    build_world(engine)
    nobody = seg({"field": "person_id", "op": "=", "value": "P4"}, name="everyone")
    refresh_memberships(engine, {"everyone": nobody}, "R1", NOW)  # P4 refused e-mails
    summary = write_audience(engine, _audience("email"), NOW, "R1")
    assert (summary.segment_members, summary.no_consent, summary.treated) == (1, 1, 0)
    [row] = audience_freshness(engine, {"all_email": _audience("email")}, NOW)
    assert row["built_at"] == NOW and row["treated"] == 0 and row["no_consent"] == 1
    assert row["why"] != "never built: run `passerelle run`"
    with pytest.raises(DestinationError, match=r"is empty.*1 without consent for email"):
        sendable_build(engine, "all_email")
    with pytest.raises(DestinationError, match="'all_sms' was never built"):
        sendable_build(engine, "all_sms")


def test_never_refreshed_segment_is_a_clear_error(duckdb_engine):
    build_world(duckdb_engine)
    with pytest.raises(SegmentError, match="never been refreshed"):
        build_audience(duckdb_engine, _audience("email"), NOW)


def test_holdout_is_about_ten_percent_and_stable(engine):
    n = 10_000
    people = [dict(person_id=f"Q{i:05d}", email=f"p{i}@example.fr", consent_email=True)
              for i in range(n)]
    put(engine, "profiles", PROFILE_SCHEMA, people)
    audience = AudienceConfig(name="newsletter", channel="email", segment="everyone")
    assert audience.holdout_percent == 10
    segments = {"everyone": EVERYONE}
    first = write_audience(engine, audience, NOW, "R1", segments=segments)
    assert first.eligible == n
    assert 900 <= first.holdout <= 1100  # 10 % of 10,000; binomial sd 30
    held = engine.table(AUDIENCE_MEMBERS)
    held1 = set(engine.to_arrow(held.filter(held.group == "holdout"))["person_id"].to_pylist())
    assert len(held1) == first.holdout

    second = write_audience(engine, audience, NOW + timedelta(days=1), "R2", segments=segments)
    held = engine.table(AUDIENCE_MEMBERS)
    held2 = set(engine.to_arrow(held.filter(held.group == "holdout"))["person_id"].to_pylist())
    assert held2 == held1 and second.holdout == first.holdout
    # Python and SQL agree on every person
    sample = sorted(held1)[:20] + [f"Q{i:05d}" for i in range(20)]
    for pid in sample:
        assert holdout_group(pid, audience) == ("holdout" if pid in held1 else "treated")
    # the holdout list is kept for measurement, once per person
    assert engine.count(AUDIENCE_HOLDOUTS) == len(held1)
    # a larger holdout keeps everyone already held out
    wider = audience.model_copy(update={"holdout_percent": 20})
    write_audience(engine, wider, NOW + timedelta(days=2), "R3", segments=segments)
    held = engine.table(AUDIENCE_MEMBERS)
    held3 = set(engine.to_arrow(held.filter(held.group == "holdout"))["person_id"].to_pylist())
    assert held1 < held3 and 1800 <= len(held3) <= 2200
    # another salt draws another holdout
    other = audience.model_copy(update={"salt": "spring-2024"})
    rows, _ = build_audience(engine, other, NOW, segments=segments)
    held4 = set(engine.to_arrow(rows.filter(rows.group == "holdout"))["person_id"].to_pylist())
    assert len(held4 & held1) < len(held1) / 2


def test_holdout_table_schema_is_stable(duckdb_engine):
    """audience_members keeps the contract the activation side reads."""
    build_world(duckdb_engine)
    write_audience(duckdb_engine, _audience("sms", 50), NOW, "R1",
                   segments={"everyone": EVERYONE})
    schema = duckdb_engine.table(AUDIENCE_MEMBERS).schema()
    assert list(schema.names) == ["audience", "person_id", "group", "email", "phone", "run_id",
                                  "built_at"]
