"""Experiments read from warehouse tables (DuckDB and PostgreSQL): the SQL sums equal the ones
computed by hand, and the analysis equals the estimator functions called directly. Plus the
bad inputs of issue 8: SRM, an empty arm, zero variance, refunds, windows under a day."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from pydantic import ValidationError

from passerelle.errors import ProjectError
from passerelle.measure import CupedArm, Moments, cuped, proportions_ztest, welch_ttest
from passerelle.measure.analysis import analyse_stats, analyse_tables
from passerelle.project.experiments_models import (
    ExperimentConfig,
    ExperimentMetric,
    load_experiments,
)

T0 = datetime(2026, 3, 1, 12, 0)


def _cfg(**kw) -> ExperimentConfig:
    doc = {"name": "exp", "description": "d", "owner": "o",
           "variants": [{"name": "control"}, {"name": "treatment"}],
           "primary_metric": {"name": "conv", "type": "conversion", "window_days": 14},
           "guardrails": [{"name": "rev", "type": "revenue", "window_days": 14}]}
    doc.update(kw)
    return ExperimentConfig.model_validate(doc)


def _exposure(pid: str, variant: str, at: datetime, exp: str = "exp") -> dict:
    return {"person_id": pid, "event": "Experiment Viewed", "timestamp": at,
            "properties": json.dumps({"experiment_id": exp, "variation_id": variant})}


def _load(engine, events: list[dict], orders: list[dict]):
    ev = pa.Table.from_pylist(events, schema=pa.schema([
        ("person_id", pa.string()), ("event", pa.string()), ("timestamp", pa.timestamp("us")),
        ("properties", pa.string())]))
    od = pa.Table.from_pylist(orders, schema=pa.schema([
        ("person_id", pa.string()), ("ordered_at", pa.timestamp("us")), ("amount", pa.float64()),
        ("channel", pa.string()), ("status", pa.string())]))
    engine.con.create_table("x_events", ev, overwrite=True)
    engine.con.create_table("x_orders", od, overwrite=True)
    return engine.table("x_events"), engine.table("x_orders")


def _order(pid: str, days: float, amount: float = 10.0, channel: str = "web",
           status: str | None = None) -> dict:
    return {"person_id": pid, "ordered_at": T0 + timedelta(days=days), "amount": amount,
            "channel": channel, "status": status}


def _rows(engine):
    return lambda e: engine.to_arrow(e).to_pylist()


# control c0..c5, treatment t0..t5; (post conversion?, post revenue, pre orders, pre revenue)
CONTROL = {"c0": [2.0], "c1": [30.0], "c2": [], "c3": [], "c4": [], "c5": []}
TREATMENT = {"t0": [15.0], "t1": [20.0, -5.0], "t2": [40.0], "t3": [8.0], "t4": [], "t5": []}
PRE = {"c0": [12.0], "c1": [3.0, 4.0], "t0": [9.0], "t2": [11.0], "t4": [6.0]}


def _dataset():
    events, orders = [], []
    for arm, people in (("control", CONTROL), ("treatment", TREATMENT)):
        for i, (pid, amounts) in enumerate(people.items()):
            at = T0 + timedelta(hours=i)
            events.append(_exposure(pid, arm, at))
            events.append(_exposure(pid, arm, at + timedelta(days=1)))  # second exposure
            for k, a in enumerate(amounts):
                orders.append(_order(pid, i / 24 + 1 + k, a))
            for k, a in enumerate(PRE.get(pid, [])):
                orders.append(_order(pid, i / 24 - 5 - k, a))
    orders += [_order("c2", 20.0),  # after the 14-day window (of c2's exposure at T0+2h)
               _order("c3", 2.0, 99.0, status="cancelled"),  # cancelled: not counted
               _order("c4", -40.0)]  # before the 30-day pre-period
    events.append(_exposure("c5", "control", T0, exp="other"))  # another experiment
    return events, orders


def _expected(people: dict, key: str):
    post = [a for a in people.values()]
    if key == "conv":
        x = np.array([1.0 if p else 0.0 for p in post])
        pre = np.array([float(len(PRE.get(pid, []))) for pid in people])
    else:
        x = np.array([sum(p) for p in post])
        pre = np.array([sum(PRE.get(pid, [])) for pid in people])
    return x, pre


def test_experiment_end_to_end_matches_estimators(engine):
    events, orders = _dataset()
    ev, od = _load(engine, events, orders)
    res = analyse_tables(_cfg(), ev, od, _rows(engine))
    assert [(v["name"], v["people"]) for v in res["variants"]] == [("control", 6),
                                                                   ("treatment", 6)]
    conv = next(c for c in res["comparisons"] if c["metric"] == "conv")
    rev = next(c for c in res["comparisons"] if c["metric"] == "rev")
    xc, pc = _expected(CONTROL, "conv")
    xt, pt = _expected(TREATMENT, "conv")
    assert (xc.sum(), xt.sum()) == (2, 4)
    z = proportions_ztest(2, 6, 4, 6)
    assert conv["frequentist"]["p_value"] == pytest.approx(z.p_value, rel=1e-12)
    assert conv["frequentist"]["lift"]["estimate"] == pytest.approx(1.0)  # 4/6 over 2/6
    arm = lambda x, p: CupedArm(Moments.of(x), Moments.of(p), float((x * p).sum()))  # noqa: E731
    a, b, theta = cuped(arm(xc, pc), arm(xt, pt))
    adj = welch_ttest(a, b)
    assert conv["cuped"]["theta"] == pytest.approx(theta, rel=1e-12)
    assert conv["lift"]["low"] == pytest.approx(adj.lift.low, rel=1e-9)
    assert conv["decision"] == "cuped"
    # revenue: the refund (-5) counts, the cancelled order and orders outside windows do not
    rc, _ = _expected(CONTROL, "rev")
    rt, _ = _expected(TREATMENT, "rev")
    assert (rc.sum(), rt.sum()) == (32.0, 78.0)
    w = welch_ttest(Moments.of(rc), Moments.of(rt))
    assert rev["frequentist"]["p_value"] == pytest.approx(w.p_value, rel=1e-12)
    assert rev["control_mean"] == pytest.approx(32 / 6)
    # Holm across the two comparisons
    ps = sorted(c["p_value"] for c in res["comparisons"])
    assert min(c["p_adjusted"] for c in res["comparisons"]) == pytest.approx(2 * ps[0])
    assert res["verdict"].startswith("Treatment: not significant, no winner")
    assert "underpowered" in res["verdict"]
    assert not res["srm"]["mismatch"]


def test_leaked_people_and_unknown_variants_are_left_out(engine):
    events = [_exposure("a", "control", T0), _exposure("a", "treatment", T0 + timedelta(1)),
              _exposure("b", "control", T0), _exposure("c", "treatment", T0),
              _exposure("d", "treatment", T0), _exposure("e", "blue", T0),
              _exposure("f", "control", T0)]
    orders = [_order("b", 1), _order("c", 1), _order("d", 1)]
    ev, od = _load(engine, events, orders)
    res = analyse_tables(_cfg(), ev, od, _rows(engine))
    assert [v["people"] for v in res["variants"]] == [2, 2]
    assert any("1 people were seen in several variants" in w for w in res["warnings"])
    assert any("blue" in w for w in res["warnings"])


def test_one_arm_empty_gives_a_clear_answer(engine):
    ev, od = _load(engine, [_exposure(p, "control", T0) for p in "abc"], [_order("a", 1)])
    res = analyse_tables(_cfg(), ev, od, _rows(engine))
    assert res["verdict"].startswith("No answer: variant treatment has no exposed people")
    assert res["comparisons"] == []


def test_zero_variance_metric_has_no_answer(engine):
    events = [_exposure(p, "control", T0) for p in "abc"] + [
        _exposure(p, "treatment", T0) for p in "def"]
    ev, od = _load(engine, events, [])
    res = analyse_tables(_cfg(), ev, od, _rows(engine))
    conv = next(c for c in res["comparisons"] if c["metric"] == "conv")
    assert "Nobody converted in either arm" in conv["error"]
    assert res["verdict"].startswith("Treatment: no answer (Nobody converted")


def test_a_refund_alone_is_no_conversion_but_counts_in_revenue(engine):
    events = [_exposure(p, "control", T0) for p in "abc"] + [
        _exposure(p, "treatment", T0) for p in "def"]
    orders = [_order("a", 1, -30.0), _order("b", 2, 25.0), _order("d", 1, 40.0),
              _order("e", 1, 10.0), _order("e", 2, -10.0)]
    ev, od = _load(engine, events, orders)
    res = analyse_tables(_cfg(), ev, od, _rows(engine))
    conv = next(c for c in res["comparisons"] if c["metric"] == "conv")
    rev = next(c for c in res["comparisons"] if c["metric"] == "rev")
    assert (conv["control_mean"], conv["variant_mean"]) == pytest.approx((1 / 3, 2 / 3))
    assert (rev["control_mean"], rev["variant_mean"]) == pytest.approx((-5 / 3, 40 / 3))


def test_channels_filter_and_window_of_guardrail(engine):
    cfg = _cfg(primary_metric={"name": "conv", "type": "conversion", "window_days": 1,
                               "channels": ["web"]}, guardrails=[], cuped=False)
    events = [_exposure(p, "control", T0) for p in "abcd"] + [
        _exposure(p, "treatment", T0) for p in "efgh"]
    orders = [_order("a", 0.5), _order("b", 0.5, channel="store"), _order("e", 0.5),
              _order("f", 0.5), _order("g", 2.0)]
    ev, od = _load(engine, events, orders)
    res = analyse_tables(cfg, ev, od, _rows(engine))
    conv = res["comparisons"][0]
    assert (conv["control_mean"], conv["variant_mean"]) == (0.25, 0.5)
    assert conv["decision"] == "frequentist"
    assert conv["p_value"] == pytest.approx(proportions_ztest(1, 4, 2, 4).p_value)


def test_srm_warns_loudly():
    arms = {"control": {"n": 1200.0, "conv_sum": 120.0, "conv_sq": 120.0},
            "treatment": {"n": 1000.0, "conv_sum": 100.0, "conv_sq": 100.0}}
    for a in arms.values():
        a.update({k: 0.0 for k in ("conv_pre_sum", "conv_pre_sq", "conv_prod")})
    res = analyse_stats(_cfg(guardrails=[]), arms)
    assert res["srm"]["mismatch"]
    assert res["warnings"][0].startswith("SAMPLE RATIO MISMATCH")
    assert res["verdict"].startswith("SAMPLE RATIO MISMATCH: do not read these results.")


def test_winner_and_sample_size():
    arms = {"control": {"n": 20000.0, "conv_sum": 1800.0, "conv_sq": 1800.0},
            "treatment": {"n": 20000.0, "conv_sum": 2100.0, "conv_sq": 2100.0}}
    for a in arms.values():
        a.update({k: 0.0 for k in ("conv_pre_sum", "conv_pre_sq", "conv_prod")})
    res = analyse_stats(_cfg(guardrails=[], mde=0.1), arms)
    assert res["verdict"].startswith("Treatment wins: +16.7 % on conv")
    from passerelle.measure import sample_size_proportions

    need = sample_size_proportions(0.09, 0.1)
    assert res["sample_size"]["treatment"]["control"] == need.control
    c = res["comparisons"][0]
    assert c["bayesian"]["chance_to_win"] > 0.99
    assert c["sequential"]["lift"]["low"] < c["frequentist"]["lift"]["low"]


def test_window_shorter_than_a_day_refused(tmp_path: Path):
    with pytest.raises(ValidationError, match="shorter than a day"):
        ExperimentMetric(name="m", type="conversion", window_days=0.5)
    (tmp_path / "experiments").mkdir()
    (tmp_path / "experiments" / "short.yml").write_text(
        "description: d\nowner: o\nvariants: [{name: a}, {name: b}]\n"
        "primary_metric: {name: m, type: conversion, window_days: 0.5}\n")
    with pytest.raises(ProjectError) as err:
        load_experiments(tmp_path)
    text = str(err.value)
    assert "experiments/short.yml" in text and "shorter than a day" in text


def test_load_experiments_defaults_and_problems(tmp_path: Path):
    (tmp_path / "experiments").mkdir()
    (tmp_path / "experiments" / "hero.yml").write_text(
        "description: d\nowner: o\nvariants: [{name: a, weight: 1}, {name: b, weight: 3}]\n"
        "primary_metric: {name: m, type: revenue}\n")
    defs = load_experiments(tmp_path)
    cfg = defs.experiments["hero"]
    assert (cfg.control, cfg.weights, cfg.assignment_salt, cfg.experiment_value) == (
        "a", {"a": 1.0, "b": 3.0}, "hero", "hero")
    (tmp_path / "experiments" / "bad.yml").write_text(
        "description: d\nowner: o\nvariants: [{name: a}, {name: a}]\nprimary_metric: "
        "{name: m, type: conversion}\ncolour: red\n")
    with pytest.raises(ProjectError) as err:
        load_experiments(tmp_path)
    assert "unknown key 'colour'" in str(err.value)
