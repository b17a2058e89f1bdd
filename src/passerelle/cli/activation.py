"""`passerelle export` and `passerelle deliveries`."""

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
from passerelle.errors import ExitCode


@app.command()
def export(
    audience: Annotated[str, typer.Argument(help="Audience to send.")],
    to: Annotated[str, typer.Option("--to", help="Destination name (destinations/<name>.yml).")],
    project: ProjectOpt = Path("."),
    user: Annotated[str | None, typer.Option(help="Who sends it (kept in the export log).")]
    = None,
    allow_empty: Annotated[bool, typer.Option(
        "--allow-empty", help="Send the audience even if nobody is in it (a webhook or table "
                              "sync then removes everyone from the destination).")] = False,
) -> None:
    """Send an audience to a destination: CSV file, webhook or database table."""
    from types import SimpleNamespace

    from passerelle.cli.remote import remote_server
    from passerelle.identity.service import default_author
    from passerelle.jobs.kinds import export as export_audience

    if (remote := remote_server(project)):  # the sender is the server's signed-in principal
        result = SimpleNamespace(**remote.result(remote.job("export", {
            "audience": audience, "destination": to, "allow_empty": allow_empty})))
    else:
        with open_project(project) as proj:
            result = export_audience(proj, audience, to, user or default_author(),
                                     allow_empty)
    color = {"delivered": "green", "partial": "yellow"}.get(result.status, "red")
    people = formatter(proj).count(result.people, "person", "people")
    console.print(f"[{color}]{result.status}[/{color}]: {people} of {audience} to {to} "
                  f"({result.kind}: {result.target}). {result.detail}", highlight=False)
    if result.sha256:
        console.print(f"  file {result.file_path}  sha256 {result.sha256}")
    if result.dead_letters:
        console.print(f"  {len(result.dead_letters)} batch(es) in the dead-letter list: "
                      f"`passerelle deliveries dead-letters`, then `passerelle deliveries retry`.")
    if result.status not in ("delivered",):
        raise typer.Exit(ExitCode.EXTERNAL_ERROR)


deliveries_app = typer.Typer(no_args_is_help=True, help="Exports made and failed deliveries.")
app.add_typer(deliveries_app, name="deliveries")


@deliveries_app.command("list")
def deliveries_list(
    project: ProjectOpt = Path("."),
    audience: Annotated[str | None, typer.Option(help="Only this audience.")] = None,
    limit: Annotated[int, typer.Option(help="Number of exports to show.")] = 20,
    as_json: JsonOpt = False,
) -> None:
    """The export log: who sent which audience where, when, how many people."""
    from passerelle.activation import list_exports
    from passerelle.render import rows_table

    with open_project(project) as proj:
        rows = list_exports(proj.engine, audience, limit)
    if as_json:
        return print_json(rows)
    console.print(rows_table(rows, ("export_id", "started_at", "user_name", "audience",
                                    "destination", "kind", "people", "status")))


@deliveries_app.command("dead-letters")
def deliveries_dead_letters(
    project: ProjectOpt = Path("."),
    audience: Annotated[str | None, typer.Option(help="Only this audience.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Webhook batches that failed every try and wait to be retried."""
    from passerelle.activation import list_dead_letters
    from passerelle.render import rows_table

    with open_project(project) as proj:
        rows = list_dead_letters(proj.engine, "open", audience)
    if as_json:
        return print_json(rows)
    console.print(rows_table(rows, ("dead_letter_id", "audience", "destination", "people",
                                    "attempts", "last_attempt_at", "error")))


@deliveries_app.command("retry")
def deliveries_retry(
    project: ProjectOpt = Path("."),
    audience: Annotated[str | None, typer.Option(help="Only this audience.")] = None,
) -> None:
    """Re-send the open dead letters, oldest first."""
    from passerelle.activation import load_destinations, retry_dead_letters
    from passerelle.identity.service import default_author
    from passerelle.project.destinations_models import WebhookDestination

    with open_project(project) as proj:
        hooks = {name: d for name, d in load_destinations(proj.root).items()
                 if isinstance(d, WebhookDestination)}
        results = retry_dead_letters(proj.engine, hooks, audience=audience,
                                     user=default_author())
    for r in results:
        console.print(f"{r.status}: {r.people:,} people of {r.audience} to {r.destination}")
    if not results:
        console.print("No open dead letter.")
    elif any(r.status != "delivered" for r in results):
        raise typer.Exit(ExitCode.EXTERNAL_ERROR)
