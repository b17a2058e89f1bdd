"""Campaign results and attribution over warehouse tables (DuckDB and PostgreSQL): visits
from events, figures equal to the estimator functions called directly, windows under a day
refused, single-touch journeys."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pyarrow as pa
import pytest

from passerelle.measure import MeasureError, campaign_result
from passerelle.measure.report import attribution_from_tables, campaign_results_from_tables
from passerelle.measure.warehouse import visits

T0 = datetime(2026, 3, 1, 9, 0)
TOUCH = pa.schema([("person_id", pa.string()), ("touch_time", pa.timestamp("us")),
                   ("channel", pa.string()), ("campaign_id", pa.string())])
CONV = pa.schema([("person_id", pa.string()), ("conversion_time", pa.timestamp("us")),
                  ("revenue", pa.float64())])


def _tables(engine, touches, conversions, spend=None):
    engine.con.create_table("x_touches", pa.Table.from_pylist(touches, schema=TOUCH),
                            overwrite=True)
    engine.con.create_table("x_conv", pa.Table.from_pylist(conversions, schema=CONV),
                            overwrite=True)
    if spend is not None:
        engine.con.create_table("x_spend", pa.table({
            "date": pa.array([s[0] for s in spend], pa.date32()),
            "channel": [s[1] for s in spend], "campaign_id": [s[2] for s in spend],
            "spend": [s[3] for s in spend], "currency": [s[4] for s in spend]}), overwrite=True)
    return (engine.table("x_touches"), engine.table("x_conv"),
            engine.table("x_spend") if spend is not None else None)


def _t(pid, hours, channel, campaign=None):
    return {"person_id": pid, "touch_time": T0 + timedelta(hours=hours), "channel": channel,
            "campaign_id": campaign}


def _c(pid, hours, revenue):
    return {"person_id": pid, "conversion_time": T0 + timedelta(hours=hours), "revenue": revenue}


def test_campaign_results_match_campaign_result(engine):
    touches = [_t(p, 0, "search", "s1") for p in "abcdef"] + [
        _t("a", 1, "search", "s1"), _t("g", 0, "email", "e1"), _t("h", 0, "email", "e1"),
        _t("i", 0, "direct")]
    conv = [_c("a", 5, 50.0), _c("a", 30, 20.0), _c("b", 10, 80.0), _c("c", 400, 99.0),
            _c("d", 24, -30.0), _c("g", 2, 40.0), _c("i", 1, 10.0)]
    spend = [(date(2026, 3, 1), "search", "s1", 100.0, "EUR"),
             (date(2026, 3, 2), "search", "s1", 20.0, None),
             (date(2026, 3, 1), "display", "d1", 5.0, "EUR")]
    t, c, s = _tables(engine, touches, conv, spend)
    res = campaign_results_from_tables(t, c, s, engine, timedelta(days=14)).to_pylist()
    by = {r["campaign_id"]: r for r in res}
    assert sorted(by) == ["d1", "e1", "s1"]  # the direct visit has no campaign
    s1 = by["s1"]
    # a: 50 + 20 (both within 14 days), b: 80, c: converted after the window, d: refund -30
    # (a refund alone is not a conversion, but it counts in revenue)
    rev = [70.0, 80.0, 0.0, -30.0, 0.0, 0.0]
    ref = campaign_result(120.0, 6, 2, sum(rev), sum(x * x for x in rev))
    assert (s1["spend"], s1["reach"], s1["conversions"]) == (120.0, 6, 2.0)
    assert s1["revenue"] == pytest.approx(120.0)
    for f in ("conversions", "revenue", "cpa", "roas", "roi"):
        iv = getattr(ref, f)
        assert (s1[f], s1[f + "_low"], s1[f + "_high"]) == pytest.approx(
            (iv.estimate, iv.low, iv.high), rel=1e-9)
    assert s1["roi"] == pytest.approx(0.0)
    e1 = by["e1"]
    assert (e1["spend"], e1["reach"], e1["conversions"], e1["cpa"]) == (0.0, 2, 1.0, None)
    assert "No spend recorded" in e1["notes"]
    d1 = by["d1"]
    assert (d1["reach"], d1["revenue"]) == (0, None)
    assert "Nobody touched" in d1["notes"]


def test_campaign_results_by_week_and_bad_inputs(engine):
    touches = [_t("a", 0, "search", "s1"), _t("b", 24 * 8, "search", "s1")]
    conv = [_c("a", 1, 10.0), _c("b", 24 * 8 + 1, 30.0)]
    spend = [(date(2026, 3, 1), "search", "s1", 10.0, "USD")]
    t, c, s = _tables(engine, touches, conv, spend)
    from passerelle.measure import CurrencyError

    with pytest.raises(CurrencyError, match="USD"):
        campaign_results_from_tables(t, c, s, engine, timedelta(days=7))
    with pytest.raises(MeasureError, match="shorter than a day"):
        campaign_results_from_tables(t, c, s, engine, timedelta(hours=12))
    res = campaign_results_from_tables(t, c, s, engine, timedelta(days=7), grain="week",
                                       rates={"USD": 0.5}).to_pylist()
    assert [(r["period"], r["reach"], r["spend"]) for r in res] == [
        (date(2026, 2, 23), 1, 5.0), (date(2026, 3, 9), 1, 0.0)]


def test_visits_collapse_events_of_one_session(engine):
    ev = pa.table({
        "person_id": ["a", "a", "a", "a", "a", "b", None],
        "timestamp": pa.array([T0, T0 + timedelta(minutes=10), T0 + timedelta(minutes=50),
                               T0 + timedelta(minutes=55), T0 + timedelta(minutes=56), T0, T0],
                              pa.timestamp("us")),
        "channel": ["search", "search", "search", "email", None, None, "search"],
        "campaign_id": ["s1", "s1", "s1", "e1", None, None, None]})
    engine.con.create_table("x_ev", ev, overwrite=True)
    got = engine.to_arrow(visits(engine.table("x_ev")).order_by(
        ["person_id", "touch_time"])).to_pylist()
    assert [(r["person_id"], r["channel"], r["campaign_id"]) for r in got] == [
        ("a", "search", "s1"), ("a", "search", "s1"), ("a", "email", "e1"),
        ("a", "direct", None), ("b", "direct", None)]


def test_attribution_single_touch_journeys_agree(engine):
    touches = [_t("a", 0, "search"), _t("b", 0, "email"), _t("c", 0, "search"),
               _t("d", 0, "social")]
    conv = [_c("a", 2, 10.0), _c("b", 2, 20.0), _c("c", 2, -5.0)]
    t, c, _ = _tables(engine, touches, conv)
    out = attribution_from_tables(t, c, engine, timedelta(days=30))
    table = out["conversions"].to_pydict()
    assert table["channel"] == ["email", "search"]
    for model in ("first", "last", "last_non_direct", "linear", "time_decay",
                  "position_based", "markov", "shapley"):
        assert table[model] == pytest.approx([1.0, 2.0]), model
    revenue = out["revenue"].to_pydict()
    assert revenue["linear"] == pytest.approx([20.0, 5.0])  # the refund reduces search
    assert out["summary"] == {"conversions": 3, "attributed": 3, "single_touch_journeys": 3,
                              "distinct_paths": 3, "lookback_days": 30.0,
                              "models": list(out["summary"]["models"])}


def test_attribution_models_side_by_side_and_refusals(engine):
    touches = [_t("a", 0, "social"), _t("a", 24, "search"), _t("a", 47, "direct"),
               _t("b", 0, "email"), _t("b", 1, "direct"), _t("z", 0, "social")]
    conv = [_c("a", 48, 100.0), _c("b", 2, 50.0), _c("q", 1, 7.0)]
    t, c, _ = _tables(engine, touches, conv)
    out = attribution_from_tables(t, c, engine, timedelta(days=7), models=["first", "last",
                                                                         "last_non_direct"])
    rows = {r["channel"]: r for r in out["conversions"].to_pylist()}
    assert {k: v["first"] for k, v in rows.items()} == {"direct": 0, "email": 1, "search": 0,
                                                        "social": 1}
    assert rows["direct"]["last"] == 2.0
    assert rows["search"]["last_non_direct"] == 1.0 and rows["email"]["last_non_direct"] == 1.0
    assert out["summary"]["conversions"] == 3 and out["summary"]["attributed"] == 2
    with pytest.raises(MeasureError, match="shorter than a day"):
        attribution_from_tables(t, c, engine, timedelta(hours=3))
    with pytest.raises(MeasureError, match="Unknown attribution model"):
        attribution_from_tables(t, c, engine, timedelta(days=7), models=["magic"])
