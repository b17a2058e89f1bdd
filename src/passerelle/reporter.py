"""How core code talks to the person running it, without printing.

Core modules receive a :class:`Reporter` and call it; the CLI passes a Rich one, the web
worker a job-progress one, tests the silent one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

STILL_WORKING_AFTER_S = 3.0


class Progress(Protocol):
    def advance(self, amount: float = 1) -> None: ...


class Reporter(Protocol):
    def info(self, message: str) -> None: ...

    def warning(self, message: str) -> None: ...

    @contextmanager
    def step(self, name: str, total: float | None = None) -> Iterator[Progress]: ...


class _NoProgress:
    def advance(self, amount: float = 1) -> None:
        return None


class SilentReporter:
    """Keeps messages in memory (tests read them) and prints nothing."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, str]] = []
        self.step_seconds: dict[str, float] = {}

    def info(self, message: str) -> None:
        self.messages.append(("info", message))

    def warning(self, message: str) -> None:
        self.messages.append(("warning", message))

    @contextmanager
    def step(self, name: str, total: float | None = None) -> Iterator[Progress]:
        started = time.perf_counter()
        try:
            yield _NoProgress()
        finally:
            self.step_seconds[name] = self.step_seconds.get(name, 0.0) + (
                time.perf_counter() - started
            )


class RichReporter:
    """Terminal reporter: a spinner or progress bar per step, messages above it."""

    def __init__(self, console=None) -> None:  # console: rich.console.Console
        from rich.console import Console

        self.console = console or Console(stderr=True)
        self.step_seconds: dict[str, float] = {}

    def info(self, message: str) -> None:
        self.console.print(message, highlight=False)

    def warning(self, message: str) -> None:
        self.console.print(f"[yellow]warning:[/yellow] {message}", highlight=False)

    @contextmanager
    def step(self, name: str, total: float | None = None) -> Iterator[Progress]:
        from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        started = time.perf_counter()
        try:
            if not self.console.is_terminal:
                # logs and pipes get no spinner: a line when a step is still at work after a
                # few seconds, so a long step is never silent, and the final line
                timer = threading.Timer(STILL_WORKING_AFTER_S, self.console.print,
                                        [f"… {name}"], {"highlight": False})
                timer.daemon = True
                timer.start()
                try:
                    yield _NoProgress()
                finally:
                    timer.cancel()
            else:
                columns = [SpinnerColumn(), TextColumn("{task.description}")]
                if total is not None:
                    columns += [BarColumn(),
                                TextColumn("{task.completed:,.0f}/{task.total:,.0f}")]
                columns.append(TimeElapsedColumn())
                with Progress(*columns, console=self.console, transient=True) as bar:
                    task = bar.add_task(name, total=total)

                    class _Advance:
                        def advance(self, amount: float = 1) -> None:
                            bar.advance(task, amount)

                    yield _Advance()
        finally:
            elapsed = time.perf_counter() - started
            self.step_seconds[name] = self.step_seconds.get(name, 0.0) + elapsed
        self.console.print(f"[green]✓[/green] {name} [dim]({elapsed:.1f}s)[/dim]", highlight=False)
