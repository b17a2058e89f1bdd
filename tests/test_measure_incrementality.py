"""Incrementality from audience holdouts: the groups built from audience_holdouts and the
activation log, orders attributed by person_orders, on DuckDB and PostgreSQL, checked
against sums computed by hand and against statsmodels/scipy."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pytest
from scipy import stats
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_confint

from passerelle.activation.log import LOG_SCHEMA
from passerelle.errors import PasserelleError
from passerelle.measure.campaigns import CurrencyError, incrementality
from passerelle.measure.holdouts import (
    CFO_LABEL,
    audience_groups,
    audience_sends,
    incrementality_report,
    incrementality_text,
)
from passerelle.project.segments_models import AudienceConfig
from passerelle.segments.audience import HOLDOUTS_SCHEMA
from traits_helpers import put, put_entity, put_person_map, source

T1 = datetime(2026, 2, 1, 9)  # first delivered export
T2 = datetime(2026, 2, 10, 9)  # second delivered export
T0 = datetime(2026, 1, 31, 9)  # a failed export: its people were never sent
SOURCES = {"shop": source("shop", "orders", customer_source="crm")}


def _log(engine, exports: list[tuple[str, str, datetime, str]]) -> None:
    rows = [{"export_id": e, "audience": a, "started_at": t, "finished_at": t,
             "status": s, "people": 0, "user_name": "t", "destination": "d", "kind": "csv",
             "target": "x"} for e, a, t, s in exports]
    put(engine, "activation_log", LOG_SCHEMA, rows)


def _members(engine, rows: list[tuple[str, str]]) -> None:
    put(engine, "activation_log_members", pa.schema([("export_id", pa.string()),
                                                     ("person_id", pa.string())]),
        [{"export_id": e, "person_id": p} for e, p in rows])


def _holdouts(engine, rows: list[tuple[str, str, datetime]]) -> None:
    schema = pa.schema([(n, pa.timestamp("us") if n == "first_held_at" else pa.string())
                        for n in HOLDOUTS_SCHEMA.names])
    put(engine, "audience_holdouts", schema,
        [{"audience": a, "person_id": p, "salt": a, "first_held_at": t, "run_id": "R"}
         for a, p, t in rows])


def _orders(engine, rows: list[tuple[str, datetime, float, str | None]]) -> None:
    put_entity(engine, "orders", "orders", [
        {"_source": "shop", "order_id": f"o{i}", "customer_id": f"c-{p}", "ordered_at": t,
         "amount": a, "status": s, "channel": "web"} for i, (p, t, a, s) in enumerate(rows)])


PEOPLE = [f"p{i}" for i in range(10)] + [f"h{i}" for i in range(4)] + ["x0", "x1"]


def _world(engine, spend: list[tuple[str, float, str | None]] | None = None) -> None:
    """Audience ``nl``: 7 treated (p0..p6; p5 was held out then sent), 3 held out (h0..h2),
    h3 held out after the last send; audience ``solo`` sent but no holdout row."""
    put_person_map(engine, [("crm", f"c-{p}", p) for p in PEOPLE])
    _log(engine, [("E0", "nl", T0, "failed"), ("E1", "nl", T1, "delivered"),
                  ("E2", "nl", T2, "partial"), ("S1", "solo", T1, "delivered")])
    _members(engine, [("E0", "p9"), *[("E1", f"p{i}") for i in range(6)], ("E2", "p0"),
                      ("E2", "p6"), ("S1", "x0"), ("S1", "x1")])
    _holdouts(engine, [("nl", "h0", T1 - timedelta(hours=1)), ("nl", "h1", T1 - timedelta(days=3)),
                       ("nl", "h2", T1 + timedelta(days=2)), ("nl", "h3", T2 + timedelta(hours=1)),
                       ("nl", "p5", T1 - timedelta(hours=1))])
    d = timedelta(days=1)
    _orders(engine, [
        ("p0", T1 + d, 40.0, None), ("p0", T1 + 2 * d, -10.0, "refunded"),  # net 30
        ("p1", T1 + 20 * d, 99.0, None),  # after the 14-day window
        ("p2", T1 - d, 15.0, None),  # before the send
        ("p3", T1 + 13 * d, 25.0, None),
        ("p4", T1 + d, 50.0, "cancelled"),  # cancelled: not a conversion
        ("p5", T1 + d, 15.0, None),  # held out, then sent: treated
        ("p6", T2 + d, 60.0, None),  # first sent in E2: window from T2
        ("p9", T1 + d, 100.0, None),  # only in the failed export
        ("h0", T1 + timedelta(hours=3), 12.0, None),
        ("h1", T1 + 3 * d, -8.0, "refunded"),  # a refund alone is not a conversion
        ("h2", T2 - d, 20.0, None), ("h2", T2 + 5 * d, 30.0, None),  # window from T2
        ("h3", T2 + 2 * d, 500.0, None),  # held out after the last send
        ("x0", T1 + d, 10.0, None),
    ])
    if spend is not None:
        put_entity(engine, "ad_spend", "ad_spend", [
            {"_source": "ads", "date": date(2026, 2, 1 + i), "channel": "email",
             "campaign_id": c, "spend": s, "currency": cur}
            for i, (c, s, cur) in enumerate(spend)])


# Sums by hand. Treated p0..p6: converters p0 (40 - 10), p3 (25), p5 (15), p6 (60).
# Held out h0 (12), h1 (-8, refund only: not a converter), h2 (30).
TREATED = (7, 4, 130.0, 30.0**2 + 25.0**2 + 15.0**2 + 60.0**2)
HELD = (3, 2, 34.0, 12.0**2 + 8.0**2 + 30.0**2)
SPEND = 100.0 + 20.0 * 0.9  # 100 EUR + 20 USD at 0.9


def _project(audiences: list[AudienceConfig]):
    return SimpleNamespace(
        definition=SimpleNamespace(segments=SimpleNamespace(
            audiences={a.name: a for a in audiences})),
        sources=SOURCES, config=SimpleNamespace(currency="EUR"))


AUDIENCES = [AudienceConfig(name="nl", channel="email", segment="s"),
             AudienceConfig(name="solo", channel="email", segment="s"),
             AudienceConfig(name="never_sent", channel="sms", segment="s"),
             AudienceConfig(name="no_holdout", channel="sms", segment="s", holdout_percent=0)]


def test_groups_follow_the_activation_log(engine):
    _world(engine)
    groups = audience_groups(engine.table("audience_holdouts"), engine.table("activation_log"),
                             engine.table("activation_log_members"))
    got = {(r["campaign_id"], r["person_id"]): (r["group"], r["assigned_at"])
           for r in engine.to_arrow(groups).to_pylist()}
    expected = {**{("nl", f"p{i}"): ("treated", T1) for i in range(6)},
                ("nl", "p6"): ("treated", T2), ("nl", "h0"): ("holdout", T1),
                ("nl", "h1"): ("holdout", T1), ("nl", "h2"): ("holdout", T2),
                ("solo", "x0"): ("treated", T1), ("solo", "x1"): ("treated", T1)}
    assert got == expected
    book = {r["audience"]: r for r in engine.to_arrow(audience_sends(
        engine.table("audience_holdouts"), engine.table("activation_log"),
        engine.table("activation_log_members"))).to_pylist()}
    assert (book["nl"]["exports"], book["nl"]["first_sent"], book["nl"]["last_sent"]) == (
        2, T1, T2)
    assert (book["nl"]["held"], book["nl"]["held_then_sent"],
            book["nl"]["held_after_last_send"]) == (5, 1, 1)
    assert book["solo"]["held"] == 0


def test_report_matches_hand_computed_sums_and_references(engine):
    _world(engine, spend=[("nl", 100.0, "EUR"), ("nl", 20.0, "USD"), ("other", 5.0, "GBP")])
    report = incrementality_report(_project(AUDIENCES), engine, timedelta(days=14),
                                   rates={"USD": 0.9})
    rows = {r["audience"]: r for r in report["audiences"]}
    assert report["label"] == CFO_LABEL
    nl = rows["nl"]
    assert (nl["treated_people"], nl["treated_converters"]) == (7, 4)
    assert (nl["holdout_people"], nl["holdout_converters"]) == (3, 2)
    assert nl["spend"] == pytest.approx(SPEND)  # the GBP spend of another campaign is not read
    ref = incrementality(TREATED, HELD, SPEND)
    assert nl["revenue_per_person_treated"]["estimate"] == pytest.approx(130 / 7)
    assert nl["incremental_roi"]["estimate"] == pytest.approx(
        ((130 / 7 - 34 / 3) * 7 - SPEND) / SPEND)
    assert nl["incremental_roi"]["low"] == pytest.approx(ref.incremental_roi.low)
    # independent references for the intervals the report shows
    lo, hi = confint_proportions_2indep(4, 7, 2, 3, method="newcomb", compare="diff")
    assert (nl["conversion_lift_points"]["low"], nl["conversion_lift_points"]["high"]) == \
        pytest.approx((lo, hi))
    assert nl["conversion_rate_holdout"]["high"] == pytest.approx(
        proportion_confint(2, 3, method="wilson")[1])
    t = np.array([30.0, 0, 0, 25, 0, 15, 60])
    h = np.array([12.0, -8, 30])
    res = stats.ttest_ind(t, h, equal_var=False)
    ci = res.confidence_interval(0.95)
    lift = nl["revenue_per_person_lift"]
    assert (lift["estimate"], lift["low"], lift["high"]) == pytest.approx(
        (t.mean() - h.mean(), ci.low, ci.high))
    assert any("later sent" in n for n in nl["notes"])
    assert any("held out after the last send" in n for n in nl["notes"])
    assert CFO_LABEL in nl["headline"]
    # audiences without an answer say why
    assert "no held-out people" in rows["solo"]["error"]["reason"]
    assert "never sent" in rows["never_sent"]["error"]["reason"]
    assert "keeps no holdout" in rows["no_holdout"]["error"]["reason"]
    text = incrementality_text(report)
    assert "nl:" in text and "no answer" in text


def test_spend_in_another_currency_and_explicit_spend(duckdb_engine):
    _world(duckdb_engine, spend=[("nl", 100.0, "EUR"), ("nl", 20.0, "USD")])
    project = _project(AUDIENCES[:1])
    with pytest.raises(CurrencyError, match="USD"):
        incrementality_report(project, duckdb_engine)
    given = incrementality_report(project, duckdb_engine, spend={"nl": 50.0})
    assert given["audiences"][0]["spend"] == 50.0
    assert given["audiences"][0]["spend_campaign"] is None
    other = incrementality_report(project, duckdb_engine, campaigns={"nl": "nothing"})
    nl = other["audiences"][0]
    assert nl["spend"] is None and nl["incremental_roi"] is None
    assert any("No spend found" in n for n in nl["notes"])


def test_bad_inputs(duckdb_engine):
    _world(duckdb_engine)
    project = _project(AUDIENCES)
    with pytest.raises(PasserelleError, match="shorter than a day"):
        incrementality_report(project, duckdb_engine, timedelta(hours=12))
    with pytest.raises(PasserelleError, match="no audience named 'nope'"):
        incrementality_report(project, duckdb_engine, audiences=["nope"])
    # nobody bought in the holdout: the relative lift does not exist, the rest does
    inc = incrementality((100, 10, 500.0, 30_000.0), (20, 0, 0.0, 0.0))
    assert inc.relative_lift is None and inc.absolute_lift.estimate == pytest.approx(0.1)
    assert any("Nobody in the holdout converted" in n for n in inc.notes)
    # revenue with no spread: no revenue lift, a note instead
    flat = incrementality((100, 10, 0.0, 0.0), (20, 1, 0.0, 0.0))
    assert flat.incremental_revenue is None and flat.revenue_relative_lift is None


def test_sent_audiences_without_any_holdout_table(engine):
    _world(engine)
    engine.drop("audience_holdouts")
    report = incrementality_report(_project(AUDIENCES), engine)
    rows = {r["audience"]: r for r in report["audiences"]}
    assert "no held-out people" in rows["nl"]["error"]["reason"]
    assert rows["nl"]["exports"] == 2
    assert "keeps no holdout" in rows["no_holdout"]["error"]["reason"]


def test_text_is_written_in_the_project_locale():
    """The CLI's text goes through passerelle.formatting: French numbers, money, percents."""
    from passerelle.formatting import Formatter
    from passerelle.measure.holdouts import audience_result, headline

    treated = {"people": 1000, "converters": 150, "revenue_sum": 15000.0,
               "revenue_sq": 15000.0 * 120}
    holdout = {"people": 1000, "converters": 100, "revenue_sum": 9000.0,
               "revenue_sq": 9000.0 * 110}
    r = audience_result("nl", treated, holdout, spend=1234.5)
    report = {"window_days": 14.0, "level": 0.95, "currency": "EUR", "label": "ROI",
              "audiences": [r]}
    fr = Formatter("fr_FR", "Europe/Paris")
    text = incrementality_text(report, fr)
    nbsp = "\u202f"  # Babel's narrow no-break space in French
    assert f"+50,0{nbsp}% buyers caused by the sends" in headline(r, "EUR", fr).replace(
        "\xa0", nbsp)
    flat = text.replace("\xa0", " ").replace(nbsp, " ")
    assert "sent 1 000 people, converted 15,00 %; held out 1 000, converted 10,00 %" in flat
    assert "revenue per person: sent 15,00 €, held out 9,00 €; spend 1 234,50 €" in flat
    assert "14-day window after each send, 95 % intervals" in flat
    en = incrementality_text(report)  # British English outside a project
    assert "sent 1,000 people, converted 15.00%" in en and "spend €1,234.50" in en
    assert r["headline"] == headline(r, "EUR")  # the JSON's sentence is the same text
