"""What every command module shares: the Typer app, consoles, options, opening a project."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from passerelle.errors import ExitCode

app = typer.Typer(
    name="passerelle", no_args_is_help=True, add_completion=False,
    help="Passerelle: the customer data platform marketing and IT share.",
)
console = Console()
err_console = Console(stderr=True)
state = {"debug": False}

ProjectOpt = Annotated[Path, typer.Option(
    "--project", "-p", envvar="PASSERELLE_PROJECT", help="Project folder.",
    show_default="current folder")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the data as JSON (every field, "
                                                      "raw values).")]
WideOpt = Annotated[bool, typer.Option("--wide", help="Show every column, values in full.")]


@app.callback()
def _main(debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False) -> None:
    state["debug"] = debug


def reporter():
    from passerelle.reporter import RichReporter

    return RichReporter(err_console)


def open_project(project_dir: Path):
    import passerelle

    return passerelle.open(project_dir, reporter=reporter())


def formatter(proj):
    """How this project writes figures and times (its locale, time zone and currency)."""
    from passerelle.formatting import for_config

    return for_config(proj.config)


def print_json(data) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=_plain) + "\n")


def _plain(value):
    """JSON for what json cannot write: amounts stay numbers, times ISO 8601."""
    from dataclasses import asdict, is_dataclass
    from decimal import Decimal

    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def exit_for(result) -> None:
    """Exit with the code of a pipeline result's worst error (0 when it succeeded)."""
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
