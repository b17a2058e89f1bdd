"""An experiment read from the warehouse: exposures, per-arm sums in SQL, then the verdict.

The engine does three GROUP BYs: exposure events -> one row per exposed person (first
exposure, variant); exposed people x their orders -> one row per person with each metric in
its window and the same metric's pre-period covariate (for CUPED); people -> one row per
variant with n, Σx, Σx², Σpre, Σpre², Σx·pre. Python then runs the estimators of
:mod:`passerelle.measure.experiments` on those few numbers (:func:`analyse_stats`).

Tables expected (``person_events`` / ``person_orders`` of :mod:`passerelle.identity.attribution`):
- exposure events: ``person_id, event, timestamp, properties`` (JSON text);
- orders: ``person_id, ordered_at, amount, channel, status``.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import ibis
import ibis.expr.types as ir

from passerelle.measure.design import (
    benjamini_hochberg,
    holm,
    sample_size_means,
    sample_size_proportions,
    srm_check,
)
from passerelle.measure.experiments import (
    ArmStats,
    CupedArm,
    bayesian,
    cuped,
    proportions_ztest,
    sequential,
    welch_ttest,
)
from passerelle.measure.intervals import Interval, MeasureError, Moments
from passerelle.project.experiments_models import ExperimentConfig, ExperimentMetric


def _days(value: float) -> ir.IntervalValue:
    return ibis.interval(seconds=round(value * 86400))


def _check_window(metric: ExperimentMetric) -> None:
    if metric.window_days < 1:
        raise MeasureError(f"The window of metric '{metric.name}' ({metric.window_days} days) is "
                           "shorter than a day.", "Use a window of at least one day.")


def exposures(events: ir.Table, cfg: ExperimentConfig) -> ir.Table:
    """One row per exposed person: ``person_id, variant, first_exposed_at, variants``.

    ``variant`` is the variant of the person's first exposure; ``variants`` counts the
    distinct variants they were seen in (more than one means the assignment leaked; such
    people are left out of the analysis and counted).
    """
    e = events.filter(events.event == cfg.exposure.event)
    props = e.properties.cast("json")
    e = e.mutate(_exp=props[cfg.exposure.experiment_property].unwrap_as("string"),
                 _variant=props[cfg.exposure.variant_property].unwrap_as("string"))
    e = e.filter((e._exp == cfg.experiment_value) & e._variant.notnull()
                 & e.person_id.notnull())
    if cfg.start is not None:
        e = e.filter(e.timestamp >= ibis.timestamp(dt.datetime.combine(cfg.start, dt.time())))
    if cfg.end is not None:
        end = dt.datetime.combine(cfg.end + timedelta(days=1), dt.time())
        e = e.filter(e.timestamp < ibis.timestamp(end))
    return e.group_by("person_id").aggregate(
        variant=e._variant.argmin(e.timestamp), first_exposed_at=e.timestamp.min(),
        variants=e._variant.nunique())


def _order_filter(o: ir.Table, metric: ExperimentMetric) -> ir.BooleanValue:
    cond = ibis.literal(True)
    if metric.channels:
        cond = cond & o.channel.isin(metric.channels)
    if metric.exclude_statuses:
        cond = cond & (o.status.isnull() | ~o.status.isin(metric.exclude_statuses))
    return cond


def person_metrics(exposed: ir.Table, orders: ir.Table, cfg: ExperimentConfig) -> ir.Table:
    """One row per exposed person (in one variant): each metric and its pre-period value.

    Columns: ``person_id, variant``, then per metric ``m``: ``m`` (the value in the window
    after the first exposure) and ``m_pre`` (the covariate over ``pre_period_days`` before
    it: the number of orders for conversion and orders metrics, revenue for revenue).
    """
    for m in cfg.metrics:
        _check_window(m)
    x = exposed.filter(exposed.variants == 1)
    o = orders.select(_pid=orders.person_id, _at=orders.ordered_at,
                      _amount=orders.amount.cast("float64"), channel=orders.channel,
                      status=orders.status)
    longest = max(m.window_days for m in cfg.metrics)
    joined = x.left_join(o, [x.person_id == o._pid,
                             o._at >= x.first_exposed_at - _days(cfg.pre_period_days),
                             o._at < x.first_exposed_at + _days(longest)])
    aggs: dict[str, ir.Value] = {}
    for m in cfg.metrics:
        keep = _order_filter(joined, m)
        post = keep & (joined._at >= joined.first_exposed_at) & (
            joined._at < joined.first_exposed_at + _days(m.window_days))
        pre = keep & (joined._at < joined.first_exposed_at)
        if m.type == "revenue":
            aggs[m.name] = ibis.ifelse(post, joined._amount, 0.0).sum()
            aggs[f"{m.name}_pre"] = ibis.ifelse(pre, joined._amount, 0.0).sum()
        else:
            # a refund row (negative amount) is not an order: a refund alone is no conversion
            bought = joined._amount >= 0
            count = ibis.ifelse(post & bought, 1, 0).sum()
            aggs[m.name] = (ibis.ifelse(count > 0, 1, 0) if m.type == "conversion" else count)
            aggs[f"{m.name}_pre"] = ibis.ifelse(pre & bought, 1, 0).sum()
    per = joined.group_by([x.person_id, x.variant]).aggregate(**aggs)
    return per.mutate(**{c: per[c].cast("float64").fill_null(0.0) for c in aggs})


def arm_sums(per_person: ir.Table, cfg: ExperimentConfig) -> ir.Table:
    """Per variant: ``n`` and, per metric ``m``: ``m_sum, m_sq, m_pre_sum, m_pre_sq, m_prod``."""
    p = per_person
    aggs: dict[str, ir.Value] = {"n": p.count()}
    for m in cfg.metrics:
        v, pre = p[m.name], p[f"{m.name}_pre"]
        aggs[f"{m.name}_sum"] = v.sum()
        aggs[f"{m.name}_sq"] = (v * v).sum()
        aggs[f"{m.name}_pre_sum"] = pre.sum()
        aggs[f"{m.name}_pre_sq"] = (pre * pre).sum()
        aggs[f"{m.name}_prod"] = (v * pre).sum()
    return p.group_by("variant").aggregate(**aggs).order_by("variant")


def exposure_counts(exposed: ir.Table) -> ir.Table:
    """Per variant: people exposed, and people seen in several variants (left out)."""
    return exposed.group_by("variant").aggregate(
        people=exposed.count(), leaked=ibis.ifelse(exposed.variants > 1, 1, 0).sum())


# -- estimators over the sums ------------------------------------------------------------


def _iv(i: Interval) -> dict[str, float]:
    return {"estimate": i.estimate, "low": i.low, "high": i.high}


def _moments(row: Mapping[str, float], m: ExperimentMetric) -> Moments:
    if m.type == "conversion":
        return Moments.proportion(row[f"{m.name}_sum"], row["n"])
    return Moments(row["n"], row[f"{m.name}_sum"], row[f"{m.name}_sq"])


def _cuped_arm(row: Mapping[str, float], m: ExperimentMetric) -> CupedArm:
    n = row["n"]
    post = Moments(n, row[f"{m.name}_sum"], row[f"{m.name}_sq"])
    pre = Moments(n, row[f"{m.name}_pre_sum"], row[f"{m.name}_pre_sq"])
    return CupedArm(post, pre, row[f"{m.name}_prod"])


def compare(cfg: ExperimentConfig, m: ExperimentMetric, a: Mapping[str, float],
            b: Mapping[str, float], level: float) -> dict[str, Any]:
    """Every estimator for one metric, control ``a`` vs variant ``b`` (rows of arm sums).

    ``decision`` names the result the verdict reads: sequential when the experiment is
    sequential, else CUPED when enabled and it applies, else the classical test.
    """
    ma, mb = _moments(a, m), _moments(b, m)
    out: dict[str, Any] = {"metric": m.name, "type": m.type,
                           "control_mean": ma.mean, "variant_mean": mb.mean}
    if m.type == "conversion":
        classic = proportions_ztest(ma.total, ma.n, mb.total, mb.n, level)
    else:
        classic = welch_ttest(ma, mb, level)
    out["frequentist"] = {"method": classic.method, "difference": _iv(classic.difference),
                          "lift": _iv(classic.lift), "p_value": classic.p_value}
    arms: tuple[Moments | ArmStats, Moments | ArmStats] = (ma, mb)
    decision, chosen = "frequentist", classic
    if cfg.cuped:
        xa, xb, theta = cuped(_cuped_arm(a, m), _cuped_arm(b, m))
        if theta != 0:
            adj = welch_ttest(xa, xb, level)
            out["cuped"] = {"theta": theta, "difference": _iv(adj.difference),
                            "lift": _iv(adj.lift), "p_value": adj.p_value,
                            "variance_reduction": 1 - (adj.difference.high - adj.difference.low)
                            ** 2 / max((classic.difference.high - classic.difference.low) ** 2,
                                       1e-300)}
            arms, decision, chosen = (xa, xb), "cuped", adj
        else:
            out["cuped"] = None  # no pre-period variance: nothing to adjust with
    bayes = bayesian(ma, mb, relative=True, level=level)
    out["bayesian"] = {"chance_to_win": bayes.chance_to_win,
                       "expected_loss_variant": bayes.expected_loss_variant,
                       "expected_loss_control": bayes.expected_loss_control,
                       "lift": _iv(bayes.effect)}
    seq = sequential(*arms, level=level)
    out["sequential"] = {"difference": _iv(seq.difference), "lift": _iv(seq.lift),
                         "p_value": seq.p_value}
    if cfg.sequential:
        decision, chosen = "sequential", seq
    out["decision"] = decision
    out["difference"] = _iv(chosen.difference)
    out["lift"] = _iv(chosen.lift)
    out["p_value"] = chosen.p_value
    return out


def _sample_size(cfg: ExperimentConfig, control: Mapping[str, float],
                 variant_weight: float) -> dict[str, Any]:
    m = cfg.primary_metric
    ratio = variant_weight / cfg.variants[0].weight
    try:
        mo = _moments(control, m)
        if m.type == "conversion":
            size = sample_size_proportions(mo.mean, cfg.mde, True, cfg.alpha, cfg.power, ratio)
        else:
            size = sample_size_means(math.sqrt(mo.variance), cfg.mde * mo.mean, cfg.alpha,
                                     cfg.power, ratio)
    except MeasureError as exc:
        return {"error": exc.reason}
    return {"control": size.control, "variant": size.variant,
            "baseline": "observed control arm"}


def analyse_stats(cfg: ExperimentConfig, arms: Mapping[str, Mapping[str, float]],
                  leaked: int = 0, level: float | None = None) -> dict[str, Any]:
    """The full analysis from per-variant sums (:func:`arm_sums` rows keyed by variant).

    Returns a plain dict: ``variants`` (people, planned and observed shares), ``srm``,
    ``comparisons`` (one per variant x metric, with adjusted p-values), ``sample_size``,
    ``verdict`` (one sentence a marketer can read) and ``warnings``.
    """
    level = level if level is not None else 1 - cfg.alpha
    warnings: list[str] = []
    names = [v.name for v in cfg.variants]
    unknown = sorted(set(arms) - set(names))
    if unknown:
        people = sum(int(arms[u]["n"]) for u in unknown)
        warnings.append(f"{people} exposed people are in variants not in the definition "
                        f"({', '.join(unknown)}); they are left out.")
    if leaked:
        warnings.append(f"{leaked} people were seen in several variants; they are left out.")
    counts = [float(arms[v]["n"]) if v in arms else 0.0 for v in names]
    total = sum(counts)
    planned = [v.weight / sum(x.weight for x in cfg.variants) for v in cfg.variants]
    variants = [{"name": v, "people": int(c), "planned_share": w,
                 "share": c / total if total else 0.0}
                for v, c, w in zip(names, counts, planned, strict=True)]
    srm = srm_check(counts, [v.weight for v in cfg.variants])
    if srm.mismatch:
        warnings.insert(0, srm.message)
    result: dict[str, Any] = {
        "experiment": cfg.name, "description": cfg.description, "owner": cfg.owner,
        "control": cfg.control, "level": level, "variants": variants,
        "srm": {"chi2": srm.chi2, "p_value": srm.p_value, "mismatch": srm.mismatch,
                "message": srm.message},
        "comparisons": [], "sample_size": {}, "warnings": warnings,
    }
    empty = [v for v, c in zip(names, counts, strict=True) if c == 0]
    if empty:
        result["verdict"] = (f"No answer: variant{'s' if len(empty) > 1 else ''} "
                             f"{', '.join(empty)} {'have' if len(empty) > 1 else 'has'} no exposed "
                             "people, so there is nothing to compare. Check that the exposure "
                             f"event '{cfg.exposure.event}' carries {cfg.exposure.variant_property}"
                             f" = {empty[0]}.")
        return result
    control = arms[cfg.control]
    comparisons: list[dict[str, Any]] = []
    for v in cfg.variants[1:]:
        result["sample_size"][v.name] = {**_sample_size(cfg, control, v.weight),
                                         "achieved_control": int(control["n"]),
                                         "achieved_variant": int(arms[v.name]["n"])}
        for m in cfg.metrics:
            try:
                comp = compare(cfg, m, control, arms[v.name], level)
            except MeasureError as exc:
                comp = {"metric": m.name, "type": m.type, "error": exc.reason,
                        "instruction": exc.instruction}
            comp["variant"] = v.name
            comp["primary"] = m.name == cfg.primary_metric.name
            comparisons.append(comp)
    valid = [c for c in comparisons if "p_value" in c]
    raw = [c["p_value"] for c in valid]
    adjusted = (holm(raw) if cfg.correction == "holm" else benjamini_hochberg(raw)
                if cfg.correction == "benjamini_hochberg" else raw) if raw else []
    for c, p in zip(valid, adjusted, strict=True):
        c["p_adjusted"] = p
        c["significant"] = p < 1 - level
    result["comparisons"] = comparisons
    result["verdict"] = _verdict(cfg, comparisons, result["sample_size"], srm.mismatch)
    return result


def _pct(x: float) -> str:
    return f"{x * 100:+.1f} %"


def _verdict(cfg: ExperimentConfig, comparisons: list[dict[str, Any]],
             sizes: dict[str, Any], srm_mismatch: bool) -> str:
    parts: list[str] = []
    for c in comparisons:
        if not c["primary"]:
            continue
        v = c["variant"]
        if "error" in c:
            parts.append(f"{v}: no answer ({c['error']})")
            continue
        lift = c["lift"]
        where = f"{_pct(lift['estimate'])} on {c['metric']} (interval {_pct(lift['low'])} to " \
                f"{_pct(lift['high'])}, adjusted p = {c['p_adjusted']:.3g})"
        if c["significant"]:
            word = "wins" if c["difference"]["estimate"] > 0 else "loses"
            parts.append(f"{v} {word}: {where}")
        else:
            need = sizes.get(v, {})
            short = ("control" in need and (need["achieved_control"] < need["control"]
                                            or need["achieved_variant"] < need["variant"]))
            tail = (f"; underpowered: {need['achieved_variant']:,} of {need['variant']:,} "
                    f"people needed per arm to detect {_pct(cfg.mde)}" if short else "")
            parts.append(f"{v}: not significant, no winner ({where}){tail}")
    for c in comparisons:
        if not c["primary"] and c.get("significant") and c["difference"]["estimate"] < 0:
            parts.append(f"guardrail {c['metric']} got worse for {c['variant']} "
                         f"({_pct(c['lift']['estimate'])})")
    text = "; ".join(parts)
    if srm_mismatch:
        return "SAMPLE RATIO MISMATCH: do not read these results. " + text
    return text[0].upper() + text[1:] if text else text


def analyse_tables(cfg: ExperimentConfig, events: ir.Table, orders: ir.Table,
                   to_rows: Any, level: float | None = None) -> dict[str, Any]:
    """:func:`analyse_stats` on the sums the engine computes from ``events`` and ``orders``.

    ``to_rows(expr)`` runs an Ibis expression and returns a list of dicts (``Engine.to_arrow``
    then ``to_pylist``).
    """
    exposed = exposures(events, cfg)
    counts = {r["variant"]: r for r in to_rows(exposure_counts(exposed))}
    leaked = sum(int(r["leaked"] or 0) for r in counts.values())
    rows = to_rows(arm_sums(person_metrics(exposed, orders, cfg), cfg))
    arms = {r["variant"]: {k: float(v or 0) for k, v in r.items() if k != "variant"}
            for r in rows}
    return analyse_stats(cfg, arms, leaked, level)
