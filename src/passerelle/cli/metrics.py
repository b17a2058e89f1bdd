"""`passerelle metrics` and `passerelle glossary`."""

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
from passerelle.errors import PasserelleError

metrics_app = typer.Typer(no_args_is_help=True, help="Metrics of the shared glossary.")
app.add_typer(metrics_app, name="metrics")


@metrics_app.command("query")
def metrics_query(
    metrics: Annotated[list[str], typer.Argument(help="Metric names (or synonyms).")],
    project: ProjectOpt = Path("."),
    by: Annotated[list[str] | None, typer.Option(
        "--by", help="Dimension to group by (repeat the option for several).")] = None,
    grain: Annotated[str | None, typer.Option(
        help="Time grain: day, week, month, quarter, year (groups by metric_time).")] = None,
    where: Annotated[str | None, typer.Option(
        help="Filter on dimensions, e.g. \"country = 'FR'\".")] = None,
    order_by: Annotated[list[str] | None, typer.Option(
        "--order-by", help="Column to sort by; prefix with - for descending.")] = None,
    limit: Annotated[int | None, typer.Option(help="Maximum rows.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print rows as JSON.")] = False,
    sql: Annotated[bool, typer.Option("--sql", help="Print the compiled SQL only.")] = False,
) -> None:
    """Answer a metric question from the warehouse, e.g. revenue by channel and month."""
    from passerelle.cli.remote import metrics_table, remote_server
    from passerelle.metrics import compile_sql, query
    from passerelle.render import arrow_table

    group_by = list(by or [])
    if grain and not any(g.split("__")[0] == "metric_time" for g in group_by):
        group_by.append("metric_time")
    args = dict(group_by=group_by, where=where, order_by=list(order_by or []), limit=limit,
                grain=grain)
    if not sql and (remote := remote_server(project)):
        table = metrics_table(remote.post("/api/metrics/query", {"metrics": metrics, **args}))
        proj = open_project(project, core=True)  # its locale and zone (no warehouse opened)
    else:
        with open_project(project) as proj:
            definitions = proj.metrics()
            if sql:
                sys.stdout.write(compile_sql(proj.engine, definitions, metrics, **args) + "\n")
                return
            table = query(proj.engine, definitions, metrics, **args)
    if as_json:
        print_json(table.to_pylist())
    else:
        console.print(arrow_table(table, formatter(proj)))


@app.command()
def glossary(
    project: ProjectOpt = Path("."),
    as_json: JsonOpt = False,
    wide: WideOpt = False,
    lang: Annotated[str | None, typer.Option(
        "--lang", help="Language of the built-in definitions: en or fr.",
        show_default="the project's locale")] = None,
) -> None:
    """Every metric and trait: definition, owner, status, lineage and where it is used."""
    from passerelle.cli.remote import remote_server
    from passerelle.render import glossary_table

    if lang and lang.replace("-", "_").split("_")[0].lower() not in ("en", "fr"):
        raise PasserelleError(f"No glossary texts in '{lang}'.", "Use --lang en or --lang fr.")
    if (remote := remote_server(project)):
        entries = remote.get("/api/glossary")
        if lang:  # the server answers in the project's language: pick the asked one
            from passerelle.traits.definitions import language_of

            for e in entries:
                if e.get("definitions"):
                    e["definition"] = e["definitions"][language_of(lang, "en")]
    else:
        with open_project(project) as proj:
            entries = proj.glossary(lang)
    if as_json:
        print_json(entries)
    else:
        console.print(glossary_table(entries, wide=wide))
