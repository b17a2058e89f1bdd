"""Experiment estimators vs scipy, statsmodels and gbstats (GrowthBook's stats engine).

gbstats 0.8.0 cannot be installed beside our numpy 2 / pandas 3, so its numbers are pinned
here; `tests/gbstats_reference.py`, run in a separate venv, prints every one of them from
the same inputs.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import NormalIndPower, zt_ind_solve_power
from statsmodels.stats.proportion import proportion_effectsize, proportions_ztest
from statsmodels.stats.weightstats import ttest_ind

from passerelle.measure import (
    CupedArm,
    MeasureError,
    Moments,
    assign,
    assign_expr,
    bayesian,
    benjamini_hochberg,
    cuped,
    holm,
    sample_size_means,
    sample_size_proportions,
    sequential,
    srm_check,
    welch_ttest,
)
from passerelle.measure import (
    proportions_ztest as z_test,
)

# the inputs of tests/gbstats_reference.py
MEAN_A = Moments(3407, 76223.4, 3817445.2)
MEAN_B = Moments(3461, 81943.1, 4203112.7)
PROP_A = Moments.proportion(360, 4000)
PROP_B = Moments.proportion(412, 4012)
CUPED_A = CupedArm(Moments(3000, 6200, 58000), Moments(3000, 5900, 52000), 47000)
CUPED_B = CupedArm(Moments(3050, 6900, 63500), Moments(3050, 6050, 54000), 49500)

RNG = np.random.default_rng(11)
X = RNG.normal(10, 3, 200)
Y = RNG.normal(10.8, 4, 180)


def test_welch_ttest_matches_scipy_and_statsmodels():
    got = welch_ttest(Moments.of(X), Moments.of(Y))
    ref = stats.ttest_ind(Y, X, equal_var=False)
    assert got.statistic == pytest.approx(ref.statistic, rel=1e-10)
    assert got.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    t, p, df = ttest_ind(Y, X, usevar="unequal")  # statsmodels 0.15
    assert (got.statistic, got.p_value, got.df) == pytest.approx((t, p, df), rel=1e-9)


def test_proportions_ztest_matches_statsmodels():
    got = z_test(360, 4000, 412, 4012)
    z, p = proportions_ztest([412, 360], [4012, 4000])  # pooled variance (statsmodels default)
    assert (got.statistic, got.p_value) == pytest.approx((z, p), rel=1e-10)


@pytest.mark.parametrize(("a", "b", "rel", "abs_"), [
    # gbstats 0.8.0 TwoSidedTTest: (expected, ci low, ci high, p) relative, then absolute
    (MEAN_A, MEAN_B, (0.058265424534642514, 0.00334866767478445, 0.11318218139450058,
                      0.03757688464683473),
     (1.303548212642756, 0.10954237690676982, 2.497554048378742, 0.03237734707301643)),
    (PROP_A, PROP_B, (0.14102138030353387, -0.012412153455868463, 0.2944549140629362,
                      0.07163285641513206),
     (0.012691924227318047, -0.00022836338268091352, 0.025612211837317007,
      0.05418806888401129)),
])
def test_lift_and_difference_match_gbstats_ttest(a, b, rel, abs_):
    got = welch_ttest(a, b)
    assert (got.lift.estimate, got.lift.low, got.lift.high, got.lift_p_value) == pytest.approx(
        rel, rel=1e-9)
    assert (got.difference.estimate, got.difference.low, got.difference.high,
            got.p_value) == pytest.approx(abs_, rel=1e-9)


@pytest.mark.parametrize(("a", "b", "relative", "ref"), [
    # gbstats 0.8.0 EffectBayesianABTest, flat prior: expected, ci, chance to win, risk
    (MEAN_A, MEAN_B, True, (0.058265424534642514, 0.0033583497328905643, 0.11317249933639445,
                            0.9812300643302536, 0.058456971252024245, 0.00019154671738173806)),
    (PROP_A, PROP_B, True, (0.14102138030353387, -0.012388896283035494, 0.2944316568901032,
                            0.9642024242467758, 0.14213403166707547, 0.0011126513635415884)),
    (MEAN_A, MEAN_B, False, (1.303548212642756, 0.10975288522047344, 2.4973435400650383,
                             0.9838288960144654, 1.307072068593117, 0.003523855950360937)),
    (PROP_A, PROP_B, False, (0.012691924227318047, -0.00022640494924960897,
                             0.0256102534038857, 0.9729236998385391, 0.012760076164420181,
                             6.815193710213429e-05)),
])
def test_bayesian_matches_gbstats(a, b, relative, ref):
    got = bayesian(a, b, relative=relative)
    assert (got.effect.estimate, got.effect.low, got.effect.high, got.chance_to_win,
            got.expected_loss_control, got.expected_loss_variant) == pytest.approx(ref, rel=1e-8)


def test_bayesian_proper_prior_matches_gbstats():
    # gbstats 0.8.0, GaussianPrior(mean=0, variance=0.09, proper=True), relative
    got = bayesian(PROP_A, PROP_B, prior_mean=0.0, prior_variance=0.09)
    assert (got.effect.estimate, got.effect.low, got.effect.high, got.chance_to_win,
            got.expected_loss_control, got.expected_loss_variant) == pytest.approx(
        (0.1320335567680334, -0.0164075328709207, 0.2804746464069875, 0.9593615421992907,
         0.13327890432405318, 0.0012453475560197569), rel=1e-8)


def test_a_variant_at_zero_for_everyone_is_a_clear_error_not_a_division_by_zero():
    # control varies, nobody in the variant converted: the delta method's variance is 0
    control, variant = Moments.proportion(30, 100), Moments.proportion(0, 100)
    for test in (bayesian, welch_ttest):
        with pytest.raises(MeasureError, match="uncertainty of a relative lift"):
            test(control, variant)
    assert bayesian(control, variant, relative=False).effect.estimate == pytest.approx(-0.3)


def test_cuped_matches_gbstats_regression_adjustment():
    a, b, theta = cuped(CUPED_A, CUPED_B)
    assert theta == pytest.approx(0.857135692756734, rel=1e-10)  # gbstats compute_theta
    got = welch_ttest(a, b)
    # gbstats 0.8.0 TwoSidedTTest on RegressionAdjustedStatistic
    assert (got.lift.estimate, got.lift.low, got.lift.high, got.lift_p_value) == pytest.approx(
        (0.08763320822965112, 0.02847110352684422, 0.146795312932458, 0.003700509783113537),
        rel=1e-9)
    assert (got.difference.estimate, got.difference.low, got.difference.high,
            got.p_value) == pytest.approx(
        (0.181108630341279, 0.06422216292644674, 0.29799509775611127, 0.0023960310086548198),
        rel=1e-9)
    plain = welch_ttest(CUPED_A.post, CUPED_B.post)
    assert got.difference.high - got.difference.low < plain.difference.high - plain.difference.low


@pytest.mark.parametrize(("a", "b", "tuning", "rel", "abs_"), [
    # gbstats 0.8.0 SequentialTwoSidedTTest: (expected, ci low, ci high, p)
    (MEAN_A, MEAN_B, 5000, (0.058265424534642514, -0.02691336771748378, 0.1434442167867688,
                            0.47576937648398315),
     (1.303548212642756, -0.5484179420506121, 3.1555143673361243, 0.42342163347941497)),
    (PROP_A, PROP_B, 5000, (0.14102138030353387, -0.09751116518115258, 0.37955392578822034,
                            0.8225099265229662),
     (0.012691924227318047, -0.007394356890602499, 0.03277820534523859, 0.6639695635521483)),
    (PROP_A, PROP_B, 20000, (0.14102138030353387, -0.10345792892258016, 0.3855006895296479,
                             0.5947510891462229), None),
])
def test_sequential_matches_gbstats(a, b, tuning, rel, abs_):
    got = sequential(a, b, tuning=tuning)
    assert (got.lift.estimate, got.lift.low, got.lift.high, got.lift_p_value) == pytest.approx(
        rel, rel=1e-9)
    if abs_:
        assert (got.difference.estimate, got.difference.low, got.difference.high,
                got.p_value) == pytest.approx(abs_, rel=1e-9)


@pytest.mark.parametrize(("obs", "w", "gb"), [
    ([5050, 4950], [0.5, 0.5], 0.31731050786291115),  # gbstats check_srm
    ([1010, 5120, 4870], [0.1, 0.45, 0.45], 0.0007119700247742134),
])
def test_srm_matches_scipy_and_gbstats(obs, w, gb):
    got = srm_check(obs, w)
    ref = stats.chisquare(obs, np.array(w) / sum(w) * sum(obs))
    assert (got.chi2, got.p_value) == pytest.approx((ref.statistic, ref.pvalue), rel=1e-10)
    assert got.p_value == pytest.approx(gb, rel=1e-10)
    assert got.mismatch == (gb < 0.001)
    if got.mismatch:
        assert "SAMPLE RATIO MISMATCH" in got.message


P = [0.01, 0.04, 0.03, 0.005, 0.2, 0.04]


def test_holm_and_bh_match_statsmodels():
    assert holm(P) == pytest.approx(multipletests(P, method="holm")[1].tolist(), rel=1e-12)
    assert benjamini_hochberg(P) == pytest.approx(
        multipletests(P, method="fdr_bh")[1].tolist(), rel=1e-12)


@pytest.mark.parametrize(("p0", "mde", "ratio"), [(0.09, 0.10, 1.0), (0.15, 0.05, 1.0),
                                                 (0.3, 0.2, 2.0)])
def test_sample_size_proportions_matches_statsmodels(p0, mde, ratio):
    got = sample_size_proportions(p0, mde, alpha=0.05, power=0.8, ratio=ratio)
    h = proportion_effectsize(p0 * (1 + mde), p0)
    ref = zt_ind_solve_power(effect_size=h, alpha=0.05, power=0.8, ratio=ratio)
    assert got.exact == pytest.approx(ref, rel=1e-6)
    assert got.control == int(np.ceil(ref))


def test_sample_size_means_matches_statsmodels():
    got = sample_size_means(std=40.0, mde=2.5, alpha=0.05, power=0.9)
    ref = NormalIndPower().solve_power(effect_size=2.5 / 40, alpha=0.05, power=0.9)
    assert got.exact == pytest.approx(ref, rel=1e-6)


def test_bad_experiment_inputs_have_clear_messages():
    with pytest.raises(MeasureError, match="no people"):
        welch_ttest(Moments(0, 0, 0), MEAN_B)
    with pytest.raises(MeasureError, match="zero variance"):
        welch_ttest(Moments.of([3.0, 3.0, 3.0]), Moments.of([3.0, 3.0]))
    with pytest.raises(MeasureError, match="no people"):
        z_test(0, 0, 3, 10)
    with pytest.raises(MeasureError, match="Nobody converted"):
        z_test(0, 100, 0, 100)
    with pytest.raises(MeasureError, match="control arm's mean is 0"):
        z_test(0, 100, 5, 100)
    with pytest.raises(MeasureError):
        sample_size_proportions(0.1, 0.0)


def test_assignment_is_deterministic_and_balanced():
    weights = {"control": 50, "treatment": 50}
    arms = [assign(f"person-{i}", "checkout_express", weights) for i in range(20_000)]
    assert arms == [assign(f"person-{i}", "checkout_express", weights) for i in range(20_000)]
    share = arms.count("treatment") / len(arms)
    assert abs(share - 0.5) < 0.015
    assert srm_check([arms.count("control"), arms.count("treatment")], [1, 1]).mismatch is False
    # a new salt reshuffles: about half the people change arm
    other = [assign(f"person-{i}", "homepage_hero", weights) for i in range(20_000)]
    assert 0.45 < np.mean([a != b for a, b in zip(arms, other, strict=True)]) < 0.55


def test_assign_expr_matches_python(engine):
    ids = [f"C{i:04d}" for i in range(300)]
    engine.con.create_table("people", pa.table({"person_id": ids}), overwrite=True)
    t = engine.table("people")
    weights = {"control": 1, "a": 1, "b": 2}
    got = dict(engine.con.execute(t.select("person_id", arm=assign_expr(t.person_id, "exp1",
                                                                         weights)))
               .itertuples(index=False, name=None))
    assert got == {i: assign(i, "exp1", weights) for i in ids}
