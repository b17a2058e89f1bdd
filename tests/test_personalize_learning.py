"""Learned ranking: Thompson probabilities against the exact two-arm formula, reproducible
draws per decision id, the off-policy estimators against a simulation with a known answer,
and a learned placement end to end (posteriors from logged events, cells per segment,
exploration, the off-policy read-out)."""

from __future__ import annotations

import math
import uuid
from datetime import timedelta

import numpy as np
import pytest
from scipy import integrate, special, stats

from passerelle.personalize import decide, open_store
from passerelle.personalize import refresh_decision_store as refresh
from passerelle.personalize.bandit import draw, rank, seed_of, thompson_probabilities
from passerelle.personalize.log import (
    OFFER_CLICKED,
    OFFER_VIEWED,
    POSTERIORS,
    decision_event,
    outcome_event,
)
from passerelle.personalize.offpolicy import evaluate, offpolicy_report, rules_policy
from passerelle.personalize.validate import load_offers
from personalize_helpers import FILES, LEARNED, WEB, append_calls, make_project, write
from segments_helpers import NOW


def p_first_beats(a1: float, b1: float, a2: float, b2: float) -> float:
    """P(Beta(a1, b1) > Beta(a2, b2)), exact for an integer a1 (Evan Miller's sum)."""
    return float(sum(math.exp(special.betaln(a2 + i, b1 + b2) - math.log(b1 + i)
                              - special.betaln(1 + i, b1) - special.betaln(a2, b2))
                     for i in range(int(a1))))


@pytest.mark.parametrize("a1,b1,a2,b2", [(3, 5, 4, 4), (12, 30, 9, 31), (1, 1, 2, 1)])
def test_thompson_probability_matches_the_closed_form(a1, b1, a2, b2):
    exact = p_first_beats(a1, b1, a2, b2)
    # an independent reference: ∫ f1(x) F2(x) dx by numerical integration
    numeric, _ = integrate.quad(lambda x: stats.beta.pdf(x, a1, b1) * stats.beta.cdf(x, a2, b2),
                                0, 1)
    assert exact == pytest.approx(numeric, abs=1e-7)
    draws = 40_000
    mc = thompson_probabilities(np.array([a1, a2]), np.array([b1, b2]), seed=7, draws=draws)
    se = math.sqrt(exact * (1 - exact) / draws)
    assert abs(mc[0] - exact) < 4 * se
    assert mc.sum() == pytest.approx(1.0)


def test_draws_are_reproducible_per_decision_id():
    alpha, beta = np.array([3.0, 5.0, 2.0]), np.array([7.0, 5.0, 9.0])
    one, two = draw(alpha, beta, seed_of("d-1")), draw(alpha, beta, seed_of("d-1"))
    assert one.order() == two.order()
    assert one.probability(1, [0, 1, 2]) == two.probability(1, [0, 1, 2])
    other = draw(alpha, beta, seed_of("d-2"))
    assert not np.array_equal(one.theta, other.theta)
    # the seed does not depend on the process (no hash salt): the first 8 bytes of SHA-256
    assert seed_of("d-1") == 522878393446021804


OFFERS = ["x", "y", "z"]
LOGGING = {"a": [0.5, 0.3, 0.2], "b": [0.2, 0.2, 0.6]}  # known propensities
TRUTH = {"a": [0.05, 0.10, 0.20], "b": [0.30, 0.10, 0.05]}  # known click rates
SHARE = {"a": 0.6, "b": 0.4}
SMART = {"a": [0.0, 0.2, 0.8], "b": [0.9, 0.1, 0.0]}


def smart_policy(cell, offers):
    return SMART[cell]


def true_value(policy):
    return sum(SHARE[c] * sum(p * t for p, t in zip(policy[c], TRUTH[c], strict=True))
               for c in SHARE)


def simulate(seed: int, n: int = 4000) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    cells = rng.choice(list(SHARE), size=n, p=list(SHARE.values()))
    probs = np.where((cells == "a")[:, None], LOGGING["a"], LOGGING["b"])
    actions = (rng.random(n)[:, None] > np.cumsum(probs, axis=1)).sum(axis=1)
    rates = np.where((cells == "a")[:, None], TRUTH["a"], TRUTH["b"])
    rows = np.arange(n)
    return {"cell": cells, "candidates": np.full(n, ",".join(OFFERS)),
            "offer": np.array(OFFERS)[actions], "probability": probs[rows, actions],
            "reward": (rng.random(n) < rates[rows, actions]).astype(float)}


def test_off_policy_estimates_cover_the_known_value():
    rules_truth = true_value({c: [1.0, 0.0, 0.0] for c in SHARE})  # always the first offer
    smart_truth = true_value(SMART)
    seeds = range(40)
    covered: dict[str, int] = {}
    estimates: dict[str, list[float]] = {}
    for seed in seeds:
        log = simulate(seed)
        out = evaluate(log, {"rules": rules_policy, "smart": smart_policy})
        checks = {f"{p}/{k}": (out["policies"][p][k], truth)
                  for p, truth in (("rules", rules_truth), ("smart", smart_truth))
                  for k in ("ips", "snips", "dr")}
        checks |= {f"diff/{k}": (out["difference"][k], smart_truth - rules_truth)
                   for k in ("ips", "dr")}
        for name, (interval, truth) in checks.items():
            covered[name] = covered.get(name, 0) + interval.contains(truth)
            estimates.setdefault(name, []).append(interval.estimate)
            assert interval.high - interval.low < 0.08  # an interval that says something
        assert out["difference"]["of"] == "smart - rules"
    for name, hits in covered.items():
        assert hits >= 34, (name, hits)  # 95 % intervals: about 38 of 40
        truth = {"rules": rules_truth, "smart": smart_truth}.get(
            name.split("/")[0], smart_truth - rules_truth)
        assert abs(np.mean(estimates[name]) - truth) < 0.006, name
    # the logged mean is not the answer: the estimators had work to do
    assert abs(simulate(0)["reward"].mean() - rules_truth) > 0.02


def test_learn_per_is_checked(tmp_path):
    write(tmp_path, {**FILES, "placements/home_banner.yml": """\
        context: {device: text}
        ranking: learned
        learn_per: [shoe_lover]
        default: {content: {title: x}}
        """, "placements/side.yml": """\
        learn_per: {context: colour}
        default: {content: {title: x}}
        """})
    _, problems = load_offers(tmp_path)
    found = [(p.file, p.message) for p in problems.errors]
    assert ("placements/home_banner.yml", "unknown segment 'shoe_lover'") in found
    assert any(f == "placements/side.yml" and "learn_per needs `ranking: learned`" in m
               for f, m in found)


def _log_history(engine, project_store, clicks: dict[str, float], n: int, seed: int = 1):
    """``n`` logged decisions for Alice (a shoe lover) each shown and clicked with the
    offer's rate: the history a learned placement learns from."""
    rng = np.random.default_rng(seed)
    calls = []
    for i in range(n):
        d = decide(project_store, "P1", "home_banner", WEB, now=NOW + timedelta(minutes=i))
        calls.append(decision_event(d, user_id="C1"))
        offer = d.messages[0].offer
        calls.append(outcome_event(d, OFFER_VIEWED, offer, user_id="C1"))
        if rng.random() < clicks.get(offer or "", 0.0):
            calls.append(outcome_event(d, OFFER_CLICKED, offer, user_id="C1"))
    append_calls(engine, calls)


def test_learned_placement_learns_from_logged_events(tmp_path):
    proj = make_project(tmp_path, LEARNED)
    refresh(proj, now=NOW)
    store = open_store(proj)
    assert store.posteriors == {}
    d = decide(store, "P1", "home_banner", WEB, now=NOW)
    # nothing learnt: every eligible offer is as likely (shoes, paris_store, everyone)
    assert d.ranking == "learned" and d.cell == "shoe_lovers"
    assert d.candidates == ["shoes", "paris_store", "everyone"]
    first = d.messages[0]
    assert first.reason["rule"] == "learned" and first.reason["cell"] == "shoe_lovers"
    assert 0.2 < first.probability < 0.47
    # the probability is the one the decision id reproduces
    again = rank(store.definitions.placements["home_banner"],
                 [store.definitions.offers[o] for o in d.candidates], store.posteriors,
                 d.cell, d.decision_id)
    assert again.ordered()[0].name == first.offer
    assert again.probability(store.definitions.offers[first.offer],
                             again.ordered()) == first.probability
    # Bruno is in no learn_per segment: another cell
    assert decide(store, "P2", "home_banner", WEB, now=NOW).cell == "other"

    _log_history(proj.engine, store, {"everyone": 0.5, "shoes": 0.02, "paris_store": 0.02},
                 120)
    summary = refresh(proj, now=NOW)
    assert summary.posteriors == 3
    store = open_store(proj)
    counts = {k[2]: v for k, v in store.posteriors.items() if k[:2] == ("home_banner",
                                                                         "shoe_lovers")}
    assert sum(t for t, _ in counts.values()) == 120
    assert counts["everyone"][1] > counts["everyone"][0] * 0.3
    _same_posteriors_in_redis(proj, store.posteriors)
    shown = [decide(store, "P1", "home_banner", WEB, now=NOW).messages[0] for _ in range(20)]
    assert sum(m.offer == "everyone" for m in shown) >= 18  # it has learnt
    assert all(m.probability > 0.9 for m in shown if m.offer == "everyone")
    # the posteriors of David's cell are untouched: he still gets either of his two offers
    david = decide(store, "P4", "home_banner", WEB, now=NOW)
    assert david.cell == "other" and david.candidates == ["paris_store", "everyone"]
    assert 0.3 < david.messages[0].probability < 0.7

    out = offpolicy_report(proj, "home_banner")
    assert out["decisions"] == 120
    assert 0 < out["support"] <= 1
    assert out["exploration"]["decisions"] == 120
    assert 0 < out["exploration"]["share"] < 1  # early decisions explored, later did not
    rules, bandit = out["policies"]["rules"], out["policies"]["bandit"]
    # the rules show shoes (priority 50), clicked 2 %; the bandit learnt everyone's 50 %
    assert rules["dr"].estimate < 0.15 and bandit["dr"].estimate > 0.35
    assert out["difference"]["dr"].low > 0
    proj.close()


def _same_posteriors_in_redis(proj, posteriors) -> None:
    """Decision workers (serve --workers) read the posteriors the refresh copied to Redis."""
    import redis

    from passerelle.personalize.redis_store import redis_posteriors

    url, prefix = "redis://127.0.0.1:6379/0", f"test:{uuid.uuid4().hex[:10]}:"
    r = redis.Redis.from_url(url)
    try:
        refresh(proj, now=NOW, redis_url=url, redis_prefix=prefix)
        assert redis_posteriors(r, prefix) == posteriors and len(posteriors) == 3
    finally:
        keys = list(r.scan_iter(match=f"{prefix}*"))
        if keys:
            r.delete(*keys)


def test_posteriors_table_is_empty_without_events(tmp_path):
    proj = make_project(tmp_path, LEARNED)
    proj.engine.drop("events")
    assert refresh(proj, now=NOW).posteriors == 0
    assert proj.engine.exists(POSTERIORS)
    uuid.UUID(decide(open_store(proj), "P1", "home_banner", WEB, now=NOW).decision_id)
    proj.close()
