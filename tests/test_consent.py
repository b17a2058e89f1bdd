"""Consent by purpose: the reconciliation rule, the mappings (source column, standard field,
collector categoryPreferences), audiences and exports that leave out and count the people
without consent, the defaults of a project without consent.yml, and located errors."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pytest

from consent_helpers import SEGMENT, open_run, person_of, state, write_project
from passerelle.activation import activate, parse_destination
from passerelle.activation.sync import STATE_SCHEMA, SYNC_STATE, changes
from passerelle.consent.build import STATEMENTS_SCHEMA, current_expr
from passerelle.core import validate_folder
from passerelle.identity.view import person_view
from passerelle.project.consent_models import SourceMapping


def _at(day: int, hour: int = 10) -> datetime:
    return datetime(2024, 1, day, hour)


def test_reconciliation_latest_wins_withdrawal_wins_ties(engine):
    rows = [  # (person, purpose, granted, at, source, record)
        ("late_grant", "news", False, _at(1), "crm", "r1"),
        ("late_grant", "news", True, _at(2), "shop", "r2"),
        ("late_withdrawal", "news", True, _at(1), "crm", "r3"),  # the most trusted source
        ("late_withdrawal", "news", False, _at(3), "web", "m1"),
        ("tie", "news", True, _at(5), "aaa", "r4"),  # sorts first by source: still loses
        ("tie", "news", False, _at(5), "zzz", "r5"),
        ("tie", "ads", True, _at(5), "aaa", "r6"),  # another purpose: its own state
    ]
    names = ["person_id", "purpose", "granted", "stated_at", "source", "record"]
    data = {n: [r[i] for r in rows] for i, n in enumerate(names)}
    data |= {"origin": ["column"] * len(rows), "detail": ["x"] * len(rows),
             "run_id": ["R"] * len(rows)}
    engine.append_arrow("stmts", pa.table(data).select(STATEMENTS_SCHEMA.names).to_reader())
    current = engine.to_arrow(current_expr(engine.table("stmts"))).to_pylist()
    got = {(r["person_id"], r["purpose"]): (r["granted"], r["record"], r["statements"])
           for r in current}
    assert got == {
        ("late_grant", "news"): (True, "r2", 2),
        ("late_withdrawal", "news"): (False, "m1", 2),
        ("tie", "news"): (False, "r5", 2),
        ("tie", "ads"): (True, "r6", 1),
    }


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def project(request, tmp_path: Path):
    proj, result = open_run(write_project(tmp_path / "p", request.param))
    proj.result = result
    yield proj
    if request.param == "postgres":
        proj.engine.drop_schema()
    proj.close()


def test_purposes_from_columns_fields_and_events_and_audiences_count(project):
    # see consent_helpers for the hand-computed states
    assert state(project, "email_marketing") == {"anna": False, "ben": True, "cleo": False,
                                                 "dan": True}
    assert state(project, "newsletter") == {"anna": True, "ben": True, "cleo": False}
    assert state(project, "ad_audiences") == {"ben": True, "cleo": False}
    e = project.engine
    c = e.table("consents")
    proof = e.to_arrow(c.filter(c.purpose == "newsletter").select(
        "person_id", "source", "origin", "record", "detail")).to_pylist()
    by_person = {r["person_id"]: r for r in proof}
    anna, ben = person_of(project, "anna@example.fr"), person_of(project, "ben@example.fr")
    assert by_person[anna] | {"person_id": ""} == {
        "person_id": "", "source": "crm", "origin": "column", "record": "C1",
        "detail": "optin_newsletter"}
    assert by_person[ben] | {"person_id": ""} == {
        "person_id": "", "source": "web", "origin": "event", "record": "m-ben",
        "detail": "Email Marketing"}

    audiences = project.result.segments.audiences
    mail, news = audiences["everyone_mail"], audiences["everyone_news"]
    assert (mail.purpose, mail.no_consent, mail.treated) == ("email_marketing", 2, 2)
    assert (news.purpose, news.no_consent, news.treated) == ("newsletter", 2, 2)
    a = e.table("audience_members")
    members = e.to_arrow(a.filter(a.audience == "everyone_news").select("email")).to_pylist()
    assert sorted(r["email"] for r in members) == ["anna@example.fr", "ben@example.fr"]
    b = e.table("audience_builds")
    row = e.to_arrow(b.filter(b.audience == "everyone_news")).to_pylist()[0]
    assert (row["purpose"], row["no_consent"]) == ("newsletter", 2)

    view = person_view(e, ben, orders_sources={}, events_sources={"web": "shop"})
    purposes = {p["purpose"]: p for p in view["consents"]["purposes"]}
    assert purposes["newsletter"]["granted"] is True
    assert purposes["newsletter"]["record"] == "m-ben" and purposes["newsletter"][
        "statements"] == 2
    assert len([s for s in view["consents"]["statements"] if s["purpose"] == "newsletter"]) == 2


def test_every_exit_sends_only_the_purpose_granted_and_counts_the_others(project, tmp_path):
    e = project.engine
    # the newsletter audience (Anna, Ben) sent for ad audiences: Anna never granted it
    dest = parse_destination({"type": "csv", "format": "generic", "purpose": "ad_audiences",
                              "path": "exports/{audience}.csv"})
    result = activate(e, "everyone_news", dest, name="ads_file", root=project.root)
    lines = Path(result.file_path).read_text().splitlines()
    assert [line.split(",")[1] for line in lines[1:]] == ["ben@example.fr"]
    assert (result.people, result.no_consent, result.purpose) == (1, 1, "ad_audiences")
    assert "1 left out for lack of consent (ad_audiences)" in result.detail
    # without a purpose of its own the destination sends under the audience's
    plain = parse_destination({"type": "csv", "path": "exports/plain.csv"})
    result = activate(e, "everyone_news", plain, name="plain", root=project.root)
    assert (result.people, result.no_consent, result.purpose) == (2, 0, "newsletter")
    # a webhook sync's entries follow the same filter
    e.create_empty(SYNC_STATE, STATE_SCHEMA)
    diff = e.to_arrow(changes(e, "everyone_news", "hook", {}, "ad_audiences")).to_pylist()
    assert [(r["email"], r["change"]) for r in diff] == [("ben@example.fr", "entered")]


def test_without_consent_yml_the_two_flags_are_two_purposes(tmp_path):
    proj, result = open_run(write_project(tmp_path / "p", consent=None, segment=SEGMENT.replace(
        "    purpose: newsletter\n", "")))
    try:
        assert set(proj.definition.consent.purposes) == {"email_marketing", "sms_marketing"}
        # the audience is what the golden record's flag gave before purposes
        e = proj.engine
        p = e.table("profiles")
        flagged = e.to_arrow(p.filter(p.consent_email).select("email")).to_pylist()
        a = e.table("audience_members")
        sent = e.to_arrow(a.filter(a.audience == "everyone_mail").select("email")).to_pylist()
        assert sorted(r["email"] for r in sent) == sorted(r["email"] for r in flagged) == [
            "ben@example.fr", "dan@example.fr"]
        assert result.segments.audiences["everyone_news"].purpose == "email_marketing"
    finally:
        proj.close()


def test_yaml_booleans_in_value_lists_match_the_words_written():
    # `granted: [yes]` reaches the model as True: the column's "yes" must still grant
    m = SourceMapping.model_validate({"column": "optin", "granted": [True, "O"],
                                      "withdrawn": [False]})
    assert {"yes", "true", "on", "O"} <= set(m.granted) and "no" in m.withdrawn


def _problems(root: Path) -> set[tuple[str, int | None, str]]:
    _, problems = validate_folder(root)
    return {(p.file, p.line, p.message) for p in problems.items}


def test_unknown_purpose_source_and_column_are_located(tmp_path):
    root = write_project(tmp_path / "p", consent="""\
purposes:
  newsletter:
    sources:
      crm: {column: optin_newsleter}
      nowhere: {column: x}
""", segment=SEGMENT.replace("purpose: newsletter", "purpose: newsleter"))
    (root / "destinations").mkdir()
    (root / "destinations" / "ads.yml").write_text(
        "type: csv\npath: exports/x.csv\npurpose: ad_audience\n")
    found = _problems(root)
    assert ("consent.yml", 5, "purposes.newsletter.sources: 'nowhere' is not a customer "
            "source") in found
    assert ("consent.yml", 4, "purposes.newsletter.sources.crm: column 'optin_newsleter' is "
            "not in the source") in found
    assert ("segments/everyone.yml", 10, "audience 'everyone_news': unknown purpose "
            "'newsleter'") in found
    # the e-mail audience derives email_marketing, which this consent.yml does not declare
    assert ("segments/everyone.yml", 5, "audience 'everyone_mail': unknown purpose "
            "'email_marketing'") in found
    assert ("destinations/ads.yml", 3, "unknown purpose 'ad_audience'") in found
