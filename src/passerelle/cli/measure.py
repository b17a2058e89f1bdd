"""Measurement: experiments, campaigns, attribution, incrementality."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from passerelle.cli.common import (
    JsonOpt,
    ProjectOpt,
    WideOpt,
    app,
    console,
    formatter,
    open_project,
    print_json,
)

# What `campaigns` shows at a terminal's width; --wide adds the intervals, --json everything.
CAMPAIGN_COLUMNS = ["campaign_id", "period", "spend", "conversions", "revenue",
                    "roas"]
# The project files campaign results depend on (the currency, how touches find people).
CAMPAIGNS_READ = ("passerelle.yml", "sources/*.yml", "sources/*.yaml")
MONEY = ("spend", "revenue", "revenue_low", "revenue_high", "cpa", "cpa_low", "cpa_high")

experiments_app = typer.Typer(no_args_is_help=True, help="A/B tests: coverage and analysis.")
app.add_typer(experiments_app, name="experiments")


@experiments_app.command("list")
def experiments_list(project: ProjectOpt = Path("."), as_json: JsonOpt = False) -> None:
    """Experiments defined and experiments seen in exposure events, side by side."""
    from passerelle.measure.coverage import experiments_coverage
    from passerelle.render import rows_table

    with open_project(project) as proj:
        rows = experiments_coverage(proj)
    if as_json:
        return print_json(rows)
    console.print(rows_table(rows, ("experiment", "defined", "people", "first_seen", "status"),
                             formatter(proj), more=("last_seen",)))


@experiments_app.command("analyse")
def experiments_analyse(
    name: Annotated[str, typer.Argument(help="Experiment name (experiments/<name>.yml).")],
    project: ProjectOpt = Path("."),
    as_json: Annotated[bool, typer.Option("--json", help="Print the full analysis.")] = False,
) -> None:
    """Analyse an A/B/n test: sample ratio, lifts with intervals, chance to win, verdict."""
    from passerelle.measure.report import analyse_experiment
    from passerelle.render import experiment_text

    with open_project(project) as proj:
        analysis = analyse_experiment(proj, proj.engine, name)
    print_json(analysis) if as_json else console.print(experiment_text(analysis,
                                                                       formatter(proj)))


@app.command()
def campaigns(
    project: ProjectOpt = Path("."),
    window: Annotated[int, typer.Option(help="Days after a touch in which a purchase counts.")]
    = 14,
    grain: Annotated[str | None, typer.Option(help="day, week or month (default: all time).")]
    = None,
    as_json: JsonOpt = False,
    wide: WideOpt = False,
) -> None:
    """Spend, reach, conversions, revenue, CPA, ROAS and ROI per campaign, with intervals."""
    from passerelle.measure.result_columns import CAMPAIGN_RESULT_COLUMNS, NUMERIC
    from passerelle.render import typed_table

    with open_project(project) as proj:
        rows = _campaign_rows(proj, window, grain)
    if as_json:
        return print_json(rows)
    # per period, the period takes the place of ROAS at 80 columns
    columns = None if wide else [c for c in CAMPAIGN_COLUMNS
                                 if c != ("roas" if grain else "period")]
    console.print(typed_table(rows, [n for n, _ in CAMPAIGN_RESULT_COLUMNS],
                              {n for n, kind in CAMPAIGN_RESULT_COLUMNS if kind in NUMERIC},
                              formatter(proj), columns, money=MONEY))


def _campaign_rows(proj, window: int, grain: str | None) -> list[dict]:
    """The results the last run stored for the campaigns page when they are the ones asked
    for and still current (:func:`passerelle.figures.stored.current`), else computed now."""
    from datetime import timedelta

    from passerelle.figures.stored import WINDOW_DAYS, campaigns_key, current

    if window == WINDOW_DAYS and grain is None:
        stored = current(proj, campaigns_key("results", window), CAMPAIGNS_READ)
        if stored is not None:
            return stored
    from passerelle.measure.report import campaign_results

    return campaign_results(proj, proj.engine, timedelta(days=window), grain).to_pylist()


@app.command()
def attribution(
    project: ProjectOpt = Path("."),
    lookback: Annotated[int, typer.Option(help="Days of touches before a purchase.")] = 30,
    revenue: Annotated[bool, typer.Option(help="Attribute revenue rather than conversions.")]
    = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print rows as JSON.")] = False,
) -> None:
    """Conversions (or revenue) per channel under every attribution model, side by side."""
    from datetime import timedelta

    from passerelle.measure.report import attribution_report
    from passerelle.render import arrow_table

    with open_project(project) as proj:
        report = attribution_report(proj, proj.engine, timedelta(days=lookback))
    table = report["revenue" if revenue else "conversions"]
    if as_json:
        return print_json(table.to_pylist())
    money = tuple(table.column_names) if revenue else ()
    console.print(arrow_table(table, formatter(proj), money=money))


@app.command()
def incrementality(
    project: ProjectOpt = Path("."),
    audience: Annotated[list[str] | None, typer.Option(
        "--audience", help="Only this audience (repeat for several; default: all).")] = None,
    window: Annotated[int, typer.Option(help="Days after each send in which a purchase "
                                              "counts.")] = 14,
    campaign: Annotated[list[str] | None, typer.Option(
        "--campaign", help="AUDIENCE=CAMPAIGN_ID: the ad_spend campaign of an audience "
                           "(default: the audience's name).")] = None,
    spend: Annotated[list[str] | None, typer.Option(
        "--spend", help="AUDIENCE=AMOUNT: what the audience's sends cost, in the project "
                        "currency (instead of ad_spend).")] = None,
    rate: Annotated[list[str] | None, typer.Option(
        "--rate", help="CURRENCY=RATE to convert ad spend, e.g. USD=0.92.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the full report as JSON.")]
    = False,
) -> None:
    """What each audience's sends caused: sent vs held out, lifts and incremental ROI."""
    from datetime import timedelta

    from passerelle.measure.holdouts import (
        incrementality_report,
        incrementality_text,
        parse_pairs,
    )

    with open_project(project) as proj:
        report = incrementality_report(
            proj, proj.engine, timedelta(days=window), audience or None,
            parse_pairs(campaign, "AUDIENCE=CAMPAIGN_ID"), parse_pairs(spend, "AUDIENCE=AMOUNT"),
            parse_pairs(rate, "CURRENCY=RATE"))
    if as_json:
        print_json(report)
    else:
        sys.stdout.write(incrementality_text(report, formatter(proj)))
