"""`passerelle events`: collected events and the tracking plan."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from passerelle.cli.common import ProjectOpt, app, console, open_project

events_app = typer.Typer(no_args_is_help=True, help="Collected events and the tracking plan.")
app.add_typer(events_app, name="events")


@events_app.command("violations")
def events_violations(
    project: ProjectOpt = Path("."),
    source: Annotated[str | None, typer.Option(help="Only this collector source.")] = None,
) -> None:
    """Events that broke the tracking plan, grouped by event and rule."""
    from rich.table import Table

    from passerelle.collect import list_violations

    with open_project(project) as proj:
        rows = list_violations(proj.engine, source)
    if not rows:
        console.print("No violation of the tracking plan.")
        return
    table = Table(header_style="bold")
    for col in ("source", "event", "rule", "field", "events", "last seen", "example"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["source"], r["event"] or "", r["rule"], r["field"] or "",
                      f"{r['events']:,}", str(r["last_seen"])[:19], str(r["example"] or "")[:60])
    console.print(table)
