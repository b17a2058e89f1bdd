"""One root exception for everything Passerelle reports to a user.

Every error carries a *reason* (what went wrong) and an *instruction* (what to do about
it). The CLI prints both and exits with the error's exit code; tracebacks appear only
with ``--debug``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum


class ExitCode(IntEnum):
    """How every command ends (docs/project.md, "Exit codes"; ``passerelle --help``)."""

    OK = 0  # everything asked for was done
    USER_ERROR = 1  # bad project, input or command line: the user can fix it; nothing ran
    EXTERNAL_ERROR = 2  # a database, file, server or destination outside Passerelle refused
    INTERNAL_ERROR = 3  # a bug in Passerelle
    PARTIAL = 4  # it ran, but part of the work failed (a check, trait, segment, definition)


EXIT_CODES_HELP = (
    "Exit codes: 0 done; 1 bad project, input or command line (nothing ran); 2 a database, "
    "file, server or destination refused; 3 a bug in Passerelle; 4 ran in part: a check, "
    "trait, segment or definition failed (the rest is up to date)."
)

# which code a command reports when several things went wrong: the one that most needs
# someone's attention (a bug, then an outside system, then the user's input, then a part)
_SEVERITY = (ExitCode.INTERNAL_ERROR, ExitCode.EXTERNAL_ERROR, ExitCode.USER_ERROR,
             ExitCode.PARTIAL, ExitCode.OK)


def worst(codes) -> ExitCode:
    """The code to exit with among ``codes`` (OK when there are none)."""
    present = {ExitCode(int(c)) for c in codes}
    return next((c for c in _SEVERITY if c in present), ExitCode.OK)


class PasserelleError(Exception):
    """Root of every error Passerelle raises on purpose."""

    exit_code: ExitCode = ExitCode.USER_ERROR

    def __init__(self, reason: str, instruction: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.instruction = instruction

    def __str__(self) -> str:
        if self.instruction:
            return f"{self.reason}\n  → {self.instruction}"
        return self.reason


@dataclass(frozen=True)
class Problem:
    """One problem found in a project file, pointing at where to fix it."""

    file: str
    message: str
    line: int | None = None
    hint: str | None = None
    severity: str = "error"  # "error" stops the run; "warning" is reported only

    def location(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file

    def __str__(self) -> str:
        text = f"{self.location()}: {self.message}"
        return f"{text} (hint: {self.hint})" if self.hint else text


class ProjectError(PasserelleError, ValueError):
    """The project folder is invalid. Carries every problem found, not just the first."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = [p for p in problems if p.severity == "error"]
        count = len(self.problems)
        reason = f"The project has {count} problem{'s' if count != 1 else ''}:\n" + "\n".join(
            f"  - {p}" for p in self.problems
        )
        super().__init__(reason, "Fix the files named above, then run `passerelle validate`.")


class ConnectorError(PasserelleError):
    """A source could not be read (file, database, network)."""

    exit_code = ExitCode.EXTERNAL_ERROR


class EngineError(PasserelleError):
    """The warehouse engine refused or is unreachable."""

    exit_code = ExitCode.EXTERNAL_ERROR


class PartialFailure(PasserelleError):
    """Part of a run failed (a definition left out, a step that could not finish) while the
    rest ran."""

    exit_code = ExitCode.PARTIAL


class CheckFailed(PartialFailure):
    """An error-severity data-quality check failed, so downstream steps were not run."""


@dataclass
class Problems:
    """Collects problems while validating, so all of them are reported at once."""

    items: list[Problem] = field(default_factory=list)

    def add(self, file: str, message: str, line: int | None = None, hint: str | None = None,
            severity: str = "error") -> None:
        self.items.append(Problem(file, message, line, hint, severity))

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.items if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.items if p.severity == "warning"]

    def raise_if_any(self) -> None:
        if self.errors:
            raise ProjectError(self.items)
