"""Confidence intervals over sufficient statistics.

Every figure shown to a marketer carries an interval. The inputs here are the few numbers
SQL hands back per arm, channel or day (a count, a sum, a sum of squares), never rows:
the engine does the heavy part, these functions only do arithmetic on a handful of floats.

- proportions: Wilson (one rate) and Newcombe's hybrid score interval (difference of two
  rates) stay inside [0, 1] and behave at 0 and 100 %, where the Wald interval collapses;
- means: Welch's t interval, which does not assume both groups share a variance;
- ratios (relative lift, ROAS, CPA): the delta method, i.e. a first-order Taylor expansion;
- anything else: a percentile bootstrap, whose replicate sums come from SQL
  (:mod:`passerelle.measure.bootstrap`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np

# scipy is imported inside the functions that use it: it takes a second or more, and
# audiences, validation and the CLI import this module without needing a p-value.
from passerelle.errors import PasserelleError


def t_quantile(p: float, df: float) -> float:
    """``scipy.stats.t.ppf(p, df)`` for 0 < p < 1, through the function it calls
    (``scipy.special``: a quarter of the import time of ``scipy.stats``)."""
    from scipy import special

    return float(special.stdtrit(df, p)) if df > 0 else math.nan


class MeasureError(PasserelleError, ValueError):
    """The figure asked for does not exist for this data (an empty arm, no variance...)."""


@dataclass(frozen=True)
class Moments:
    """Sufficient statistics of one metric in one group: people, sum, sum of squares.

    A 0/1 metric (converted or not) is ``Moments.proportion(successes, n)``: its variance is
    p(1 - p), the convention of GrowthBook's engine.
    """

    n: float
    total: float
    total_sq: float
    is_binary: bool = False  # a 0/1 metric: variance p(1 - p), as GrowthBook's ProportionStatistic

    @classmethod
    def of(cls, values: np.ndarray | list[float]) -> Moments:
        """Moments of an array (tests and small examples; production data comes from SQL)."""
        x = np.asarray(values, dtype=float)
        return cls(float(x.size), float(x.sum()), float((x * x).sum()))

    @classmethod
    def proportion(cls, successes: float, n: float) -> Moments:
        return cls(float(n), float(successes), float(successes), is_binary=True)

    @property
    def mean(self) -> float:
        if self.n <= 0:
            raise MeasureError("A group has no people, so it has no mean.",
                               "Check the group's filter and window; an empty arm cannot be "
                               "compared.")
        return self.total / self.n

    @property
    def variance(self) -> float:
        """Sample variance (n - 1 denominator), p(1 - p) for a 0/1 metric; 0 for one person."""
        if self.is_binary and self.n > 0:
            p = self.total / self.n
            return p * (1 - p)
        if self.n <= 1:
            return 0.0
        return max((self.total_sq - self.total * self.total / self.n) / (self.n - 1), 0.0)

    @property
    def se(self) -> float:
        """Standard error of the mean."""
        return math.sqrt(self.variance / self.n)


@dataclass(frozen=True)
class Interval:
    """An estimate with its interval at ``level`` (0.95 = 95 %), and how it was made."""

    estimate: float
    low: float
    high: float
    level: float = 0.95
    method: str = ""

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high

    def scaled(self, factor: float, shift: float = 0.0) -> Interval:
        """The interval of ``factor * x + shift`` (bounds swap for a negative factor)."""
        lo, hi = sorted((self.low * factor + shift, self.high * factor + shift))
        return Interval(self.estimate * factor + shift, lo, hi, self.level, self.method)


def _z(level: float) -> float:
    from scipy import special  # what scipy.stats.norm.ppf calls

    if not 0 < level < 1:
        raise MeasureError(f"A confidence level must lie between 0 and 1, got {level}.",
                           "Use for example 0.95 for a 95 % interval.")
    return float(special.ndtri(0.5 + level / 2))


def _check_count(successes: float, n: float) -> None:
    if n <= 0:
        raise MeasureError("A rate needs at least one person in the group; this group is empty.",
                           "Check the group's filter and window.")
    if not 0 <= successes <= n:
        raise MeasureError(f"{successes} successes out of {n} people is not a rate.",
                           "Successes must lie between 0 and the number of people.")


def wilson(successes: float, n: float, level: float = 0.95) -> Interval:
    """Wilson score interval for a proportion (statsmodels ``proportion_confint``, wilson)."""
    _check_count(successes, n)
    z = _z(level)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    low = 0.0 if successes == 0 else max(centre - half, 0.0)  # exact 0, not rounding noise
    high = 1.0 if successes == n else min(centre + half, 1.0)
    return Interval(p, low, high, level, "wilson")


def newcombe(successes_a: float, n_a: float, successes_b: float, n_b: float,
             level: float = 0.95) -> Interval:
    """Newcombe's hybrid score interval for ``p_b - p_a`` (Newcombe 1998, method 10).

    Built from the two Wilson intervals, so it stays within [-1, 1] and is sensible at 0 %.
    Matches statsmodels ``confint_proportions_2indep(method='newcomb', compare='diff')``.
    """
    a = wilson(successes_a, n_a, level)
    b = wilson(successes_b, n_b, level)
    pa, pb = a.estimate, b.estimate
    d = pb - pa
    low = d - math.sqrt((pb - b.low) ** 2 + (a.high - pa) ** 2)
    high = d + math.sqrt((b.high - pb) ** 2 + (pa - a.low) ** 2)
    return Interval(d, low, high, level, "newcombe")


def welch_mean(m: Moments, level: float = 0.95) -> Interval:
    """Student t interval for one mean."""

    mean = m.mean
    if m.n < 2:
        raise MeasureError("An interval for a mean needs at least two people.",
                           "Widen the window or the group.")
    half = t_quantile(0.5 + level / 2, m.n - 1) * m.se
    return Interval(mean, mean - half, mean + half, level, "t")


class Spread(Protocol):
    """A group's size and variance: :class:`Moments`, or an experiment arm whose variance
    was adjusted (CUPED)."""

    @property
    def n(self) -> float: ...

    @property
    def variance(self) -> float: ...


def welch_df(a: Spread, b: Spread) -> float:
    """Welch-Satterthwaite degrees of freedom."""
    va, vb = a.variance / a.n, b.variance / b.n
    num = (va + vb) ** 2
    den = va * va / (a.n - 1) + vb * vb / (b.n - 1)
    return num / den if den > 0 else math.inf


def welch_diff(a: Moments, b: Moments, level: float = 0.95) -> Interval:
    """Welch t interval for ``mean_b - mean_a`` (scipy ``ttest_ind(equal_var=False)``)."""
    _require_two_arms(a, b)
    d = b.mean - a.mean
    se = math.sqrt(a.variance / a.n + b.variance / b.n)
    if se == 0:
        raise MeasureError("The metric has the same value for every person in both groups, "
                           "so there is no uncertainty to put an interval on.",
                           "Check the metric's definition; a constant metric cannot be tested.")
    half = t_quantile(0.5 + level / 2, welch_df(a, b)) * se
    return Interval(d, d - half, d + half, level, "welch")


def _require_two_arms(a: Moments, b: Moments) -> None:
    for name, m in (("control", a), ("treatment", b)):
        if m.n < 2:
            raise MeasureError(f"The {name} group has {int(m.n)} people; a comparison needs at "
                               "least two in each group.",
                               "Wait for more exposure or check the assignment of the groups.")


def relative_lift_variance(a: Moments, b: Moments) -> float:
    """Delta-method variance of ``mean_b / mean_a - 1`` for independent groups."""
    ma, mb = a.mean, b.mean
    return b.variance / (ma * ma * b.n) + a.variance * mb * mb / (ma ** 4 * a.n)


def relative_lift(a: Moments, b: Moments, level: float = 0.95,
                  distribution: str = "t") -> Interval:
    """``mean_b / mean_a - 1`` with a delta-method interval.

    ``distribution='t'`` uses Welch's degrees of freedom, as GrowthBook does; ``'normal'``
    the normal quantile. Refused when the control mean is 0 (a lift over nothing).
    """
    _require_two_arms(a, b)
    if a.mean == 0:
        raise MeasureError("The control group's mean is 0, so a relative lift is undefined.",
                           "Read the absolute difference instead.")
    est = b.mean / a.mean - 1
    se = math.sqrt(relative_lift_variance(a, b))
    if se == 0:
        raise MeasureError("The metric has no variance in either group; a relative lift has no "
                           "interval.", "Check the metric's definition.")
    q = (t_quantile(0.5 + level / 2, welch_df(a, b)) if distribution == "t"
         else _z(level))
    return Interval(est, est - q * se, est + q * se, level, f"delta-{distribution}")


def ratio_of_sums(num: Moments, den: Moments, sum_products: float,
                  level: float = 0.95) -> Interval:
    """``sum(num) / sum(den)`` over the same people, with a delta-method interval.

    For per-person ratios such as revenue per order where both parts vary by person:
    Var(R) ≈ (Var(x) - 2 R Cov(x, y) + R² Var(y)) / (n ȳ²).
    """
    if num.n != den.n:
        raise MeasureError("A ratio of sums needs both sums over the same people.",
                           "Aggregate numerator and denominator in the same query.")
    n = num.n
    if den.total == 0:
        raise MeasureError("The denominator of the ratio is 0.", "The ratio does not exist here.")
    r = num.total / den.total
    cov = (sum_products - num.total * den.total / n) / (n - 1) if n > 1 else 0.0
    var = (num.variance - 2 * r * cov + r * r * den.variance) / (n * den.mean ** 2)
    half = _z(level) * math.sqrt(max(var, 0.0))
    return Interval(r, r - half, r + half, level, "delta")


def percentile_interval(replicates: np.ndarray | list[float], estimate: float,
                        level: float = 0.95) -> Interval:
    """Percentile bootstrap interval from replicate estimates (NaN replicates dropped)."""
    reps = np.asarray(replicates, dtype=float)
    reps = reps[np.isfinite(reps)]
    if reps.size < 2:
        raise MeasureError("The bootstrap produced fewer than two usable replicates.",
                           "Use more replicates or a larger group.")
    lo, hi = np.quantile(reps, [0.5 - level / 2, 0.5 + level / 2])
    return Interval(estimate, float(lo), float(hi), level, "bootstrap-percentile")
