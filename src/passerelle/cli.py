"""Command line: parses options and forwards to :class:`passerelle.Project`. Nothing else."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from passerelle.errors import ExitCode, PasserelleError, ProjectError

app = typer.Typer(
    name="passerelle", no_args_is_help=True, add_completion=False,
    help="Passerelle: the customer data platform marketing and IT share.",
)
console = Console()
err_console = Console(stderr=True)
_state = {"debug": False}

ProjectOpt = Annotated[Path, typer.Option(
    "--project", "-p", envvar="PASSERELLE_PROJECT", help="Project folder.",
    show_default="current folder")]


@app.callback()
def _main(debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False) -> None:
    _state["debug"] = debug


def _reporter():
    from passerelle.reporter import RichReporter

    return RichReporter(err_console)


def _open(project_dir: Path):
    import passerelle

    return passerelle.open(project_dir, reporter=_reporter())


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
    from passerelle.render import problems_text

    with _open(project) as proj:
        problems = proj.validate(connect=not offline)
    if problems.items:
        console.print(problems_text(problems.items), end="", soft_wrap=True)
    if problems.errors:
        n = len(problems.errors)
        err_console.print(f"[bold red]{n} problem{'s' if n > 1 else ''}[/bold red] to fix.")
        raise typer.Exit(ExitCode.USER_ERROR)
    console.print(f"[green]✓[/green] {proj.root.name}: {len(proj.sources)} sources, "
                  f"{len(proj.definition.checks)} checks, all valid.")


@app.command()
def schema(
    kind: Annotated[str, typer.Argument(help="passerelle | identity | source | checks")]
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
    full: Annotated[bool, typer.Option(help="Re-stage every source, even unchanged ones.")]
    = False,
) -> None:
    """Load new data from every source, stage it, check it."""
    from passerelle.render import run_summary

    with _open(project) as proj:
        result = proj.run(source=source, full=full)
    console.print(run_summary(result))
    _exit_for(result)


def _exit_for(result) -> None:
    for error in result.errors:
        err_console.print(f"[red]✗[/red] {error.reason}", highlight=False)
        if error.instruction:
            err_console.print(f"  [dim]→ {error.instruction}[/dim]", highlight=False)
    if result.failed_checks:
        err_console.print(f"[red]✗ {len(result.failed_checks)} error-severity check(s) failed; "
                          "later steps were skipped.[/red]")
        raise typer.Exit(ExitCode.USER_ERROR)
    if result.errors:
        raise typer.Exit(max(int(e.exit_code) for e in result.errors))


@app.command()
def status(
    project: ProjectOpt = Path("."),
    limit: Annotated[int, typer.Option(help="Number of runs to show.")] = 5,
) -> None:
    """Show the last pipeline runs, step by step."""
    from passerelle.render import runs_table

    with _open(project) as proj:
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
                       reporter=_reporter())
    console.print(run_summary(outcome.result))
    console.print(
        f"\n[bold]Demo ready[/bold] in {outcome.project_dir} "
        f"(ground truth in {outcome.truth_dir}).\n"
        f"  passerelle status -p {outcome.project_dir}    last runs\n"
        f"  passerelle run -p {outcome.project_dir}       re-run: only new data is loaded\n"
        f"  passerelle validate -p {outcome.project_dir}  check the project files\n"
        "The tables are in warehouse.duckdb inside the project; docs/ explains each one."
    )
    _exit_for(outcome.result)


def main() -> None:
    """Entry point: user errors print a reason and what to do; tracebacks only with --debug."""
    try:
        app(standalone_mode=True)  # Typer handles usage errors, --help and exit codes
    except PasserelleError as exc:
        if _state["debug"]:
            raise
        from passerelle.render import print_error, problems_text

        if isinstance(exc, ProjectError):
            err_console.print(problems_text(exc.problems), end="", soft_wrap=True)
            n = len(exc.problems)
            err_console.print(f"[bold red]{n} problem(s)[/bold red] in the project; nothing "
                              "was run. Fix them, then check with `passerelle validate`.")
        else:
            print_error(err_console, exc.reason, exc.instruction)
        sys.exit(int(exc.exit_code))
    except Exception as exc:
        if _state["debug"] or os.environ.get("PASSERELLE_DEBUG"):
            raise
        err_console.print(f"[bold red]Internal error:[/bold red] {type(exc).__name__}: {exc}",
                          highlight=False)
        err_console.print("[dim]→ This is a bug in Passerelle. Re-run with --debug for the "
                          "traceback and report it.[/dim]")
        sys.exit(int(ExitCode.INTERNAL_ERROR))
