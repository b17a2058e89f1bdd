"""Campaign results and incrementality: SQL sufficient statistics on DuckDB and PostgreSQL,
intervals checked against statsmodels/scipy, and the bad inputs of issue 8."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest
from scipy import stats
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_confint

from passerelle.measure import (
    CurrencyError,
    MeasureError,
    campaign_result,
    campaign_stats,
    check_currencies,
    holdout_stats,
    incrementality,
    spend_totals,
)


def test_foreign_currency_refused_without_rate():
    with pytest.raises(CurrencyError, match="USD") as err:
        check_currencies(["EUR", "USD", None], "EUR")
    assert "rates=" in err.value.instruction
    check_currencies(["EUR", "USD", None], "EUR", rates={"USD": 0.92})


def test_spend_totals_converts_with_rates(engine):
    engine.con.create_table("ad_spend", pa.table({
        "date": pa.array([date(2026, 1, 1), date(2026, 1, 1), date(2026, 1, 2)], pa.date32()),
        "channel": ["search", "search", "social"], "campaign_id": ["c1", "c1", "c2"],
        "spend": [100.0, 50.0, 20.0], "currency": ["EUR", "USD", None]}), overwrite=True)
    rows = engine.con.execute(spend_totals(engine.table("ad_spend"), "EUR", {"USD": 0.9}))
    got = dict(zip(rows.campaign_id, rows.spend, strict=True))
    assert got == pytest.approx({"c1": 145.0, "c2": 20.0})


def test_campaign_result_intervals_match_references():
    rng = np.random.default_rng(3)
    revenue = np.where(rng.random(500) < 0.12, rng.gamma(2, 40, 500), 0.0)
    revenue[:3] = -25.0  # refunds are allowed
    conv = int((revenue != 0).sum())
    r = campaign_result(spend=900.0, reach=500, converters=conv,
                        revenue_sum=float(revenue.sum()), revenue_sq=float((revenue**2).sum()))
    lo, hi = proportion_confint(conv, 500, method="wilson")
    assert (r.conversions.low, r.conversions.high) == pytest.approx((500 * lo, 500 * hi))
    t_lo, t_hi = stats.t.interval(0.95, 499, loc=revenue.mean(), scale=stats.sem(revenue))
    assert (r.revenue.low, r.revenue.high) == pytest.approx((500 * t_lo, 500 * t_hi))
    assert (r.roas.low, r.roas.high) == pytest.approx((500 * t_lo / 900, 500 * t_hi / 900))
    assert r.roi.estimate == pytest.approx(revenue.sum() / 900 - 1)
    assert (r.cpa.low, r.cpa.high) == pytest.approx((900 / (500 * hi), 900 / (500 * lo)))


def test_campaign_result_defined_edge_cases():
    none = campaign_result(spend=100.0, reach=50, converters=0, revenue_sum=0.0, revenue_sq=0.0)
    assert none.cpa.estimate == float("inf") and none.conversions.low == 0
    assert "No conversion" in " ".join(none.notes)
    with pytest.raises(MeasureError, match="no spend"):
        campaign_result(spend=0.0, reach=50, converters=3, revenue_sum=10.0, revenue_sq=50.0)
    with pytest.raises(MeasureError, match="reached nobody"):
        campaign_result(spend=10.0, reach=0, converters=0, revenue_sum=0.0, revenue_sq=0.0)


def test_incrementality_matches_references():
    treated, holdout = (9000, 1350, 90_000.0, 4_000_000.0), (1000, 130, 9_500.0, 450_000.0)
    got = incrementality(treated, holdout, spend=2000.0)
    ref = confint_proportions_2indep(1350, 9000, 130, 1000, method="newcomb", compare="diff")
    assert (got.absolute_lift.low, got.absolute_lift.high) == pytest.approx(ref)
    assert got.relative_lift.estimate == pytest.approx(0.15 / 0.13 - 1)
    assert got.conversion_holdout.high == pytest.approx(
        proportion_confint(130, 1000, method="wilson")[1])
    t = stats.ttest_ind_from_stats(10.0, np.sqrt((4e6 - 9e4**2 / 9000) / 8999), 9000,
                                   9.5, np.sqrt((4.5e5 - 9500**2 / 1000) / 999), 1000,
                                   equal_var=False)
    assert got.revenue_per_person_lift.estimate == pytest.approx(0.5)
    se = (got.revenue_per_person_lift.high - 0.5) / stats.t.ppf(0.975, 1e9)
    assert 0.5 / se == pytest.approx(t.statistic, rel=2e-3)  # df large: t ≈ normal
    assert got.incremental_roi.estimate == pytest.approx(0.5 * 9000 / 2000 - 1)


def test_incrementality_bad_inputs():
    with pytest.raises(MeasureError, match="holdout group of this campaign is empty"):
        incrementality((100, 10, 0, 0), (0, 0, 0, 0))
    none = incrementality((100, 10, 0, 0), (20, 0, 0, 0))  # the relative lift does not exist
    assert none.relative_lift is None and none.absolute_lift.estimate == pytest.approx(0.1)
    assert "Nobody in the holdout converted" in " ".join(none.notes)
    flat = incrementality((100, 10, 0.0, 0.0), (20, 1, 0.0, 0.0))
    assert flat.incremental_revenue is None and flat.notes


def _audience(engine):
    T = datetime(2026, 2, 1, 9)
    people = [f"p{i}" for i in range(8)]
    groups = ["treated"] * 6 + ["holdout"] * 2
    engine.con.create_table("audience", pa.table({
        "campaign_id": ["nl"] * 8, "person_id": people, "group": groups,
        "assigned_at": pa.array([T] * 8, pa.timestamp("us"))}), overwrite=True)
    conv = [("p0", T + timedelta(days=1), 40.0), ("p0", T + timedelta(days=2), -10.0),
            ("p1", T + timedelta(days=20), 99.0),  # outside the 14-day window
            ("p2", T - timedelta(days=1), 15.0),  # before the send
            ("p3", T + timedelta(days=13), 25.0), ("p6", T + timedelta(hours=3), 12.0)]
    c = list(zip(*conv, strict=True))
    engine.con.create_table("conversions", pa.table({
        "person_id": c[0], "conversion_time": pa.array(c[1], pa.timestamp("us")),
        "revenue": c[2]}), overwrite=True)
    engine.con.create_table("touches", pa.table({
        "person_id": people[:6], "touch_time": pa.array([T] * 6, pa.timestamp("us")),
        "channel": ["email"] * 6, "campaign_id": ["nl"] * 6}), overwrite=True)
    return engine.table("audience"), engine.table("conversions"), engine.table("touches")


def test_holdout_and_campaign_stats_in_sql(engine):
    audience, conversions, touches = _audience(engine)
    rows = engine.con.execute(holdout_stats(audience, conversions, timedelta(days=14)))
    got = {r.group: (r.people, r.converters, r.revenue_sum, r.revenue_sq)
           for r in rows.itertuples()}
    # treated: p0 (40 - 10 = 30) and p3 (25) converted; holdout: p6 (12)
    assert got == {"treated": (6, 2, 55.0, 30.0**2 + 25.0**2), "holdout": (2, 1, 12.0, 144.0)}
    stats_rows = engine.con.execute(campaign_stats(touches, conversions, timedelta(days=14),
                                                   grain="day"))
    r = stats_rows.iloc[0]
    assert (r.campaign_id, r.channel, r.reach, r.converters, r.revenue_sum) == (
        "nl", "email", 6, 2, 55.0)
    assert str(r.period)[:10] == "2026-02-01"


def test_conversion_window_shorter_than_a_day_is_refused(duckdb_engine):
    audience, conversions, touches = _audience(duckdb_engine)
    with pytest.raises(MeasureError, match="shorter than a day"):
        holdout_stats(audience, conversions, timedelta(hours=6))
    with pytest.raises(MeasureError, match="shorter than a day"):
        campaign_stats(touches, conversions, timedelta(hours=6))
