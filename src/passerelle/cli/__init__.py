"""Command line: parses options and forwards to :class:`passerelle.Project`. Nothing else.

One module per command group; each registers its commands on the one Typer ``app``.
"""

from __future__ import annotations

import importlib
import os
import sys

from passerelle.cli.common import app, err_console, state
from passerelle.errors import ExitCode, PasserelleError, ProjectError

__all__ = ["app", "main"]

# Importing a module registers its commands; this order is the order of `passerelle --help`.
for _group in ("project", "quality", "identity", "segments", "activation", "measure", "metrics",
               "events", "privacy", "governance", "personalize", "web", "remote"):
    importlib.import_module(f"passerelle.cli.{_group}")


def main() -> None:
    """Entry point: user errors print a reason and what to do; tracebacks only with --debug."""
    try:
        app(standalone_mode=True)  # Typer handles usage errors, --help and exit codes
    except PasserelleError as exc:
        if state["debug"]:
            raise
        from passerelle.render import print_error, problems_text

        if isinstance(exc, ProjectError) and _not_a_project(exc):
            print_error(err_console, f"{exc.problems[0].file} has no passerelle.yml: it is not "
                        "a Passerelle project folder.",
                        "Run the command inside a project folder, name one with -p DIR, or "
                        "create one with `passerelle init DIR` (or `passerelle demo`).")
        elif isinstance(exc, ProjectError):
            from passerelle.formatting import DEFAULT

            err_console.print(problems_text(exc.problems), end="", soft_wrap=True)
            err_console.print(f"[bold red]{DEFAULT.count(len(exc.problems), 'problem')}"
                              "[/bold red] in the project; nothing was run. Fix them, then "
                              "check with `passerelle validate`.")
        else:
            print_error(err_console, exc.reason, exc.instruction)
        sys.exit(int(exc.exit_code))
    except Exception as exc:
        if state["debug"] or os.environ.get("PASSERELLE_DEBUG"):
            raise
        err_console.print(f"[bold red]Internal error:[/bold red] {type(exc).__name__}: {exc}",
                          highlight=False)
        err_console.print("[dim]→ This is a bug in Passerelle. Re-run with --debug for the "
                          "traceback and report it.[/dim]")
        sys.exit(int(ExitCode.INTERNAL_ERROR))


def _not_a_project(exc: ProjectError) -> bool:
    from passerelle.project.load import PROJECT_FILE

    return len(exc.problems) == 1 and exc.problems[0].message.startswith(f"no {PROJECT_FILE} ")
