"""Project commands: init, validate, schema, run, status, demo, serve."""

from __future__ import annotations

import json
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
    err_console,
    exit_for,
    formatter,
    open_project,
    print_json,
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
    as_json: JsonOpt = False,
) -> None:
    """Check the project and report every problem at once, with file, line and hint."""
    from passerelle.core import validate_folder
    from passerelle.formatting import for_config
    from passerelle.render import problems_text

    # every file's problems, even when some do not parse (no ProjectError on the first layer)
    definition, problems = validate_folder(project, connect=not offline)
    if as_json:
        valid = definition is not None and not problems.errors
        print_json({"valid": valid, "problems": problems.items})
        if not valid:
            raise typer.Exit(ExitCode.USER_ERROR)
        return
    if problems.items:
        console.print(problems_text(problems.items), end="", soft_wrap=True)
    if problems.errors or definition is None:
        fmt = for_config(definition.config) if definition is not None else None
        n = len(problems.errors)
        count = fmt.count(n, "problem") if fmt else f"{n} problem{'s' if n > 1 else ''}"
        err_console.print(f"[bold red]{count}[/bold red] to fix.")
        raise typer.Exit(ExitCode.USER_ERROR)
    fmt = for_config(definition.config)
    console.print(f"[green]✓[/green] {definition.root.name}: "
                  f"{fmt.count(len(definition.sources), 'source')}, "
                  f"{fmt.count(len(definition.checks), 'check')}, all valid.")


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
    pages: Annotated[bool, typer.Option(
        "--pages", help="Run only the last steps, which prepare what the web pages read "
                        "(each person's orders and events sorted, the pages' figures), from "
                        "the warehouse as it is: nothing is loaded.")]
    = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print what the run did as JSON "
                                                        "(steps, errors, exit code).")]
    = False,
) -> None:
    """Load new data from every source, stage it, check it."""
    from passerelle.cli.remote import finish_run, remote_server
    from passerelle.render import run_summary

    if (remote := remote_server(project)):
        finish_run(remote, remote.job("run", {"source": source, "full": full,
                                              "reload": reload or [], "pages": pages}),
                   as_json=as_json)
        return
    with open_project(project) as proj:
        result = proj.run(source=source, full=full, reload=reload or (), pages=pages)
    if as_json:
        from passerelle.jobs.kinds import run_record

        print_json(run_record(result))
    else:
        console.print(run_summary(result, formatter(proj)))
    exit_for(result)


@app.command()
def status(
    project: ProjectOpt = Path("."),
    limit: Annotated[int, typer.Option(help="Number of runs to show.")] = 5,
    wide: WideOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Show the last pipeline runs, step by step."""
    from passerelle.cli.remote import remote_server, run_rows
    from passerelle.render import runs_table

    if (remote := remote_server(project)):
        rows = run_rows(remote.get("/api/runs", limit=limit))
        proj = open_project(project, core=True)  # its locale and zone (no warehouse opened)
    else:
        with open_project(project, core=True) as proj:
            rows = proj.status(limit)
    if as_json:
        print_json(rows)
        return
    if not rows:
        console.print("No run yet. Start one with [bold]passerelle run[/bold].")
        return
    console.print(runs_table(rows, formatter(proj), wide=wide))


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
    with open_project(outcome.project_dir) as proj:
        console.print(run_summary(outcome.result, formatter(proj)))
        console.print(f"\n[bold]Demo ready[/bold] in {outcome.project_dir} "
                      f"(ground truth in {outcome.truth_dir}).")
        console.print(next_steps(proj, console.width), highlight=False, soft_wrap=True)
    exit_for(outcome.result)


@app.command()
def serve(
    project: ProjectOpt = Path("."),
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0: every interface; "
                                           "put a TLS proxy in front).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    loader: Annotated[bool, typer.Option(help="Move collected events into the warehouse "
                                               "continuously.")] = True,
    workers: Annotated[int, typer.Option(
        min=1, help="Processes answering /v1/decide and /v1/profiles on the port (above 1: "
                    "needs the Redis decision store; docs/personalisation.md).")] = 1,
) -> None:
    """Serve the event collector (/v1, Segment-Spec) and the REST API (/api, /docs).

    Every /api route needs a token or a signed-in session (docs/governance.md); beyond this
    machine, put a reverse proxy with TLS in front (docs/api.md)."""
    from passerelle.api.app import serve as run_server
    from passerelle.api.hosts import bind_warnings
    from passerelle.api.workers import check_workers
    from passerelle.governance.db import open_app_db

    with open_project(project) as proj:
        check_workers(proj, workers)
        with open_app_db(proj) as db:
            for warning in bind_warnings(host, db):
                err_console.print(f"[yellow]![/yellow] {warning}", highlight=False)
        console.print(f"Passerelle on http://{host}:{port}  (API docs: /docs; Ctrl-C stops)"
                      + (f"; decisions in {workers} processes" if workers > 1 else ""))
        run_server(proj, host=host, port=port, loader=loader, workers=workers)


def next_steps(proj, width: int = 200) -> str:
    """What to try next on a project that has run, with its own customers and segments: one
    line a command with what it shows, or (narrow terminals) what it shows, then the command
    on its own line, so commands are never cut."""
    from passerelle.identity.tables import PROFILES

    where = f" -p {proj.root}" if proj.root != Path.cwd() else ""
    steps = [(f"passerelle status{where}", "the last runs")]
    if proj.engine.exists(PROFILES):
        t = proj.engine.table(PROFILES)
        people = proj.engine.to_arrow(t.filter(t.email.notnull() & t.last_name.notnull())
                                      .order_by("person_id").select("email", "first_name",
                                                                    "last_name").limit(1))
        for p in people.to_pylist():
            steps.append((f"passerelle profile {p['email']}{where}", "a customer's 360° view"))
            steps.append((f'passerelle profile "{p["first_name"]} {p["last_name"]}"{where}',
                          "the same, found by name"))
    segments = proj.definition.segments
    for name, segment in sorted((segments.segments if segments else {}).items())[:1]:
        steps.append((f"passerelle segment count {name}{where}", "who is in a segment"))
        destinations = sorted(p.stem for p in (proj.root / "destinations").glob("*.yml"))
        for audience in (segment.audiences or [])[:1]:
            for to in destinations[:1]:
                steps.append((f"passerelle export {audience.name} --to {to}{where}",
                              "send an audience (consent applied)"))
    steps += [(f"passerelle run{where}", "re-run: only new data is loaded"),
              (f"passerelle serve{where}", "the API on http://127.0.0.1:8080 (docs at /docs)")]
    longest = max(len(command) for command, _ in steps)
    if 2 + longest + 2 + max(len(what) for _, what in steps) <= width:
        return "\n".join(f"  {command.ljust(longest)}  {what}" for command, what in steps)
    return "\n".join(f"  {what}:\n    {command}" for command, what in steps)
