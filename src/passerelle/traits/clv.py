"""Customer lifetime value: BG/NBD (purchases, P(alive)) and Gamma-Gamma (spend per purchase).

Pure functions over per-person sufficient statistics, which SQL computes (see
:mod:`passerelle.traits.builtins`): ``frequency`` (repeat purchase periods), ``recency`` (time
from the first to the last purchase), ``T`` (time from the first purchase to now) and
``monetary`` (mean value of the repeat purchases). Time is in whatever unit the caller chose
(Passerelle uses weeks, as the CDNOW literature does); the parameters scale with it.

References
- Fader, Hardie & Lee (2005), "Counting Your Customers the Easy Way: An Alternative to the
  Pareto/NBD Model", Marketing Science 24(2): the BG/NBD likelihood (eq. 6), conditional
  expectation (eq. 10) and P(alive) (appendix / note "Computing P(alive)").
- Fader & Hardie (2013), "The Gamma-Gamma Model of Monetary Value": the spend likelihood and
  the conditional expected average spend.

Both fits maximise the log-likelihood on log-parameters (so the optimiser cannot leave the
positive orthant) and report standard errors from the inverse Hessian of the negative
log-likelihood, moved to the natural scale by the delta method (se(θ) = θ·se(log θ)).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy import optimize, special

from passerelle.errors import PasserelleError

ArrayLike = np.ndarray | float | int


class FitError(PasserelleError, ValueError):
    """The model could not be fitted (too little data, or the optimiser did not converge)."""


@dataclass(frozen=True)
class BGNBDParams:
    r: float
    alpha: float
    a: float
    b: float

    def as_array(self) -> np.ndarray:
        return np.array([self.r, self.alpha, self.a, self.b])


@dataclass(frozen=True)
class GammaGammaParams:
    p: float
    q: float
    v: float

    def as_array(self) -> np.ndarray:
        return np.array([self.p, self.q, self.v])


@dataclass(frozen=True)
class Fit:
    """A maximum-likelihood fit: the parameters, their standard errors and the fit quality."""

    params: BGNBDParams | GammaGammaParams
    standard_errors: dict[str, float]
    log_likelihood: float  # total, at the optimum
    n: int  # people (sum of weights) the fit used
    converged: bool
    message: str = ""
    sample_of: int = 0  # people the n were drawn from when the fit used a sample (0: all)
    covariance: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)), repr=False)

    def summary(self) -> dict[str, dict[str, float]]:
        """{parameter: {estimate, se, lower_95, upper_95}} (Wald interval on the log scale,
        so the bounds stay positive)."""
        out = {}
        for name, value in vars(self.params).items():
            se = self.standard_errors.get(name, float("nan"))
            half = 1.959963984540054 * se / value if value > 0 else float("nan")
            with np.errstate(over="ignore"):  # a degenerate fit: the bound is infinite
                bounds = value * np.exp(-half), value * np.exp(half)
            out[name] = {"estimate": value, "se": se, "lower_95": bounds[0],
                         "upper_95": bounds[1]}
        return out


# --------------------------------------------------------------------------------- BG/NBD
def bgnbd_log_likelihood(params: BGNBDParams | np.ndarray, frequency: ArrayLike,
                         recency: ArrayLike, T: ArrayLike) -> np.ndarray:
    """Log-likelihood of each person's (x, t_x, T) under BG/NBD (FHL 2005, eq. 6).

    L = B(a, b+x)/B(a, b) · Γ(r+x) α^r / (Γ(r) (α+T)^(r+x))
        + 1{x>0} · B(a+1, b+x-1)/B(a, b) · Γ(r+x) α^r / (Γ(r) (α+t_x)^(r+x)),
    computed in logs with log-sum-exp, using B(a+1, b+x-1)/B(a, b+x) = a / (b+x-1).
    """
    r, alpha, a, b = _bgnbd(params)
    x, t_x, t_cal = (np.asarray(v, dtype=float) for v in (frequency, recency, T))
    common = (special.gammaln(r + x) - special.gammaln(r) + r * np.log(alpha)
              + special.betaln(a, b + x) - special.betaln(a, b))
    survived = -(r + x) * np.log(alpha + t_cal)
    with np.errstate(divide="ignore", invalid="ignore"):
        died = np.where(x > 0, np.log(a) - np.log(np.where(x > 0, b + x - 1, 1.0))
                        - (r + x) * np.log(alpha + t_x), -np.inf)
    return common + np.logaddexp(survived, died)


def fit_bgnbd(frequency: ArrayLike, recency: ArrayLike, T: ArrayLike,
              weights: ArrayLike | None = None,
              start: BGNBDParams | None = None) -> Fit:
    """Maximum-likelihood BG/NBD parameters.

    ``weights`` counts people sharing the same (frequency, recency, T): SQL can send one row
    per distinct triple instead of one per person.
    """
    x, t_x, t_cal, w = _arrays(frequency, recency, T, weights=weights)
    if w.sum() < 4 or not np.any(x > 0):
        raise FitError("BG/NBD needs at least a few people, some with repeat purchases.",
                       "Compute CLV once more customers have bought twice.")

    def nll(theta: np.ndarray) -> float:
        return -float(np.sum(w * bgnbd_log_likelihood(np.exp(theta), x, t_x, t_cal)))

    init = np.log(start.as_array()) if start else np.zeros(4)
    theta, hess_ok, msg = _minimise(nll, init)
    params = BGNBDParams(*(float(v) for v in np.exp(theta)))
    return _fit(params, theta, nll, hess_ok, msg, int(np.rint(w.sum())))


def expected_purchases(t: ArrayLike, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike,
                       params: BGNBDParams) -> np.ndarray:
    """Expected purchases in the next ``t`` time units of a person with (x, t_x, T)
    (FHL 2005, eq. 10)."""
    r, alpha, a, b = _bgnbd(params)
    t, x, t_x, t_cal = (np.asarray(v, dtype=float) for v in (t, frequency, recency, T))
    hyp = special.hyp2f1(r + x, b + x, a + b + x - 1, t / (alpha + t_cal + t))
    first = (a + b + x - 1) / (a - 1)
    second = 1 - ((alpha + t_cal) / (alpha + t_cal + t)) ** (r + x) * hyp
    return first * second / (1 + _death_odds(x, t_x, t_cal, params))


def probability_alive(frequency: ArrayLike, recency: ArrayLike, T: ArrayLike,
                      params: BGNBDParams) -> np.ndarray:
    """P(the person is still a customer at T | x, t_x). Always 1 for x = 0 under BG/NBD
    (a customer can only drop out right after a purchase)."""
    x, t_x, t_cal = (np.asarray(v, dtype=float) for v in (frequency, recency, T))
    return 1.0 / (1.0 + _death_odds(x, t_x, t_cal, params))


def _death_odds(x: np.ndarray, t_x: np.ndarray, t_cal: np.ndarray,
                params: BGNBDParams) -> np.ndarray:
    r, alpha, a, b = _bgnbd(params)
    with np.errstate(divide="ignore", invalid="ignore"):
        odds = a / (b + x - 1) * ((alpha + t_cal) / (alpha + t_x)) ** (r + x)
    return np.where(x > 0, odds, 0.0)


def _bgnbd(params: BGNBDParams | np.ndarray) -> tuple[float, float, float, float]:
    values = params.as_array() if isinstance(params, BGNBDParams) else np.asarray(params)
    r, alpha, a, b = (float(v) for v in values)
    return r, alpha, a, b


# --------------------------------------------------------------------------- Gamma-Gamma
def gamma_gamma_log_likelihood(params: GammaGammaParams | np.ndarray, frequency: ArrayLike,
                               monetary: ArrayLike) -> np.ndarray:
    """Log-likelihood of each person's mean spend ``monetary`` over ``frequency`` purchases
    (Fader & Hardie 2013, eq. 5; the Jacobian of the mean is kept so values match the
    published totals)."""
    p, q, v = (float(z) for z in (params.as_array() if isinstance(params, GammaGammaParams)
                                  else np.asarray(params)))
    x, m = np.asarray(frequency, dtype=float), np.asarray(monetary, dtype=float)
    return (special.gammaln(p * x + q) - special.gammaln(p * x) - special.gammaln(q)
            + q * np.log(v) + (p * x - 1) * np.log(m) + p * x * np.log(x)
            - (p * x + q) * np.log(x * m + v))


def fit_gamma_gamma(frequency: ArrayLike, monetary: ArrayLike,
                    weights: ArrayLike | None = None,
                    start: GammaGammaParams | None = None) -> Fit:
    """Maximum-likelihood Gamma-Gamma parameters on people with at least one repeat
    purchase and a positive mean spend (others carry no information about spend)."""
    x, m, w = _arrays(frequency, monetary, weights=weights)
    keep = (x > 0) & (m > 0)
    x, m, w = x[keep], m[keep], w[keep]
    if w.sum() < 3:
        raise FitError("Gamma-Gamma needs at least a few people with repeat purchases.",
                       "Compute CLV once more customers have bought twice.")

    def nll(theta: np.ndarray) -> float:
        return -float(np.sum(w * gamma_gamma_log_likelihood(np.exp(theta), x, m)))

    init = np.log(start.as_array()) if start else np.log([1.0, 1.0, max(float(np.mean(m)), 1.0)])
    theta, hess_ok, msg = _minimise(nll, init)
    params = GammaGammaParams(*(float(v) for v in np.exp(theta)))
    return _fit(params, theta, nll, hess_ok, msg, int(np.rint(w.sum())))


def expected_average_spend(frequency: ArrayLike, monetary: ArrayLike,
                           params: GammaGammaParams) -> np.ndarray:
    """E[spend per purchase | x, m̄] = p (v + x m̄) / (p x + q - 1); with x = 0 this is the
    population mean p v / (q - 1)."""
    x, m = np.asarray(frequency, dtype=float), np.asarray(monetary, dtype=float)
    m = np.where(x > 0, m, 0.0)
    return params.p * (params.v + x * m) / (params.p * x + params.q - 1)


def customer_lifetime_value(t: ArrayLike, frequency: ArrayLike, recency: ArrayLike,
                            T: ArrayLike, monetary: ArrayLike, bgnbd: BGNBDParams,
                            gamma_gamma: GammaGammaParams) -> np.ndarray:
    """Undiscounted value of the next ``t`` time units: expected purchases x expected spend."""
    return (expected_purchases(t, frequency, recency, T, bgnbd)
            * expected_average_spend(frequency, monetary, gamma_gamma))


# ------------------------------------------------------------------------------- shared
def _arrays(*columns: ArrayLike, weights: ArrayLike | None) -> tuple[np.ndarray, ...]:
    arrays = [np.asarray(c, dtype=float).ravel() for c in columns]
    w = (np.ones_like(arrays[0]) if weights is None
         else np.asarray(weights, dtype=float).ravel())
    if any(len(a) != len(w) for a in arrays):
        raise ValueError("every column must have one value a person")
    return (*arrays, w)


def _minimise(nll: Callable[[np.ndarray], float],
              init: np.ndarray) -> tuple[np.ndarray, bool, str]:
    """Nelder-Mead to get near the optimum from a crude start, then BFGS to polish it."""
    coarse = optimize.minimize(nll, init, method="Nelder-Mead",
                               options={"maxiter": 4000, "xatol": 1e-6, "fatol": 1e-8})
    fine = optimize.minimize(nll, coarse.x, method="BFGS", options={"gtol": 1e-7})
    best = fine if fine.fun <= coarse.fun else coarse
    if not np.all(np.isfinite(best.x)):
        raise FitError("The likelihood optimiser diverged.",
                       "Check the input statistics (negative or missing values?).")
    return best.x, bool(fine.success or coarse.success), str(fine.message)


def _hessian(f: Callable[[np.ndarray], float], x: np.ndarray) -> np.ndarray:
    """Central finite-difference Hessian (log-parameters are O(1), so one step size fits)."""
    n, h = len(x), 1e-4
    hess = np.zeros((n, n))
    for i in range(n):
        for j in range(i, n):
            ei, ej = np.eye(n)[i] * h, np.eye(n)[j] * h
            value = f(x + ei + ej) - f(x + ei - ej) - f(x - ei + ej) + f(x - ei - ej)
            hess[i, j] = hess[j, i] = value / (4 * h * h)
    return hess


def _fit(params: BGNBDParams | GammaGammaParams, theta: np.ndarray,
         nll: Callable[[np.ndarray], float], converged: bool, message: str, n: int) -> Fit:
    names = list(vars(params))
    natural = np.exp(theta)
    try:
        cov_log = np.linalg.inv(_hessian(nll, theta))
        # delta method: Cov(θ) = J Cov(log θ) J with J = diag(θ)
        cov = cov_log * np.outer(natural, natural)
        se = np.sqrt(np.where(np.diag(cov) >= 0, np.diag(cov), np.nan))
    except np.linalg.LinAlgError:
        cov, se = np.full((len(names), len(names)), np.nan), np.full(len(names), np.nan)
    return Fit(params=params, standard_errors=dict(zip(names, se.tolist(), strict=True)),
               log_likelihood=-nll(theta), n=n, converged=converged, message=message,
               covariance=cov)
