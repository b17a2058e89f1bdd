"""What the project object calls: results read from the warehouse, as plain dicts and tables.

- :func:`analyse_experiment`: one experiment of ``experiments/*.yml``, fully analysed;
- experiments defined vs experiments seen in exposure events are in
  :mod:`passerelle.measure.coverage`;
- :func:`campaign_results`: per campaign, channel (and period): spend, reach, conversions,
  revenue, CPA, ROAS, ROI, each with its interval;
- :func:`attribution_report`: every attribution model side by side.

The ``*_from_tables`` variants take the touches / conversions / exposure tables directly
(tests, benchmarks, and callers that built them another way).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

import ibis.expr.operations as ops
import ibis.expr.types as ir
import pyarrow as pa

from passerelle.engines.base import Engine
from passerelle.errors import PasserelleError
from passerelle.measure import warehouse as jr
from passerelle.measure.attribution import (
    RULE_MODELS,
    check_lookback,
    compare_models,
    converting_paths,
    journeys,
    lost_paths,
    markov,
    paths_from_rows,
    rule_based,
    shapley,
)
from passerelle.measure.campaigns import (
    _check_window,
    campaign_result,
    campaign_stats,
    check_currencies,
    spend_totals,
)
from passerelle.measure.intervals import Interval, MeasureError, Moments, welch_mean, wilson
from passerelle.measure.result_columns import CAMPAIGN_RESULT_COLUMNS, FIGURES
from passerelle.project.experiments_models import ExperimentConfig

ALL_MODELS = (*RULE_MODELS, "markov", "shapley")


def _rows(engine: Engine):
    return lambda expr: engine.to_arrow(expr).to_pylist()


def _experiments(project: Any) -> dict[str, ExperimentConfig]:
    return dict(project.definition.experiments.experiments)


# -- experiments -------------------------------------------------------------------------


def analyse_experiment(project: Any, engine: Engine, name: str,
                       level: float | None = None) -> dict[str, Any]:
    """Analyse experiment ``name``: SRM, per variant x metric frequentist, CUPED, Bayesian and
    sequential results, adjusted p-values, sample size needed vs achieved, and a verdict.

    See :func:`passerelle.measure.analysis.analyse_stats` for the dict returned.
    """
    from passerelle.identity.attribution import person_events, person_orders
    from passerelle.measure.analysis import analyse_tables  # scipy: only to analyse

    found = _experiments(project)
    if name not in found:
        known = ", ".join(sorted(found)) or "none"
        raise PasserelleError(f"There is no experiment named '{name}'.",
                              f"Experiments of this project: {known} (experiments/*.yml).")
    jr.require_tables(engine, ["events", "orders", "person_map"])
    return analyse_tables(found[name], person_events(engine, project.sources),
                          person_orders(engine, project.sources), _rows(engine), level)


# -- campaign results --------------------------------------------------------------------

_FIGURES = FIGURES


def _no_spend_result(reach: int, converters: float, rev_sum: float, rev_sq: float,
                     level: float) -> dict[str, Interval | None]:
    conv = wilson(converters, reach, level).scaled(reach)
    m = Moments(reach, rev_sum, rev_sq)
    revenue = (welch_mean(m, level).scaled(reach) if reach >= 2 and m.variance > 0
               else Interval(rev_sum, rev_sum, rev_sum, level, "exact"))
    return {"conversions": conv, "revenue": revenue, "cpa": None, "roas": None, "roi": None}


def campaign_results_from_tables(touches: ir.Table, conversions: ir.Table,
                                 ad_spend: ir.Table | None, engine: Engine, window: timedelta,
                                 grain: str | None = None, currency: str = "EUR",
                                 rates: Mapping[str, float] | None = None,
                                 level: float = 0.95) -> pa.Table:
    """Per ``campaign_id, channel`` (and ``period`` of the first touch when ``grain`` is
    day, week or month): spend, reach, conversions, revenue, CPA, ROAS, ROI, each as
    ``x, x_low, x_high``, and ``notes``. Campaigns without a campaign id are left out."""
    _check_window(window)
    t = touches.filter(touches.campaign_id.notnull())
    stats = engine.to_arrow(campaign_stats(t, conversions, window, grain=grain)).to_pylist()
    spend_rows: list[dict[str, Any]] = []
    if ad_spend is not None:
        found = engine.to_arrow(ad_spend.select("currency").distinct()).column(0).to_pylist()
        check_currencies(found, currency, rates)
        spend_rows = engine.to_arrow(spend_totals(ad_spend, currency, rates,
                                                  grain=grain)).to_pylist()
    merged: dict[tuple, dict[str, Any]] = {}
    for r in stats:
        merged[(r["campaign_id"], r["channel"], r["period"])] = {**r, "spend": 0.0}
    for r in spend_rows:
        key = (r["campaign_id"], r["channel"], r["period"])
        merged.setdefault(key, {"campaign_id": key[0], "channel": key[1], "period": key[2],
                                "reach": 0, "converters": 0, "revenue_sum": 0.0,
                                "revenue_sq": 0.0})["spend"] = float(r["spend"] or 0.0)
    out: list[dict[str, Any]] = []
    for key in sorted(merged, key=lambda k: tuple("" if x is None else str(x) for x in k)):
        r = merged[key]
        reach, spend = int(r["reach"] or 0), float(r["spend"])
        conv, rev_sum, rev_sq = (float(r["converters"] or 0), float(r["revenue_sum"] or 0),
                                 float(r["revenue_sq"] or 0))
        row: dict[str, Any] = {"campaign_id": key[0], "channel": key[1], "period": key[2],
                               "spend": spend, "reach": reach}
        notes: list[str] = []
        figures: dict[str, Interval | None] = dict.fromkeys(_FIGURES)
        if reach == 0:
            notes.append("Nobody touched in this window: no result.")
        elif spend > 0:
            res = campaign_result(spend, reach, conv, rev_sum, rev_sq, level)
            figures = {f: getattr(res, f) for f in _FIGURES}
            notes.extend(res.notes)
        else:
            figures = _no_spend_result(reach, conv, rev_sum, rev_sq, level)
            notes.append("No spend recorded: CPA, ROAS and ROI do not exist.")
        for f in _FIGURES:
            iv = figures[f]
            for suffix, attr in (("", "estimate"), ("_low", "low"), ("_high", "high")):
                value = getattr(iv, attr) if iv is not None else None
                row[f + suffix] = None if value is None or math.isinf(value) else value
        row["notes"] = " ".join(notes)
        out.append(row)
    types = {"string": pa.string(), "date": pa.date32(), "float": pa.float64(),
             "integer": pa.int64()}
    schema = pa.schema([(name, types[kind]) for name, kind in CAMPAIGN_RESULT_COLUMNS])
    return pa.Table.from_pylist(out, schema=schema)


def campaign_results(project: Any, engine: Engine, window: timedelta = timedelta(days=14),
                     grain: str | None = None, rates: Mapping[str, float] | None = None,
                     level: float = 0.95) -> pa.Table:
    """Campaign results of the project's warehouse (see :func:`campaign_results_from_tables`).

    Touches are sends and visits carrying a campaign (utm campaign); conversions are orders
    within ``window`` after a person's first touch of the campaign, any channel.
    """
    jr.require_tables(engine, ["orders", "person_map"])
    return campaign_results_from_tables(
        jr.touches(engine, project.sources), jr.conversions(engine, project.sources),
        engine.table("ad_spend") if engine.exists("ad_spend") else None, engine, window,
        grain, getattr(project.config, "currency", None) or "EUR", rates, level)


# -- attribution -------------------------------------------------------------------------


def _materialize(engine: Engine, expr: ir.Table, stem: str, made: list[str]) -> ir.Table:
    """``expr`` computed once into a temporary table (dropped by the caller), so that the
    queries reading it several times do not recompute it; a stored table is used as is."""
    if isinstance(expr.op(), ops.DatabaseTable):
        return expr
    name = f"_measure_{stem}_{uuid.uuid4().hex[:10]}"
    made.append(name)
    return engine.scratch_table(name, expr)


def attribution_from_tables(touches: ir.Table, conversions: ir.Table, engine: Engine,
                            lookback: timedelta = timedelta(days=30),
                            models: Sequence[str] | None = None,
                            half_life: timedelta = timedelta(days=7),
                            direct: str = jr.DIRECT) -> dict[str, Any]:
    """Every model side by side, per channel.

    Returns ``{"conversions": pa.Table, "revenue": pa.Table, "summary": dict}``: one row per
    channel, one column per model (all columns add up to the same total), and counts of
    conversions, attributed conversions (with a touch in their window), single-touch
    journeys and distinct paths (converting ones, plus non-converting ones when the Markov
    model is asked for).

    The engine builds the touches and the journeys once each (temporary tables), then
    answers three aggregates from them: credits per channel for the rule-based models, and
    the distinct converting and non-converting paths with their counts. Python receives a
    row per channel and a row per distinct path.
    """
    models = list(models or ALL_MODELS)
    unknown = [m for m in models if m not in ALL_MODELS]
    if unknown:
        raise MeasureError(f"Unknown attribution model(s): {', '.join(unknown)}.",
                           f"Choose among {', '.join(ALL_MODELS)}.")
    check_lookback(lookback)  # before any work
    made: list[str] = []
    try:
        touches = _materialize(engine, touches, "touches", made)
        conversions = _materialize(engine, conversions, "conversions", made)
        j = _materialize(engine, journeys(touches, conversions, lookback), "journeys", made)
        # pandas, not Arrow: PostgreSQL returns sums of numeric literals as Decimal
        rules = engine.con.execute(rule_based(j, ("channel",), half_life, direct))
        for col in rules.columns[1:]:
            rules[col] = rules[col].astype(float)
        conv_rows = engine.con.execute(converting_paths(j)).to_dict("records")
        lost_rows = (engine.con.execute(lost_paths(touches, conversions, lookback))
                     .to_dict("records") if "markov" in models else [])
        total = engine.to_arrow(conversions.aggregate(n=conversions.count())).to_pylist()[0]["n"]
    finally:
        for name in made:
            engine.con.drop_table(name, force=True)
    converting = paths_from_rows((r["path"], r["conversions"], r["revenue"], 0)
                                 for r in conv_rows)
    lost = paths_from_rows((r["path"], 0, 0.0, r["non_conversions"]) for r in lost_rows)
    mk = markov(converting + lost) if "markov" in models and converting else None
    sh = shapley(converting) if "shapley" in models and converting else None
    distinct = len({p.channels for p in converting} | {p.channels for p in lost})
    out: dict[str, Any] = {"summary": {
        "conversions": int(total or 0),
        "attributed": int(sum(p.conversions for p in converting)),
        "single_touch_journeys": int(sum(int(r["single_touch"] or 0) for r in conv_rows)),
        "distinct_paths": distinct,
        "lookback_days": lookback.total_seconds() / 86400, "models": models}}
    for value in ("conversions", "revenue"):
        table = compare_models(rules, mk, sh, value=value) if len(rules) else None
        if table is None:
            out[value] = pa.table({"channel": pa.array([], pa.string()),
                                   **{m: pa.array([], pa.float64()) for m in models}})
            continue
        for m in models:
            if m not in table:
                table[m] = 0.0
        out[value] = pa.Table.from_pandas(table[["channel", *models]], preserve_index=False)
    return out


def attribution_report(project: Any, engine: Engine, lookback: timedelta = timedelta(days=30),
                       models: Sequence[str] | None = None,
                       half_life: timedelta = timedelta(days=7),
                       include_sends: bool = True) -> dict[str, Any]:
    """Attribution of the project's orders to channels (see :func:`attribution_from_tables`);
    journeys are visits and sends, stitched by person."""
    jr.require_tables(engine, ["orders", "person_map"])
    return attribution_from_tables(jr.touches(engine, project.sources, include_sends),
                                   jr.conversions(engine, project.sources), engine, lookback,
                                   models, half_life)
