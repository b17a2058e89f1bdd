"""`passerelle quarantine` and `passerelle checks`: data quality without SQL."""

from __future__ import annotations

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


@app.command()
def quarantine(
    project: ProjectOpt = Path("."),
    source: Annotated[str | None, typer.Option(help="Only this source.")] = None,
    reason: Annotated[str | None, typer.Option(help="Only this reason, e.g. csv_too_many_"
                                                    "columns or 'order_id: missing'.")] = None,
    sample: Annotated[int, typer.Option(help="Show this many rows, with file, row and why "
                                             "(0: only the counts).")] = 0,
    wide: WideOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Rows that could not be loaded or staged: counts by source and reason, or a sample."""
    from passerelle.render import rows_table
    from passerelle.tables import QUARANTINE_TABLE

    with open_project(project, core=True) as proj:
        rows: list[dict] = []
        if proj.has_table(QUARANTINE_TABLE):
            filters = {k: v for k, v in (("source", source), ("reason", reason)) if v}

            def build(slots):
                q = proj.engine.table(QUARANTINE_TABLE)
                for column, value in slots.items():
                    q = q.filter(q[column] == value)
                if sample:
                    return q.order_by(["source", "source_file", "source_row"]).select(
                        "source", "stage", "reason", "source_file", "source_row", "detail"
                    ).limit(sample)
                counts = q.group_by(["source", "stage", "reason"]).aggregate(rows=q.count())
                return counts.order_by([counts.rows.desc(), "source", "reason"])

            rows = proj.rows(f"quarantine {sample}", build, filters)
        fmt = formatter(proj)
    if as_json:
        return print_json(rows)
    if not rows:
        return console.print("Nothing in quarantine" + (" for this filter." if source or reason
                                                         else "."))
    if sample:
        console.print(rows_table(rows, ("source", "source_row", "reason", "detail"), fmt,
                                 free_text=("detail",), wide=wide,
                                 more=("stage", "source_file")))
    else:
        console.print(rows_table(rows, ("source", "stage", "reason", "rows"), fmt,
                                 free_text=("reason",)))
        console.print("[dim]See rows: passerelle quarantine --sample 10 (--source, --reason to "
                      "narrow).[/dim]")


@app.command()
def checks(
    project: ProjectOpt = Path("."),
    history: Annotated[bool, typer.Option(help="Every recorded result, newest first, not "
                                               "only the last run's.")] = False,
    limit: Annotated[int, typer.Option(help="With --history: number of results.")] = 50,
    wide: WideOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Data-quality checks: the last run's results (or their history), failures first."""
    from passerelle.render import rows_table
    from passerelle.tables import CHECK_RESULTS_TABLE

    with open_project(project, core=True) as proj:
        rows: list[dict] = []
        if proj.has_table(CHECK_RESULTS_TABLE):

            def build(_slots):
                t = proj.engine.table(CHECK_RESULTS_TABLE)
                if history:
                    return t.order_by([t.checked_at.desc(), "name"]).limit(limit)
                last = t.order_by(t.checked_at.desc()).limit(1).run_id.as_scalar()
                return t.filter(t.run_id == last).order_by(["passed", "name"])

            rows = proj.rows(f"checks {history} {limit if history else ''}", build)
        fmt = formatter(proj)
    if as_json:
        return print_json(rows)
    if not rows:
        return console.print("No check has run yet: `passerelle run` runs them.")
    for r in rows:
        r["result"] = "pass" if r["passed"] else ("FAIL" if r["severity"] == "error" else "warn")
    # the date takes the place of the failing rows' count in the history, at 80 columns
    first = ("checked_at",) if history else ("failing_rows",)
    console.print(rows_table(rows, ("name", "result", *first, "message"), fmt,
                             free_text=("message",), wide=wide,
                             more=("severity", "failing_rows", "source", "owner", "run_id")
                             if history else ("severity", "source", "owner", "run_id")))
