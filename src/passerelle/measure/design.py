"""Designing and guarding an experiment: sample size, assignment, SRM, multiple tests.

- :func:`sample_size_proportions` / :func:`sample_size_means`: people per arm for a
  minimum detectable effect, solved on the same normal power curve as statsmodels
  ``NormalIndPower`` (Cohen's h for proportions), both tails included;
- :func:`assign` / :func:`assign_expr`: deterministic assignment from a hash of the
  person and the experiment's salt, identical in Python and in SQL;
- :func:`srm_check`: the sample-ratio-mismatch chi-square test; a mismatch means the
  assignment or the logging is broken, and no result of the test should be trusted;
- :func:`holm`, :func:`benjamini_hochberg`: adjusted p-values across variants and metrics.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import ibis
import ibis.expr.types as ir
import numpy as np

# scipy is imported inside the functions that use it: it takes a second or more, and
# audiences, validation and the CLI import this module without needing a p-value.
from passerelle.measure.hashing import bucket, bucket_expr, join_key, thresholds
from passerelle.measure.intervals import MeasureError

# -- sample size -------------------------------------------------------------------------


@dataclass(frozen=True)
class SampleSize:
    control: int  # people in the control arm (rounded up)
    variant: int  # people in each variant arm (rounded up)
    exact: float  # unrounded control size
    effect_size: float  # standardised effect (Cohen's d or h)


def _power(d: float, n1: float, ratio: float, alpha: float) -> float:
    from scipy import stats

    crit = stats.norm.isf(alpha / 2)
    lam = d * math.sqrt(n1 / (1 + 1 / ratio))
    return float(stats.norm.sf(crit - lam) + stats.norm.cdf(-crit - lam))


def _solve(d: float, alpha: float, power: float, ratio: float) -> SampleSize:
    from scipy import optimize, stats

    if d == 0:
        raise MeasureError("A minimum detectable effect of 0 needs infinitely many people.",
                           "Give the smallest effect worth detecting, e.g. 0.05 for +5 %.")
    if not (0 < alpha < 1 and 0 < power < 1 and ratio > 0):
        raise MeasureError("alpha and power must lie between 0 and 1, ratio above 0.",
                           "Typical values: alpha 0.05, power 0.8, ratio 1.")
    d = abs(d)
    guess = (stats.norm.isf(alpha / 2) + stats.norm.ppf(power)) ** 2 / d**2 * (1 + 1 / ratio)
    n1 = optimize.brentq(lambda n: _power(d, n, ratio, alpha) - power, 1e-6, guess * 2 + 10,
                         xtol=1e-10)
    return SampleSize(math.ceil(n1 - 1e-9), math.ceil(n1 * ratio - 1e-9), n1, d)


def sample_size_proportions(baseline: float, mde: float, relative: bool = True,
                            alpha: float = 0.05, power: float = 0.8,
                            ratio: float = 1.0) -> SampleSize:
    """People per arm to detect a change of a conversion rate from ``baseline``.

    ``mde`` is relative (0.1 = +10 %) unless ``relative=False`` (then in points, 0.01).
    ``ratio`` = variant size / control size. Uses Cohen's h = 2·asin√p₂ − 2·asin√p₁ and
    the two-sided normal power, as statsmodels ``zt_ind_solve_power`` with
    ``proportion_effectsize``.
    """
    target = baseline * (1 + mde) if relative else baseline + mde
    if not (0 < baseline < 1 and 0 < target < 1):
        raise MeasureError(f"Rates must lie strictly between 0 and 1 (baseline {baseline}, "
                           f"target {target}).", "Check the baseline rate and the MDE.")
    h = 2 * math.asin(math.sqrt(target)) - 2 * math.asin(math.sqrt(baseline))
    return _solve(h, alpha, power, ratio)


def sample_size_means(std: float, mde: float, alpha: float = 0.05, power: float = 0.8,
                      ratio: float = 1.0) -> SampleSize:
    """People per arm to detect an absolute change ``mde`` of a mean with std ``std``."""
    if std <= 0:
        raise MeasureError("The metric's standard deviation must be positive.",
                           "Estimate it from a past period of the same metric.")
    return _solve(mde / std, alpha, power, ratio)


# -- assignment --------------------------------------------------------------------------


def _cumulative(weights: Mapping[str, float]) -> tuple[tuple[str, ...], tuple[int, ...]]:
    return _cumulative_of(tuple(weights.items()))


@functools.lru_cache(maxsize=256)  # a decision draws its holdout with the same few weights
def _cumulative_of(items: tuple[tuple[str, float], ...]
                   ) -> tuple[tuple[str, ...], tuple[int, ...]]:
    weights = dict(items)
    if not weights or any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
        raise MeasureError("An experiment needs variants with non-negative weights summing to "
                           "more than 0.", "Example: {'control': 50, 'treatment': 50}.")
    names = list(weights)
    total = float(sum(weights.values()))
    cum = np.cumsum([weights[k] / total for k in names]).tolist()
    return tuple(names), tuple(thresholds(cum[:-1]))


def assign(person_id: str, salt: str, weights: Mapping[str, float]) -> str:
    """The variant of ``person_id`` in the experiment salted ``salt``.

    The bucket is the first 32 bits of MD5(``salt:person_id``); variants take consecutive
    ranges in the order given, in proportion to their weights. Changing the salt
    reshuffles everyone; changing nothing keeps everyone where they were.
    """
    names, cuts = _cumulative(weights)
    h = bucket(f"{salt}:{person_id}")
    for name, cut in zip(names, cuts, strict=False):
        if h < cut:
            return name
    return names[-1]


def assign_expr(person_id: ir.Value, salt: str, weights: Mapping[str, float]) -> ir.StringValue:
    """:func:`assign` as an Ibis expression over a person-id column."""
    names, cuts = _cumulative(weights)
    h = bucket_expr(join_key(salt, person_id))
    if len(names) == 1:
        return ibis.literal(names[0])
    cases = [(h < cut, ibis.literal(name)) for name, cut in zip(names, cuts, strict=False)]
    return ibis.cases(*cases, else_=ibis.literal(names[-1]))


# -- sample ratio mismatch ---------------------------------------------------------------


@dataclass(frozen=True)
class SrmResult:
    chi2: float
    p_value: float
    expected: tuple[float, ...]
    mismatch: bool  # p below the threshold: do not trust this experiment's results
    message: str


def srm_check(observed: Sequence[float], weights: Sequence[float],
              threshold: float = 0.001) -> SrmResult:
    """Pearson chi-square of observed arm sizes against the planned split.

    Same statistic and p as scipy ``chisquare(observed, f_exp)``. The threshold is strict
    (0.001, GrowthBook's default) because the check runs on every look.
    """
    from scipy import stats

    obs = np.asarray(observed, dtype=float)
    w = np.asarray(weights, dtype=float)
    if obs.shape != w.shape or obs.size < 2:
        raise MeasureError("The SRM check needs one planned weight per arm and two arms or more.",
                           "Pass the observed people per arm and the planned weights.")
    total = obs.sum()
    if total == 0:
        return SrmResult(0.0, 1.0, tuple(0.0 for _ in obs), False, "No one exposed yet.")
    expected = w / w.sum() * total
    chi2 = float((((obs - expected) ** 2) / expected).sum())
    p = float(stats.chi2.sf(chi2, obs.size - 1))
    mismatch = p < threshold
    message = (f"SAMPLE RATIO MISMATCH: arms of {obs.astype(int).tolist()} people where the plan "
               f"expects {np.round(expected, 1).tolist()} (p = {p:.2g}). Assignment or tracking "
               "is broken; do not read this experiment's results until it is fixed."
               if mismatch else f"Split as planned (p = {p:.2g}).")
    return SrmResult(chi2, p, tuple(expected.tolist()), mismatch, message)


# -- multiple comparisons ----------------------------------------------------------------


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm step-down adjusted p-values (family-wise error), as statsmodels ``'holm'``."""
    p = np.asarray(p_values, dtype=float)
    m = p.size
    order = np.argsort(p)
    adj = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out = np.empty(m)
    out[order] = np.minimum(adj, 1.0)
    return out.tolist()


def benjamini_hochberg(p_values: Sequence[float]) -> list[float]:
    """Benjamini-Hochberg adjusted p-values (false discovery rate), statsmodels ``'fdr_bh'``."""
    p = np.asarray(p_values, dtype=float)
    m = p.size
    order = np.argsort(p)[::-1]
    ranks = m - np.arange(m)  # rank of each p in descending order
    adj = np.minimum.accumulate(p[order] * m / ranks)
    out = np.empty(m)
    out[order] = np.minimum(adj, 1.0)
    return out.tolist()
