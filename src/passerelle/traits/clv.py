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
positive orthant) with its analytic gradient (L-BFGS-B, a few dozen iterations), and report
standard errors from the inverse Hessian of the negative log-likelihood (differences of the
gradient), moved to the natural scale by the delta method (se(θ) = θ·se(log θ)).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy import optimize, special

from passerelle.errors import PasserelleError

ArrayLike = np.ndarray | float | int
# -log-likelihood and its gradient, both in log-parameters
Objective = Callable[[np.ndarray], tuple[float, np.ndarray]]
LOG_BOUND = 20.0  # log-parameters stay within ±20 (e^20 ≈ 5e8): beyond, nothing is learnt
MAX_ITERATIONS = 500
FTOL = 1e-13
WARM_START_ROWS = 20_000
CHUNK = 16_384  # rows a vectorised step works on: its temporaries stay in the CPU cache


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
    per distinct triple instead of one per person (an exact reduction, as in Fader and
    Hardie's own spreadsheets and the ``lifetimes`` package).
    """
    x, t_x, t_cal, w = _arrays(frequency, recency, T, weights=weights)
    if w.sum() < 4 or not np.any(x > 0):
        raise FitError("BG/NBD needs at least a few people, some with repeat purchases.",
                       "Compute CLV once more customers have bought twice.")
    objective = _bgnbd_objective(x, t_x, t_cal, w)
    init = (np.log(start.as_array()) if start
            else _warm_start(_bgnbd_objective, (x, t_x, t_cal, w), np.zeros(4)))
    theta, converged, msg = _minimise(objective, init)
    params = BGNBDParams(*(float(v) for v in np.exp(theta)))
    return _fit(params, theta, objective, converged, msg, int(np.rint(w.sum())))


def _bgnbd_objective(x: np.ndarray, t_x: np.ndarray, t_cal: np.ndarray,
                     w: np.ndarray) -> Objective:
    """Negative log-likelihood of eq. 6 and its gradient, both in log-parameters.

    Every term that depends on x alone (Gamma and Beta functions, their digammas) is
    computed once per distinct frequency and weighted by its people; only the two power
    terms of the repeat buyers and the survival term of the others are per row.
    """
    freqs, index = np.unique(x, return_inverse=True)
    people = np.bincount(index, weights=w, minlength=len(freqs))  # people per frequency
    total = float(w.sum())
    repeat = x > 0
    x1, tx1, t1, w1 = x[repeat], t_x[repeat], t_cal[repeat], w[repeat]
    repeat_chunks = [(x1[i:i + CHUNK], tx1[i:i + CHUNK], t1[i:i + CHUNK], w1[i:i + CHUNK])
                     for i in range(0, len(x1), CHUNK)]
    t0, w0 = t_cal[~repeat], w[~repeat]  # one purchase: only "still alive" is possible

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        r, alpha, a, b = (float(v) for v in np.exp(theta))
        log_alpha = np.log(alpha)
        # per-frequency part: Γ(r+x)/Γ(r) α^r B(a, b+x)/B(a, b)
        common = (special.gammaln(r + freqs) - special.gammaln(r) + r * log_alpha
                  + special.betaln(a, b + freqs) - special.betaln(a, b))
        psi_rx, psi_abx = special.digamma(r + freqs), special.digamma(a + b + freqs)
        ll = float(people @ common)
        g_r = float(people @ (psi_rx - special.digamma(r) + log_alpha))
        g_alpha = r / alpha * total
        g_a = float(people @ (special.digamma(a + b) - psi_abx))
        g_b = float(people @ (special.digamma(b + freqs) - psi_abx - special.digamma(b)
                              + special.digamma(a + b)))
        # one purchase: - r log(α+T)
        log_t0 = np.log(alpha + t0)
        ll -= r * _dot(w0, log_t0)
        g_r -= _dot(w0, log_t0)
        g_alpha -= r * _dot(w0, 1.0 / (alpha + t0))
        # repeat buyers, in chunks that stay in the CPU cache (several times faster than
        # whole-array temporaries at a million rows)
        for chunk in repeat_chunks:
            s_ll, s_r, s_alpha, s_died, s_b = _bgnbd_repeat_terms(r, alpha, a, b, *chunk)
            ll += s_ll
            g_r -= s_r
            g_alpha -= s_alpha
            g_a += s_died / a
            g_b -= s_b
        grad = np.array([g_r * r, g_alpha * alpha, g_a * a, g_b * b])  # d/d log θ
        return -ll, -grad

    return objective


def _bgnbd_repeat_terms(r: float, alpha: float, a: float, b: float, x: np.ndarray,
                        t_x: np.ndarray, t_cal: np.ndarray,
                        w: np.ndarray) -> tuple[float, float, float, float, float]:
    """Repeat buyers' log[(α+T)^-(r+x) + a/(b+x-1) (α+t_x)^-(r+x)] summed with weights, and
    the sums its gradient needs (in r, α, the "died" share for a, and b)."""
    rx = r + x
    log_t, log_tx, shape = np.log(alpha + t_cal), np.log(alpha + t_x), b + x - 1
    survived = -rx * log_t
    gap = np.log(a) - np.log(shape) - rx * log_tx - survived  # log(died / survived)
    # log-sum-exp by hand (np.logaddexp is several times slower)
    both = survived + np.maximum(gap, 0.0) + np.log1p(np.exp(-np.abs(gap)))
    p_died = special.expit(gap)  # share of the likelihood from "dropped out at t_x"
    inv_t = 1.0 / (alpha + t_cal)
    wd = w * p_died
    return (_dot(w, both), _dot(w, log_t + p_died * (log_tx - log_t)),
            _dot(w * rx, inv_t + p_died * (1.0 / (alpha + t_x) - inv_t)),
            float(wd.sum()), _dot(wd, 1.0 / shape))


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
    objective = _gamma_gamma_objective(x, m, w)
    init = (np.log(start.as_array()) if start
            else _warm_start(_gamma_gamma_objective, (x, m, w),
                             np.log([1.0, 1.0, max(float(np.mean(m)), 1.0)])))
    theta, converged, msg = _minimise(objective, init)
    params = GammaGammaParams(*(float(v) for v in np.exp(theta)))
    return _fit(params, theta, objective, converged, msg, int(np.rint(w.sum())))


def _gamma_gamma_objective(x: np.ndarray, m: np.ndarray, w: np.ndarray) -> Objective:
    """Negative log-likelihood and gradient in log-parameters. Terms in x alone are computed
    per distinct frequency, those linear in the parameters are sums fixed before the fit;
    only log(x·m̄ + v) is per row."""
    freqs, index = np.unique(x, return_inverse=True)
    people = np.bincount(index, weights=w, minlength=len(freqs))
    total = float(w.sum())
    log_m = np.log(m)
    sum_log_m, sum_x_log_m = _dot(w, log_m), _dot(w * x, log_m)
    xm, wx = x * m, w * x
    log_freqs = np.log(freqs)

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        p, q, v = (float(z) for z in np.exp(theta))
        px = p * freqs
        ll = float(people @ (special.gammaln(px + q) - special.gammaln(px)
                             + px * log_freqs)) - total * (special.gammaln(q) - q * np.log(v))
        ll += p * sum_x_log_m - sum_log_m
        psi_pxq = special.digamma(px + q)
        g_p = float(people @ (freqs * (psi_pxq - special.digamma(px) + log_freqs)))
        g_p += sum_x_log_m
        g_q = float(people @ psi_pxq) - total * (special.digamma(q) - np.log(v))
        g_v = q * total / v
        log_rest = np.log(xm + v)
        inv_rest = 1.0 / (xm + v)
        wx_log, w_log = _dot(wx, log_rest), _dot(w, log_rest)
        ll -= p * wx_log + q * w_log
        g_p -= wx_log
        g_q -= w_log
        g_v -= p * _dot(wx, inv_rest) + q * _dot(w, inv_rest)
        return -ll, -np.array([g_p * p, g_q * q, g_v * v])

    return objective


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


def _dot(a: np.ndarray, b: np.ndarray) -> float:
    """Σ a·b without BLAS: its threads stall when other processes hold the cores, and a
    fit makes hundreds of these small products."""
    return float(np.einsum("i,i->", a, b))


def _warm_start(build: Callable[..., Objective], columns: tuple[np.ndarray, ...],
                init: np.ndarray) -> np.ndarray:
    """A start near the optimum: the fit on every k-th row (at most WARM_START_ROWS), so the
    fit on all rows only needs a few iterations to polish it. The rows come in no
    particular order from SQL, so every k-th is a fair spread; the answer is still the
    optimum on all rows, only the way there is shorter."""
    rows = len(columns[0])
    if rows <= WARM_START_ROWS:
        return init
    step = math.ceil(rows / WARM_START_ROWS)
    theta, _, _ = _minimise(build(*(c[::step] for c in columns)), init)
    return theta


def _minimise(objective: Objective, init: np.ndarray) -> tuple[np.ndarray, bool, str]:
    """L-BFGS-B with the analytic gradient, on log-parameters kept within e^±LOG_BOUND.

    A parameter that runs to the bound means the data cannot pin it down (for BG/NBD,
    a and b growing together: no sign of customers dropping out); the fit is then reported
    as not converged. Iterations are capped so a flat likelihood cannot make a run hang.
    """
    bounds = [(-LOG_BOUND, LOG_BOUND)] * len(init)
    start = np.clip(init, -LOG_BOUND, LOG_BOUND)
    result = optimize.minimize(objective, start, jac=True, method="L-BFGS-B", bounds=bounds,
                               options={"maxiter": MAX_ITERATIONS, "ftol": FTOL,
                                        "gtol": 1e-7, "maxcor": 20})
    if not np.all(np.isfinite(result.x)) or not np.isfinite(result.fun):
        raise FitError("The likelihood optimiser diverged.",
                       "Check the input statistics (negative or missing values?).")
    at_bound = bool(np.any(np.abs(result.x) >= LOG_BOUND - 1e-6))
    message = str(result.message)
    if at_bound:
        message = f"a parameter reached e^{LOG_BOUND:g}: the data do not identify it"
    converged = bool(result.success) or _flat_enough(objective, result.x)
    return result.x, converged and not at_bound, message


def _flat_enough(objective: Objective, theta: np.ndarray) -> bool:
    """L-BFGS-B may stop on a line search that cannot improve in floating point although the
    gradient is already negligible next to the likelihood: that is an optimum too."""
    value, grad = objective(theta)
    return bool(np.max(np.abs(grad)) <= 1e-6 * max(1.0, abs(value)))


def _hessian(objective: Objective, theta: np.ndarray) -> np.ndarray:
    """Hessian by central differences of the analytic gradient (log-parameters are O(1),
    so one step size fits)."""
    n, h = len(theta), 1e-5
    hess = np.zeros((n, n))
    for i in range(n):
        step = np.eye(n)[i] * h
        hess[:, i] = (objective(theta + step)[1] - objective(theta - step)[1]) / (2 * h)
    return (hess + hess.T) / 2


def _fit(params: BGNBDParams | GammaGammaParams, theta: np.ndarray, objective: Objective,
         converged: bool, message: str, n: int) -> Fit:
    names = list(vars(params))
    natural = np.exp(theta)
    try:
        cov_log = np.linalg.inv(_hessian(objective, theta))
        # delta method: Cov(θ) = J Cov(log θ) J with J = diag(θ)
        cov = cov_log * np.outer(natural, natural)
        se = np.sqrt(np.where(np.diag(cov) >= 0, np.diag(cov), np.nan))
    except np.linalg.LinAlgError:
        cov, se = np.full((len(names), len(names)), np.nan), np.full(len(names), np.nan)
    return Fit(params=params, standard_errors=dict(zip(names, se.tolist(), strict=True)),
               log_likelihood=-objective(theta)[0], n=n, converged=converged,
               message=message, covariance=cov)
