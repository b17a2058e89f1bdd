"""BG/NBD and Gamma-Gamma against Fader, Hardie & Lee (2005) on CDNOW, and against the
`lifetimes` package (MIT, test extra) which ships the CDNOW sample.

Published values (FHL 2005, table/text; also asserted in lifetimes' own tests and the R BTYD
docs): BG/NBD r=0.243, alpha=4.414, a=0.793, b=2.426, LL=-9582.4; Gamma-Gamma p=6.25,
q=3.74, v=15.44; E[X(39) | x=2, t_x=30.43, T=38.86] = 1.226 (Hardie's spreadsheet).
"""

from __future__ import annotations

import os
import warnings
from datetime import datetime

import numpy as np
import pandas as pd
import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import lifetimes
    from lifetimes import BetaGeoFitter, GammaGammaFitter

from passerelle.identity.attribution import person_orders
from passerelle.traits import clv
from passerelle.traits.builtins import WEEK, bounded_statistics, clv_statistics, fit_models
from traits_helpers import put_entity, put_person_map, source

PUBLISHED_BGNBD = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
PUBLISHED_GG = {"p": 6.25, "q": 3.74, "v": 15.44}
CDNOW_END = datetime(1997, 9, 30, 23, 59, 59)  # end of the 39-week calibration period
# the CDNOW files shipped inside the lifetimes package, read directly: its
# lifetimes.datasets module needs pkg_resources, which current setuptools no longer has
CDNOW_FILES = os.path.join(os.path.dirname(lifetimes.__file__), "datasets")


@pytest.fixture(scope="module")
def cdnow() -> pd.DataFrame:
    data = pd.read_csv(os.path.join(CDNOW_FILES, "cdnow_customers_summary_with_transactions.csv"))
    data.columns = ["customer_id", "frequency", "recency", "T", "monetary"]
    return data.set_index("customer_id")


@pytest.fixture(scope="module")
def fitted(cdnow: pd.DataFrame) -> tuple[clv.Fit, clv.Fit]:
    bg = clv.fit_bgnbd(cdnow.frequency, cdnow.recency, cdnow["T"])
    rep = cdnow[cdnow.frequency > 0]
    return bg, clv.fit_gamma_gamma(rep.frequency, rep.monetary)


@pytest.fixture(scope="module")
def reference(cdnow: pd.DataFrame) -> tuple[BetaGeoFitter, GammaGammaFitter]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bgf = BetaGeoFitter().fit(cdnow.frequency, cdnow.recency, cdnow["T"])
        rep = cdnow[cdnow.frequency > 0]
        ggf = GammaGammaFitter().fit(rep.frequency, rep.monetary)
    return bgf, ggf


def test_bgnbd_matches_published_cdnow(fitted):
    bg, _ = fitted
    for name, value in PUBLISHED_BGNBD.items():
        assert getattr(bg.params, name) == pytest.approx(value, rel=1e-2), name
    assert bg.log_likelihood == pytest.approx(-9582.4, abs=0.1)
    assert bg.n == 2357 and bg.converged


def test_gamma_gamma_matches_published_cdnow(fitted):
    _, gg = fitted
    for name, value in PUBLISHED_GG.items():
        assert getattr(gg.params, name) == pytest.approx(value, rel=1e-2), name
    assert gg.n == 946  # CDNOW customers with at least one repeat purchase


def test_fits_match_lifetimes_estimates_and_standard_errors(fitted, reference):
    (bg, gg), (bgf, ggf) = fitted, reference
    for fit, ref in ((bg, bgf), (gg, ggf)):
        for name in ref.params_.index:
            assert getattr(fit.params, name) == pytest.approx(ref.params_[name], rel=1e-4)
            se = ref.summary.loc[name, "se(coef)"]
            assert fit.standard_errors[name] == pytest.approx(se, rel=1e-2), name
    s = bg.summary()["r"]
    assert s["lower_95"] < bg.params.r < s["upper_95"]


def test_predictions_match_lifetimes(cdnow, reference):
    bgf, ggf = reference
    params = clv.BGNBDParams(**bgf.params_.to_dict())
    f, r, t = cdnow.frequency.to_numpy(), cdnow.recency.to_numpy(), cdnow["T"].to_numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref_e = bgf.conditional_expected_number_of_purchases_up_to_time(52, f, r, t)
        ref_alive = bgf.conditional_probability_alive(f, r, t)
        ref_spend = ggf.conditional_expected_average_profit(cdnow.frequency, cdnow.monetary)
    np.testing.assert_allclose(clv.expected_purchases(52, f, r, t, params), ref_e, rtol=1e-9)
    np.testing.assert_allclose(clv.probability_alive(f, r, t, params), ref_alive, rtol=1e-9)
    gg = clv.GammaGammaParams(**ggf.params_.to_dict())
    np.testing.assert_allclose(
        clv.expected_average_spend(cdnow.frequency, cdnow.monetary, gg), ref_spend, rtol=1e-9)


def test_hardie_spreadsheet_value_and_closed_forms():
    published = clv.BGNBDParams(**PUBLISHED_BGNBD)
    assert clv.expected_purchases(39, 2, 30.43, 38.86, published) == pytest.approx(1.226,
                                                                                  abs=1e-3)
    assert clv.probability_alive(0, 0, 38.86, published) == 1.0
    gg = clv.GammaGammaParams(**PUBLISHED_GG)
    # no repeat purchase: the population mean p v / (q - 1)
    assert clv.expected_average_spend(0, 0, gg) == pytest.approx(6.25 * 15.44 / 2.74)
    value = clv.customer_lifetime_value(39, 2, 30.43, 38.86, 22.35, published, gg)
    spend = 6.25 * (15.44 + 2 * 22.35) / (6.25 * 2 + 3.74 - 1)
    assert value == pytest.approx(clv.expected_purchases(39, 2, 30.43, 38.86, published) * spend)


def test_weighted_fit_equals_fit_on_every_person(cdnow, fitted):
    grouped = cdnow.groupby(["frequency", "recency", "T"]).size().reset_index(name="n")
    fit = clv.fit_bgnbd(grouped.frequency, grouped.recency, grouped["T"], weights=grouped.n)
    for name in PUBLISHED_BGNBD:
        assert getattr(fit.params, name) == pytest.approx(getattr(fitted[0].params, name),
                                                          rel=1e-5)
    assert fit.n == 2357


def test_too_little_data_is_a_clear_error():
    with pytest.raises(clv.FitError, match="BG/NBD needs"):
        clv.fit_bgnbd([0, 0], [0, 0], [5, 5])
    with pytest.raises(clv.FitError, match="Gamma-Gamma needs"):
        clv.fit_gamma_gamma([0, 1], [0, 10.0])


# ------------------------------------------------------------- SQL statistics, real engines
def _cdnow_transactions() -> pd.DataFrame:
    path = os.path.join(CDNOW_FILES, "CDNOW_sample.txt")
    return pd.read_csv(path, sep=r"\s+", header=None,
                       names=["mid", "id", "date", "cds", "value"], dtype={"id": int, "date": str})


def reference_summary() -> pd.DataFrame:
    """lifetimes' own (frequency, recency, T, monetary) of the calibration period, exact in
    days (its shipped summary file is rounded to 0.01 week)."""
    from lifetimes.utils import summary_data_from_transaction_data

    raw = _cdnow_transactions()
    raw["date"] = pd.to_datetime(raw.date)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return summary_data_from_transaction_data(
            raw, "id", "date", monetary_value_col="value", observation_period_end="1997-09-30",
            freq="D", freq_multiplier=7)


def _load_cdnow_orders(engine) -> dict:
    raw = _cdnow_transactions()
    rows = [{"_source": "cdnow_orders", "order_id": f"O{i}", "customer_id": str(c),
             "ordered_at": datetime.strptime(d, "%Y%m%d"), "amount": v}
            for i, (c, d, v) in enumerate(zip(raw.id, raw.date, raw.value, strict=True))]
    put_entity(engine, "orders", "orders", rows)
    put_person_map(engine, [("cdnow", str(c), f"P{c:04d}") for c in sorted(set(raw.id))])
    return {"cdnow_orders": source("cdnow_orders", "orders", "cdnow"),
            "cdnow": source("cdnow", "customers")}


def test_sql_statistics_reproduce_the_cdnow_summary(engine, cdnow):
    sources = _load_cdnow_orders(engine)
    stats = engine.to_arrow(clv_statistics(person_orders(engine, sources), CDNOW_END, None))
    got = stats.to_pandas().set_index("person_id").sort_index()
    assert len(got) == 2357
    ref = cdnow.copy()
    ref.index = [f"P{i:04d}" for i in ref.index]
    ref = ref.sort_index()
    assert (got.frequency.to_numpy() == ref.frequency.to_numpy()).all()
    np.testing.assert_allclose(got.recency_days.to_numpy() / WEEK, ref.recency, atol=0.006)
    np.testing.assert_allclose(got.t_days.to_numpy() / WEEK, ref["T"], atol=0.006)
    np.testing.assert_allclose(got.monetary.to_numpy(), ref.monetary, atol=0.006)

    model = fit_models(engine, person_orders(engine, sources), CDNOW_END, None)
    for name, value in PUBLISHED_BGNBD.items():
        assert getattr(model.bgnbd.params, name) == pytest.approx(value, rel=1e-2)
    assert model.gamma_gamma is not None
    for name, value in PUBLISHED_GG.items():
        assert getattr(model.gamma_gamma.params, name) == pytest.approx(value, rel=1e-2)


def test_large_populations_are_fitted_on_a_stable_hash_sample(engine):
    """Beyond ``exact_max`` distinct rows the fit reads a sample drawn by a hash of the person
    id: about the size asked, the same on every run, and still close to the published fit."""
    sources = _load_cdnow_orders(engine)
    engine.replace_table("_cdnow_stats", clv_statistics(person_orders(engine, sources),
                                                        CDNOW_END, None))
    stats = engine.table("_cdnow_stats")
    keys = ["frequency", "recency_days", "t_days"]
    whole, of = bounded_statistics(engine, stats, keys)
    assert of == 0 and sum(whole.column("people").to_pylist()) == 2357
    drawn, of = bounded_statistics(engine, stats, keys, exact_max=100, sample=1500)
    again, _ = bounded_statistics(engine, stats, keys, exact_max=100, sample=1500)
    assert of == 2357
    people = sum(drawn.column("people").to_pylist())
    assert 1300 < people < 1700  # binomial(2357, 0.64): sd 23
    assert sorted(map(str, drawn.to_pylist())) == sorted(map(str, again.to_pylist()))
    fit = clv.fit_bgnbd(*(drawn.column(c).to_numpy() / d for c, d in
                          (("frequency", 1), ("recency_days", WEEK), ("t_days", WEEK))),
                        weights=drawn.column("people").to_numpy())
    assert fit.n == people
    for name, value in PUBLISHED_BGNBD.items():  # within 3 standard errors of the sample
        assert abs(getattr(fit.params, name) - value) < 3 * fit.standard_errors[name], name


def test_fast_objectives_equal_the_plain_likelihoods(cdnow: pd.DataFrame) -> None:
    """The objectives the fits minimise (terms grouped per distinct frequency, chunked,
    analytic gradients) equal the plain per-person formulas (FHL 2005 eq. 6; Fader & Hardie
    2013 eq. 5), and their gradients a central finite difference, away from the optimum."""
    x, t_x, t_cal = (cdnow[c].to_numpy(float) for c in ("frequency", "recency", "T"))
    w = np.ones_like(x)
    theta = np.log([0.5, 3.0, 1.2, 3.5])
    value, grad = clv._bgnbd_objective(x, t_x, t_cal, w)(theta)
    plain = clv.bgnbd_log_likelihood(np.exp(theta), x, t_x, t_cal).sum()
    assert value == pytest.approx(-plain, rel=1e-10)
    rep = cdnow[cdnow.frequency > 0]
    xr, m = rep.frequency.to_numpy(float), rep.monetary.to_numpy(float)
    theta_gg = np.log([4.0, 2.0, 10.0])
    value_gg, grad_gg = clv._gamma_gamma_objective(xr, m, np.ones_like(xr))(theta_gg)
    plain_gg = clv.gamma_gamma_log_likelihood(np.exp(theta_gg), xr, m).sum()
    assert value_gg == pytest.approx(-plain_gg, rel=1e-10)
    for objective, at, g in ((clv._bgnbd_objective(x, t_x, t_cal, w), theta, grad),
                             (clv._gamma_gamma_objective(xr, m, np.ones_like(xr)), theta_gg,
                              grad_gg)):
        step = 1e-6
        numeric = [(objective(at + step * e)[0] - objective(at - step * e)[0]) / (2 * step)
                   for e in np.eye(len(at))]
        assert np.allclose(g, numeric, rtol=1e-5, atol=1e-4)
