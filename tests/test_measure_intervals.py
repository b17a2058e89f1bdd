"""Intervals vs statsmodels/scipy; the Poisson bootstrap on DuckDB and PostgreSQL."""

from __future__ import annotations

import math

import ibis
import numpy as np
import pyarrow as pa
import pytest
from scipy import stats
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_confint

from passerelle.measure import (
    MeasureError,
    Moments,
    bootstrap_sums,
    newcombe,
    percentile_interval,
    poisson_weight,
    poisson_weight_expr,
    ratio_of_sums,
    relative_lift,
    welch_diff,
    welch_mean,
    wilson,
)
from passerelle.measure.hashing import bucket, bucket_expr

RNG = np.random.default_rng(7)
X = RNG.gamma(2.0, 20.0, size=300)
Y = RNG.gamma(2.2, 20.0, size=250)


@pytest.mark.parametrize(("s", "n"), [(0, 10), (3, 10), (10, 10), (412, 4012)])
def test_wilson_matches_statsmodels(s, n):
    ref = proportion_confint(s, n, alpha=0.05, method="wilson")  # statsmodels 0.15
    got = wilson(s, n)
    assert (got.low, got.high) == pytest.approx(ref, abs=1e-12)


@pytest.mark.parametrize("counts", [(56, 70, 48, 80), (0, 25, 3, 30), (360, 4000, 412, 4012)])
def test_newcombe_matches_statsmodels(counts):
    sa, na, sb, nb = counts
    # statsmodels: difference count1/nobs1 - count2/nobs2, Newcombe hybrid score
    ref = confint_proportions_2indep(sb, nb, sa, na, method="newcomb", compare="diff")
    got = newcombe(sa, na, sb, nb)
    assert (got.low, got.high) == pytest.approx(ref, abs=1e-12)


def test_newcombe_published_example():
    # Newcombe (1998), Statistics in Medicine 17:873-890, Table II example (a):
    # 56/70 vs 48/80, difference 0.2, method 10 interval 0.0524 to 0.3339.
    got = newcombe(48, 80, 56, 70)
    assert (round(got.low, 4), round(got.high, 4)) == (0.0524, 0.3339)


def test_welch_mean_and_diff_match_scipy():
    m = welch_mean(Moments.of(X))
    ref = stats.t.interval(0.95, X.size - 1, loc=X.mean(), scale=stats.sem(X))
    assert (m.low, m.high) == pytest.approx(ref, rel=1e-10)
    d = welch_diff(Moments.of(X), Moments.of(Y))
    res = stats.ttest_ind(Y, X, equal_var=False)  # scipy 1.17: confidence_interval of Y - X
    ci = res.confidence_interval(0.95)
    assert (d.low, d.high) == pytest.approx((ci.low, ci.high), rel=1e-10)
    assert d.estimate == pytest.approx(Y.mean() - X.mean(), rel=1e-12)


def test_relative_lift_delta_method_matches_simulation():
    # delta method: Var(ȳ/x̄) ≈ σy²/(n_y x̄²) + σx² ȳ²/(n_x x̄⁴); checked against a direct
    # numerical derivative of the ratio and a large simulation of the estimator
    a, b = Moments.of(X), Moments.of(Y)
    lift = relative_lift(a, b, distribution="normal")
    se = (lift.high - lift.estimate) / stats.norm.ppf(0.975)
    sims = RNG.normal(b.mean, b.se, 200_000) / RNG.normal(a.mean, a.se, 200_000) - 1
    assert se == pytest.approx(sims.std(), rel=0.02)


def test_ratio_of_sums_matches_explicit_delta_method():
    num, den = X, Y[:300] if Y.size >= 300 else np.concatenate([Y, Y[:50]])
    r = ratio_of_sums(Moments.of(num), Moments.of(den), float((num * den).sum()))
    cov = np.cov(num, den, ddof=1)
    rr = num.sum() / den.sum()
    var = (cov[0, 0] - 2 * rr * cov[0, 1] + rr * rr * cov[1, 1]) / (num.size * den.mean() ** 2)
    assert r.estimate == pytest.approx(rr)
    assert r.high - r.estimate == pytest.approx(1.959963984540054 * math.sqrt(var), rel=1e-10)


def test_empty_and_bad_inputs_are_refused_with_a_reason():
    with pytest.raises(MeasureError, match="empty"):
        wilson(0, 0)
    with pytest.raises(MeasureError, match="same value"):
        welch_diff(Moments.of([1.0, 1.0, 1.0]), Moments.of([1.0, 1.0]))
    with pytest.raises(MeasureError, match="control group's mean is 0"):
        relative_lift(Moments.of([0.0, 0.0, 0.0]), Moments.of([1.0, 0.0]))


def test_percentile_interval_matches_numpy():
    reps = RNG.normal(size=999)
    got = percentile_interval(reps, 0.0, 0.9)
    assert (got.low, got.high) == pytest.approx(tuple(np.quantile(reps, [0.05, 0.95])))


def test_poisson_weights_have_poisson_1_frequencies():
    w = np.array([poisson_weight(f"p{i}", 0) for i in range(20_000)])
    freq = np.bincount(w, minlength=5)[:4] / w.size
    assert freq == pytest.approx(stats.poisson.pmf(np.arange(4), 1.0), abs=0.01)


def _people(engine):
    ids = [f"P{i:03d}" for i in range(40)]
    values = [float((i * 37) % 11) for i in range(40)]
    groups = ["a" if i % 3 else "b" for i in range(40)]
    engine.con.create_table("people", pa.table({"person_id": ids, "value": values,
                                                "grp": groups}), overwrite=True)
    return ids, values, groups


def test_hash_bucket_same_in_sql_and_python(engine):
    ids, _, _ = _people(engine)
    t = engine.table("people")
    got = dict(engine.con.execute(t.select("person_id", b=bucket_expr(t.person_id)))
               .itertuples(index=False, name=None))
    assert got == {i: bucket(i) for i in ids}


def test_bootstrap_replicate_sums_in_sql(engine):
    ids, values, groups = _people(engine)
    t = engine.table("people")
    reps = engine.con.execute(bootstrap_sums(t, "person_id", ["value"], by=["grp"],
                                             replicates=5, seed=3))
    # expected: the same Poisson weights computed in Python, summed per replicate and group
    for _, row in reps.iterrows():
        w = [poisson_weight(i, int(row.replicate), 3) if g == row.grp else 0
             for i, g in zip(ids, groups, strict=True)]
        assert row.n == sum(w)
        assert row.value_sum == pytest.approx(sum(a * b for a, b in zip(w, values, strict=True)))
        assert row.value_sq == pytest.approx(
            sum(a * b * b for a, b in zip(w, values, strict=True)))
    assert sorted(set(reps.replicate)) == [0, 1, 2, 3, 4]
    one = engine.con.execute(ibis.memtable({"r": [2]}).select(
        w=poisson_weight_expr(ibis.literal("P007"), ibis.literal(2), 3)))
    assert int(one.w[0]) == poisson_weight("P007", 2, 3)


def test_bootstrap_interval_close_to_analytic(duckdb_engine):
    values = RNG.exponential(30.0, size=2000)
    duckdb_engine.con.create_table("p", pa.table({"person_id": [f"u{i}" for i in range(2000)],
                                                  "v": values}), overwrite=True)
    reps = duckdb_engine.con.execute(bootstrap_sums(duckdb_engine.table("p"), "person_id", ["v"],
                                                    replicates=400, seed=1))
    means = (reps.v_sum / reps.n).to_numpy()
    boot = percentile_interval(means, float(values.mean()))
    analytic = welch_mean(Moments.of(values))
    assert boot.high - boot.low == pytest.approx(analytic.high - analytic.low, rel=0.12)
