"""Project commands: init, validate, schema, run, status, demo, serve."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from passerelle.cli.common import (
    ProjectOpt,
    app,
    console,
    err_console,
    exit_for,
    open_project,
    reporter,
)
from passerelle.errors import ExitCode, PasserelleError


@app.command()
def init(directory: Annotated[Path, typer.Argument(help="Folder to create.")]) -> None:
    """Write a commented starter project into DIRECTORY."""
    from passerelle.project.starter import init_project

    files = init_project(directory)
    console.print(f"[green]Created[/green] {directory} with {len(files)} files.")
    console.print(f"Next: [bold]passerelle validate -p {directory}[/bold], then "
                  f"[bold]passerelle run -p {directory}[/bold]")


@app.command()
def validate(
    project: ProjectOpt = Path("."),
    offline: Annotated[bool, typer.Option(help="Only parse files; open no file or database.")]
    = False,
) -> None:
    """Check the project and report every problem at once, with file, line and hint."""
    from passerelle.core import validate_folder
    from passerelle.render import problems_text

    # every file's problems, even when some do not parse (no ProjectError on the first layer)
    definition, problems = validate_folder(project, connect=not offline)
    if problems.items:
        console.print(problems_text(problems.items), end="", soft_wrap=True)
    if problems.errors or definition is None:
        n = len(problems.errors)
        err_console.print(f"[bold red]{n} problem{'s' if n > 1 else ''}[/bold red] to fix.")
        raise typer.Exit(ExitCode.USER_ERROR)
    console.print(f"[green]✓[/green] {definition.root.name}: {len(definition.sources)} sources, "
                  f"{len(definition.checks)} checks, all valid.")


@app.command()
def schema(
    kind: Annotated[str, typer.Argument(
        help="passerelle | identity | source | checks | metrics | traits | destination | "
             "segment")]
    = "passerelle",
    out: Annotated[Path | None, typer.Option(help="Write every schema into this folder.")]
    = None,
) -> None:
    """Print the JSON Schema of a project file (for editor completion)."""
    from passerelle.project.schema import SCHEMAS, json_schema, write_schemas

    if out is not None:
        for path in write_schemas(out):
            console.print(f"wrote {path}")
        return
    if kind not in SCHEMAS:
        raise PasserelleError(f"Unknown schema '{kind}'.", f"Choose one of: {', '.join(SCHEMAS)}.")
    sys.stdout.write(json.dumps(json_schema(kind), indent=2, ensure_ascii=False) + "\n")


@app.command()
def run(
    project: ProjectOpt = Path("."),
    source: Annotated[str | None, typer.Option(help="Run only this source.")] = None,
    full: Annotated[bool, typer.Option(help="Redo every step, even those whose inputs did not "
                                            "change.")]
    = False,
    reload: Annotated[list[str] | None, typer.Option(
        "--reload", metavar="SOURCE",
        help="Read this source's files (or table) again from scratch, replacing its earlier "
             "loads. Repeat for several sources.")]
    = None,
) -> None:
    """Load new data from every source, stage it, check it."""
    from passerelle.cli.remote import finish_run, remote_server
    from passerelle.render import run_summary

    if (remote := remote_server(project)):
        finish_run(remote, remote.job("run", {"source": source, "full": full,
                                              "reload": reload or []}))
        return
    with open_project(project) as proj:
        result = proj.run(source=source, full=full, reload=reload or ())
    console.print(run_summary(result))
    exit_for(result)


@app.command()
def status(
    project: ProjectOpt = Path("."),
    limit: Annotated[int, typer.Option(help="Number of runs to show.")] = 5,
) -> None:
    """Show the last pipeline runs, step by step."""
    from passerelle.cli.remote import remote_server, run_rows
    from passerelle.render import runs_table

    if (remote := remote_server(project)):
        rows = run_rows(remote.get("/api/runs", limit=limit))
    else:
        with open_project(project) as proj:
            rows = proj.status(limit)
    if not rows:
        console.print("No run yet. Start one with [bold]passerelle run[/bold].")
        return
    console.print(runs_table(rows))


@app.command()
def demo(
    directory: Annotated[Path, typer.Argument(help="Folder for the demo project.")]
    = Path("passerelle-demo"),
    size: Annotated[int, typer.Option(help="Number of people in the demo company.")] = 2000,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same data).")] = 42,
    eshop_mysql: Annotated[str | None, typer.Option(
        help="Write the e-shop into this MariaDB/MySQL database instead of files, e.g. "
             "mysql://root@127.0.0.1:3306/passerelle_demo")] = None,
) -> None:
    """Generate a demo retailer, write its project, and run the whole pipeline on it."""
    from passerelle.demo.run import run_demo
    from passerelle.render import run_summary

    outcome = run_demo(directory, size=size, seed=seed, eshop_mysql=eshop_mysql,
                       reporter=reporter())
    console.print(run_summary(outcome.result))
    console.print(
        f"\n[bold]Demo ready[/bold] in {outcome.project_dir} "
        f"(ground truth in {outcome.truth_dir}).\n"
        f"  passerelle status -p {outcome.project_dir}    last runs\n"
        f"  passerelle run -p {outcome.project_dir}       re-run: only new data is loaded\n"
        f"  passerelle validate -p {outcome.project_dir}  check the project files\n"
        "The tables are in warehouse.duckdb inside the project; docs/ explains each one."
    )
    exit_for(outcome.result)


@app.command()
def serve(
    project: ProjectOpt = Path("."),
    host: Annotated[str, typer.Option(help="Address to listen on (loopback only: 127.0.0.1, "
                                           "::1, localhost).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    loader: Annotated[bool, typer.Option(help="Move collected events into the warehouse "
                                               "continuously.")] = True,
) -> None:
    """Serve the event collector (/v1, Segment-Spec) and the REST API (/api, /docs).

    Loopback addresses only until the API has accounts: reach it from elsewhere through an
    SSH tunnel or a reverse proxy on the same host (docs/api.md)."""
    from passerelle.api.app import serve as run_server
    from passerelle.api.hosts import check_bind_address

    check_bind_address(host)  # before opening the project: refuse at once
    with open_project(project) as proj:
        console.print(f"Passerelle on http://{host}:{port}  (API docs: /docs; Ctrl-C stops)")
        run_server(proj, host=host, port=port, loader=loader)
