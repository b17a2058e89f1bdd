"""What every command module shares: the Typer app, consoles, options, opening a project."""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from typer.core import TyperGroup

from passerelle.errors import EXIT_CODES_HELP, ExitCode


class _Group(TyperGroup):
    """The root command: a mistyped command line is a user error (exit 1), like every other
    (Click's own code, 2, is Passerelle's code for an outside system that refused)."""

    def make_context(self, *args, **kwargs):
        with _usage_is_user_error():
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx):
        with _usage_is_user_error():
            return super().invoke(ctx)


@contextmanager
def _usage_is_user_error():
    try:
        yield
    except Exception as exc:  # Typer vendors Click: match its UsageError by name
        if any(k.__name__ == "UsageError" for k in type(exc).__mro__):
            exc.exit_code = int(ExitCode.USER_ERROR)  # type: ignore[attr-defined]
        raise


app = typer.Typer(
    name="passerelle", no_args_is_help=True, add_completion=False, cls=_Group,
    help="Passerelle: the customer data platform marketing and IT share.",
    epilog=EXIT_CODES_HELP,
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


def open_project(project_dir: Path, core: bool = False):
    """The project; ``core``: its core files only, for commands that read the warehouse's
    run records (see :func:`passerelle.core.open_core`)."""
    if core:
        from passerelle.core import open_core

        return open_core(project_dir, reporter=reporter())
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
    """Say what failed in a pipeline result and exit with its code (docs/project.md, "Exit
    codes"): 0 when everything ran, 4 when only part of it did, the worst error's otherwise."""
    for error in result.errors:
        err_console.print(f"[red]✗[/red] {error.reason}", highlight=False)
        if error.instruction:
            err_console.print(f"  [dim]→ {error.instruction}[/dim]", highlight=False)
    if result.failed_checks:
        n = len(result.failed_checks)
        err_console.print(f"[red]✗ {n} error-severity check{'s' if n != 1 else ''} failed; "
                          "later steps were skipped.[/red] See them with "
                          "[bold]passerelle checks[/bold].")
    for step in result.failed_steps:
        if step.step in ("checks", "load", "stage") or not step.message:
            continue  # said above (its error or the checks line)
        where = f" {step.target}" if step.target else ""
        err_console.print(f"[red]✗[/red] {step.step}{where} failed: {step.message}",
                          highlight=False)
    code = result.exit_code
    if code != ExitCode.OK:
        raise typer.Exit(int(code))
