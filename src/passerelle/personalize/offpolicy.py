"""Off-policy read-out: what another policy would have earned, from the decision log alone.

A learned placement logs, for every decision, its context (cell and eligible offers), the
offer shown first (the *action*), the probability with which it was chosen (the
*propensity* ``p``) and, later, its reward ``r`` (1 when the reward event came back). For a
*target* policy giving the logged action probability ``π``, with ``w = π / p``:

- **IPS** (inverse propensity scoring): mean of ``w r``; unbiased when every action the
  target may take had a chance in the log. Interval: normal, from the variance of the terms.
- **SNIPS** (self-normalised): ``Σ w r / Σ w``; a little biased, much steadier when weights
  vary. Interval: delta method, ``Σ (w (r - V))² / (Σ w)²``.
- **DR** (doubly robust): a reward model ``q(cell, offer)`` (the logged mean reward of each
  offer in each cell, shrunk towards the overall mean) plus the IPS correction of its error:
  ``Σ_a π(a) q(cell, a) + w (r - q(cell, action))``; unbiased if either the propensities or
  the model are right, and with a smaller variance than IPS. Interval as IPS.

The two policies compared are the bandit (its current posteriors' Thompson probabilities)
and the rules (the eligible offer of highest priority, probability 1); their difference is
the mean of the per-decision differences of terms, so its interval accounts for both being
estimated on the same decisions. The estimators are pure functions over numpy arrays; the
log comes from one SQL query (:func:`passerelle.personalize.log.decision_log`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from passerelle.measure.intervals import Interval, MeasureError, _z
from passerelle.personalize.bandit import beta_parameters, thompson_probabilities

TARGET_DRAWS = 20_000  # a read-out is computed once: its Monte Carlo error can be small


def _arrays(*arrays: Any) -> list[np.ndarray]:
    out = [np.asarray(a, dtype=float) for a in arrays]
    if any(a.shape != out[0].shape for a in out) or out[0].ndim != 1:
        raise ValueError("the arrays must be one-dimensional and of one length")
    if out[0].size == 0:
        raise MeasureError("No decision is logged: there is nothing to estimate from.",
                           "Send the Decision Made events through the collector first.")
    if np.any(out[1] <= 0):
        raise ValueError("a logged probability is not positive")
    return out


def mean_interval(terms: np.ndarray, level: float = 0.95, method: str = "") -> Interval:
    """Mean of per-decision terms with its normal interval (variance of the terms / n)."""
    terms = np.asarray(terms, dtype=float)
    n = terms.size
    est = float(terms.mean())
    se = float(terms.std(ddof=1) / math.sqrt(n)) if n > 1 else math.inf
    z = _z(level)
    return Interval(est, est - z * se, est + z * se, level, method)


def ips_terms(rewards: Any, logged_p: Any, target_p: Any) -> np.ndarray:
    r, p, t = _arrays(rewards, logged_p, target_p)
    return t / p * r


def ips(rewards: Any, logged_p: Any, target_p: Any, level: float = 0.95) -> Interval:
    """Inverse propensity estimate of the target policy's mean reward."""
    return mean_interval(ips_terms(rewards, logged_p, target_p), level, "ips")


def snips(rewards: Any, logged_p: Any, target_p: Any, level: float = 0.95) -> Interval:
    """Self-normalised inverse propensity estimate (delta-method interval)."""
    r, p, t = _arrays(rewards, logged_p, target_p)
    w = t / p
    total = float(w.sum())
    if total <= 0:
        raise MeasureError("The target policy never takes an action the log took: the logs "
                           "cannot tell its value.", "Log with exploration (ranking: learned).")
    est = float((w * r).sum() / total)
    se = math.sqrt(float(((w * (r - est)) ** 2).sum())) / total
    z = _z(level)
    return Interval(est, est - z * se, est + z * se, level, "snips")


def dr_terms(rewards: Any, logged_p: Any, target_p: Any, q_logged: Any,
             q_target: Any) -> np.ndarray:
    """Per-decision doubly robust terms: ``q_target`` is the model's value of the target in
    the decision's context (Σ_a π(a) q(a)), ``q_logged`` its value of the logged action."""
    r, p, t, ql, qt = _arrays(rewards, logged_p, target_p, q_logged, q_target)
    return qt + t / p * (r - ql)


def dr(rewards: Any, logged_p: Any, target_p: Any, q_logged: Any, q_target: Any,
       level: float = 0.95) -> Interval:
    """Doubly robust estimate of the target policy's mean reward."""
    return mean_interval(dr_terms(rewards, logged_p, target_p, q_logged, q_target), level, "dr")


def reward_model(cells: np.ndarray, actions: np.ndarray, rewards: np.ndarray,
                 strength: float = 2.0) -> tuple[dict[tuple[str, str], float], float]:
    """Mean reward per (cell, offer), shrunk towards the overall mean by ``strength``
    pseudo-decisions; returns it and the overall mean (for pairs never logged)."""
    rewards = np.asarray(rewards, dtype=float)
    overall = float(rewards.mean())
    keys = np.char.add(np.char.add(cells.astype(str), "\x1f"), actions.astype(str))
    uniq, inverse = np.unique(keys, return_inverse=True)
    n = np.bincount(inverse)
    s = np.bincount(inverse, weights=rewards)
    q = (s + strength * overall) / (n + strength)
    return {tuple(k.split("\x1f", 1)): float(v) for k, v in zip(uniq, q, strict=True)}, overall


def _policy_rows(cells: np.ndarray, candidates: np.ndarray, actions: np.ndarray,
                 policy: Any, q: Mapping[tuple[str, str], float],
                 overall: float) -> tuple[np.ndarray, np.ndarray]:
    """(π(logged action), Σ_a π(a) q(cell, a)) per decision; ``policy(cell, offers)`` gives
    the target's probabilities over the offers, computed once per distinct context."""
    keys = np.char.add(np.char.add(cells.astype(str), "\x1f"), candidates.astype(str))
    uniq, inverse = np.unique(keys, return_inverse=True)
    target = np.zeros(actions.size)
    value = np.zeros(actions.size)
    for g, key in enumerate(uniq):
        cell, text = key.split("\x1f", 1)
        offers = text.split(",") if text else [""]  # no eligible offer: the default
        probs = policy(cell, offers)
        rows = inverse == g
        table = dict(zip(offers, probs, strict=True))
        target[rows] = np.vectorize(lambda a, t=table: t.get(a, 0.0), otypes=[float])(
            actions[rows])
        value[rows] = sum(pr * q.get((cell, o), overall) for o, pr in table.items())
    return target, value


def rules_policy(cell: str, offers: list[str]) -> list[float]:
    """The rules: the first eligible offer (they are logged by priority)."""
    return [1.0] + [0.0] * (len(offers) - 1)


def bandit_policy(placement: str, posteriors: Mapping[tuple[str, str, str], tuple[int, int]],
                  draws: int = TARGET_DRAWS) -> Any:
    """The bandit with the given posteriors: Thompson probabilities of ranking first."""

    def policy(cell: str, offers: list[str]) -> list[float]:
        stats = np.array([posteriors.get((placement, cell, o), (0, 0)) for o in offers],
                         dtype=float)
        alpha, beta = beta_parameters(stats[:, 0], stats[:, 1])
        return [float(x) for x in thompson_probabilities(alpha, beta, 0, draws)]

    return policy


def evaluate(log: Mapping[str, np.ndarray], policies: Mapping[str, Any],
             level: float = 0.95) -> dict[str, Any]:
    """IPS, SNIPS and DR of each policy over a log (arrays ``cell``, ``candidates``,
    ``offer``, ``probability``, ``reward``), and the difference of the last two policies."""
    r = np.asarray(log["reward"], dtype=float)
    p = np.asarray(log["probability"], dtype=float)
    cells, cands, actions = (np.asarray(log[k]).astype(str)
                             for k in ("cell", "candidates", "offer"))
    q, overall = reward_model(cells, actions, r)
    q_logged = np.vectorize(lambda c, a: q[(c, a)], otypes=[float])(cells, actions)
    out: dict[str, Any] = {"decisions": int(r.size),
                           "logged": mean_interval(r, level, "mean"), "policies": {}}
    terms: dict[str, dict[str, np.ndarray]] = {}
    for name, policy in policies.items():
        target, value = _policy_rows(cells, cands, actions, policy, q, overall)
        terms[name] = {"ips": ips_terms(r, p, target),
                       "dr": dr_terms(r, p, target, q_logged, value)}
        out["policies"][name] = {"ips": mean_interval(terms[name]["ips"], level, "ips"),
                                 "snips": snips(r, p, target, level),
                                 "dr": mean_interval(terms[name]["dr"], level, "dr")}
    if len(terms) >= 2:
        a, b = list(terms)[-2:]
        out["difference"] = {"of": f"{b} - {a}", **{
            k: mean_interval(terms[b][k] - terms[a][k], level, f"{k}-paired")
            for k in ("ips", "dr")}}
    return out


def exploration(events: Any, placement: str) -> dict[str, Any]:
    """Share of the learned decisions that did not show the offer of best posterior mean
    first (SQL over the log), with their number."""
    from passerelle.personalize.log import decisions

    d = decisions(events, placement)
    d = d.filter((d.group == "treated") & (d.ranking == "learned") & d.explored.notnull())
    return d.aggregate(decisions=d.count(), explored=d.explored.cast("int64").sum())


def offpolicy_report(project: Any, placement: str, level: float = 0.95) -> dict[str, Any]:
    """The bandit's policy against the rules on the treated decisions of ``placement``:
    IPS, SNIPS and DR of each with intervals, their difference, the value logged, the
    share of decisions that explored and the share logged with a probability under 1 (the
    support the estimates rest on)."""
    from passerelle.personalize.decide import placement_of
    from passerelle.personalize.log import decision_log, read_posteriors
    from passerelle.personalize.service import definitions

    engine = project.engine
    place = placement_of(definitions(project), placement)
    if not engine.exists("events"):
        raise MeasureError("There is no events table: no decision is logged.",
                           "Send the Decision Made events through the collector and run "
                           "`passerelle run`.")
    events = engine.table("events")
    log = decision_log(events, placement, place.reward_event)
    log = log.filter((log.group == "treated") & (log.probability > 0))
    data = engine.to_arrow(log.select("cell", "candidates", "offer", "probability", "reward"))
    arrays = {k: data[k].to_numpy(zero_copy_only=False) for k in data.column_names}
    out = evaluate(arrays, {"rules": rules_policy,
                            "bandit": bandit_policy(placement, read_posteriors(engine))}, level)
    row = engine.to_arrow(exploration(events, placement)).to_pylist()[0]
    learned = int(row["decisions"] or 0)
    out["exploration"] = {"decisions": learned,
                          "share": (int(row["explored"] or 0) / learned) if learned else None}
    out["support"] = float(np.mean(arrays["probability"] < 1.0))
    out["placement"], out["reward_event"] = placement, place.reward_event
    return out
