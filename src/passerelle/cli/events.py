"""`passerelle events`: collected events and the tracking plan."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from passerelle.cli.common import (
    JsonOpt,
    ProjectOpt,
    app,
    console,
    formatter,
    open_project,
    print_json,
)

events_app = typer.Typer(no_args_is_help=True, help="Collected events and the tracking plan.")
app.add_typer(events_app, name="events")


@events_app.command("violations")
def events_violations(
    project: ProjectOpt = Path("."),
    source: Annotated[str | None, typer.Option(help="Only this collector source.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Events that broke the tracking plan, grouped by event and rule."""
    from rich.table import Table

    from passerelle.collect import list_violations

    with open_project(project) as proj:
        rows = list_violations(proj.engine, source)
    if as_json:
        return print_json(rows)
    if not rows:
        console.print("No violation of the tracking plan.")
        return
    fmt = formatter(proj)
    table = Table(header_style="bold")
    for col in ("source", "event", "rule", "field", "events", "last seen", "example"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["source"], r["event"] or "", r["rule"], r["field"] or "",
                      fmt.number(r["events"]), fmt.timestamp(r["last_seen"], seconds=False),
                      str(r["example"] or "")[:60])
    console.print(table)
