"""A/B/n test analysis over per-arm sufficient statistics.

Each function takes the control arm ``a`` and a variant ``b`` as :class:`Moments` (people,
sum, sum of squares: what one GROUP BY returns) or as :class:`ArmStats` (mean and
variance already adjusted, e.g. by CUPED), and returns the difference and the relative
lift, each with its interval. The conventions follow GrowthBook's open stats engine
(``gbstats``), against which the tests pin their numbers: relative lift is
``mean_b / mean_a - 1`` with a delta-method variance, and Welch's degrees of freedom.

Design, assignment, sample-ratio check and multiple comparisons live in
:mod:`passerelle.measure.design`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import stats

from passerelle.measure.intervals import Interval, MeasureError, Moments, newcombe, welch_df


@dataclass(frozen=True)
class ArmStats:
    """One arm ready for a test: people, mean, variance of the (possibly adjusted) metric.

    ``baseline_mean`` is the unadjusted mean, the denominator of a relative lift.
    """

    n: float
    mean: float
    variance: float
    baseline_mean: float

    @classmethod
    def of(cls, m: Moments | ArmStats) -> ArmStats:
        if isinstance(m, ArmStats):
            return m
        if m.n <= 0:
            raise MeasureError("An arm of the experiment has no people.",
                               "Check the assignment: an empty arm cannot be compared.")
        return cls(m.n, m.mean, m.variance, m.mean)


@dataclass(frozen=True)
class TestResult:
    """Difference ``b - a`` and relative lift ``b / a - 1`` with intervals and p-values."""

    difference: Interval
    lift: Interval
    p_value: float  # of the test on ``difference`` (the classical test)
    lift_p_value: float  # of the test on ``lift`` (GrowthBook's frequentist engine)
    statistic: float
    df: float
    method: str


@dataclass(frozen=True)
class BayesianResult:
    """Posterior of the effect under a Gaussian model (GrowthBook's Bayesian engine)."""

    effect: Interval  # posterior mean and credible interval
    chance_to_win: float  # P(variant better than control)
    expected_loss_control: float  # loss expected if we keep control and it is worse
    expected_loss_variant: float  # loss expected if we ship the variant and it is worse
    relative: bool


def _arms(a: Moments | ArmStats, b: Moments | ArmStats) -> tuple[ArmStats, ArmStats]:
    x, y = ArmStats.of(a), ArmStats.of(b)
    for name, arm in (("control", x), ("variant", y)):
        if arm.n < 2:
            raise MeasureError(f"The {name} arm has {int(arm.n)} people; a test needs at least "
                               "two in each arm.", "Wait for more exposure or check assignment.")
    if x.variance <= 0 and y.variance <= 0:
        raise MeasureError("The metric has the same value for everyone in both arms (zero "
                           "variance), so the arms cannot be compared statistically.",
                           "Check the metric's definition and the window.")
    return x, y


def _lift_parts(a: ArmStats, b: ArmStats) -> tuple[float, float]:
    """Relative lift and its delta-method variance (gbstats ``frequentist_variance``)."""
    if a.baseline_mean == 0 or a.mean == 0:
        raise MeasureError("The control arm's mean is 0, so a relative lift is undefined.",
                           "Read the absolute difference instead.")
    ma, mb = a.baseline_mean, b.baseline_mean
    est = (b.mean - a.mean) / ma
    var = b.variance / (ma * ma * b.n) + a.variance * mb * mb / (ma ** 4 * a.n)
    if var <= 0:  # the variant's metric is 0 for everyone: the delta method gives no spread
        raise MeasureError("The variant's metric is 0 for everyone, so the uncertainty of a "
                           "relative lift (-100 %) cannot be estimated.",
                           "Read the absolute difference instead, or wait for more data.")
    return est, var


def _diff_parts(a: ArmStats, b: ArmStats) -> tuple[float, float]:
    return b.mean - a.mean, a.variance / a.n + b.variance / b.n


def _t_result(est: float, var: float, df: float, level: float,
              method: str) -> tuple[Interval, float, float]:
    se = math.sqrt(var)
    q = float(stats.t.ppf(0.5 + level / 2, df))
    t = est / se
    p = float(2 * stats.t.sf(abs(t), df))
    return Interval(est, est - q * se, est + q * se, level, method), p, t


def welch_ttest(a: Moments | ArmStats, b: Moments | ArmStats, level: float = 0.95) -> TestResult:
    """Welch's unequal-variance t-test of ``mean_b - mean_a``, and the relative lift.

    Same t, df and p as scipy ``ttest_ind(equal_var=False)`` and statsmodels
    ``ttest_ind(usevar='unequal')``; the lift matches gbstats ``TwoSidedTTest``.
    """
    x, y = _arms(a, b)
    df = welch_df(x, y)
    diff, p, t = _t_result(*_diff_parts(x, y), df, level, "welch")
    lift, lift_p, _ = _t_result(*_lift_parts(x, y), df, level, "delta-welch")
    return TestResult(diff, lift, p, lift_p, t, df, "welch")


def proportions_ztest(successes_a: float, n_a: float, successes_b: float, n_b: float,
                      level: float = 0.95) -> TestResult:
    """Two-proportion z-test (pooled variance) of ``p_b - p_a``.

    z and p as statsmodels ``proportions_ztest``; the difference interval is Newcombe's
    (it stays in range at 0 %); the lift uses the delta method with a normal quantile.
    """
    for name, s, n in (("control", successes_a, n_a), ("variant", successes_b, n_b)):
        if n <= 0:
            raise MeasureError(f"The {name} arm has no people.", "An empty arm cannot be compared.")
        if not 0 <= s <= n:
            raise MeasureError(f"{s} conversions out of {n} people in the {name} arm.",
                               "Conversions must lie between 0 and the number of people.")
    pooled = (successes_a + successes_b) / (n_a + n_b)
    se0 = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    if se0 == 0:
        raise MeasureError("Nobody converted in either arm (or everybody did): the rates cannot "
                           "be compared.", "Wait for conversions or widen the window.")
    d = successes_b / n_b - successes_a / n_a
    z = d / se0
    p = float(2 * stats.norm.sf(abs(z)))
    diff = newcombe(successes_a, n_a, successes_b, n_b, level)
    x = ArmStats.of(Moments.proportion(successes_a, n_a))
    y = ArmStats.of(Moments.proportion(successes_b, n_b))
    est, var = _lift_parts(x, y)
    zq = float(stats.norm.ppf(0.5 + level / 2))
    se = math.sqrt(var)
    lift = Interval(est, est - zq * se, est + zq * se, level, "delta-normal")
    lift_p = float(2 * stats.norm.sf(abs(est / se))) if se > 0 else 1.0
    return TestResult(diff, lift, p, lift_p, z, math.inf, "z-pooled")


def bayesian(a: Moments | ArmStats, b: Moments | ArmStats, relative: bool = True,
             level: float = 0.95, prior_mean: float = 0.0,
             prior_variance: float | None = None) -> BayesianResult:
    """Probability to beat control and expected loss (GrowthBook's Gaussian model).

    The effect (relative lift by default, else the difference) has a normal likelihood
    with the delta-method variance; with ``prior_variance`` None the prior is flat (as
    gbstats' default improper prior), else a normal prior N(prior_mean, prior_variance)
    on the same scale. Expected losses are E[max(-effect, 0)] when shipping the variant and
    E[max(effect, 0)] when keeping control.
    """
    x, y = _arms(a, b)
    est, var = _lift_parts(x, y) if relative else _diff_parts(x, y)
    if prior_variance is not None:
        prec = 1 / var + 1 / prior_variance
        est = (est / var + prior_mean / prior_variance) / prec
        var = 1 / prec
    sd = math.sqrt(var)
    q = float(stats.norm.ppf(0.5 + level / 2))
    ratio = est / sd
    density, up, down = stats.norm.pdf(ratio), stats.norm.cdf(ratio), stats.norm.cdf(-ratio)
    loss_variant = sd * density - est * down  # E[max(-X, 0)]
    loss_control = sd * density + est * up  # E[max(X, 0)]
    return BayesianResult(Interval(est, est - q * sd, est + q * sd, level, "bayes-gaussian"),
                          float(up), float(loss_control), float(loss_variant), relative)


@dataclass(frozen=True)
class CupedArm:
    """Post-period metric, pre-period covariate and Σ post·pre for one arm."""

    post: Moments
    pre: Moments
    sum_products: float


def cuped(a: CupedArm, b: CupedArm) -> tuple[ArmStats, ArmStats, float]:
    """CUPED (Deng et al. 2013): subtract ``theta * pre`` to remove pre-period noise.

    ``theta = Cov(post, pre) / Var(pre)`` over both arms pooled (as gbstats
    ``compute_theta``), so it does not depend on the treatment. Returns the adjusted arms
    (pass them to :func:`welch_ttest`, :func:`bayesian` or :func:`sequential`) and theta.
    With no pre-period variance, theta is 0 and the arms are returned unadjusted.
    """
    for arm in (a, b):
        if arm.post.n != arm.pre.n:
            raise MeasureError("CUPED needs the pre-period covariate for the same people as "
                               "the metric.", "Aggregate both in one query, 0 for no activity.")
    n = a.post.n + b.post.n
    post = Moments(n, a.post.total + b.post.total, a.post.total_sq + b.post.total_sq)
    pre = Moments(n, a.pre.total + b.pre.total, a.pre.total_sq + b.pre.total_sq)
    sp = a.sum_products + b.sum_products
    cov = (sp - post.total * pre.total / n) / (n - 1)
    theta = cov / pre.variance if pre.variance > 0 and post.variance > 0 else 0.0
    return _adjust(a, theta), _adjust(b, theta), theta


def _adjust(arm: CupedArm, theta: float) -> ArmStats:
    n = arm.post.n
    if n <= 1:
        return ArmStats(n, arm.post.total / n if n else 0.0, 0.0, arm.post.total / n if n else 0.0)
    cov = (arm.sum_products - arm.post.total * arm.pre.total / n) / (n - 1)
    var = arm.post.variance + theta * theta * arm.pre.variance - 2 * theta * cov
    return ArmStats(n, arm.post.mean - theta * arm.pre.mean, var, arm.post.mean)


def sequential(a: Moments | ArmStats, b: Moments | ArmStats, level: float = 0.95,
               tuning: float = 5000.0) -> TestResult:
    """Always-valid interval and p-value: safe to look every day (mixture SPRT).

    Asymptotic confidence sequence of Waudby-Smith et al. (arXiv 2103.06476v7, eq. 9,
    with rho from eq. 161 and the e-value of eq. 155), as in gbstats
    ``SequentialTwoSidedTTest``. ``tuning`` is the sample size (both arms) at which the
    interval is tightest; GrowthBook's default is 5000. Both the difference and the lift get
    their always-valid interval and p-value.
    """
    x, y = _arms(a, b)
    alpha = 1 - level
    big_n = x.n + y.n
    rho2 = (-2 * math.log(alpha) + math.log(-2 * math.log(alpha) + 1)) / tuning
    diff, p_diff, stat_diff = _msprt(*_diff_parts(x, y), big_n, rho2, level)
    lift, p_lift, _ = _msprt(*_lift_parts(x, y), big_n, rho2, level)
    return TestResult(diff, lift, p_diff, p_lift, stat_diff, math.inf, "sequential")


def _msprt(est: float, var: float, big_n: float, rho2: float,
           level: float) -> tuple[Interval, float, float]:
    """Half-width (eq. 9) and always-valid p-value (1 / e-value, eq. 155)."""
    alpha = 1 - level
    nr2 = big_n * rho2 + 1
    half = math.sqrt(var * big_n) * math.sqrt(2 * nr2 * math.log(math.sqrt(nr2) / alpha)
                                              / (big_n * big_n * rho2))
    st2 = est * est * big_n / var
    log_e = rho2 * st2 / (2 * nr2) - 0.5 * math.log(nr2)
    p = min(math.exp(-log_e), 1.0)
    return Interval(est, est - half, est + half, level, "sequential-msprt"), p, est / math.sqrt(var)
