"""Leaf definitions (traits, metrics, segments, experiments, destinations) degrade file by file.

This module holds what a load left out; :mod:`passerelle.leaves` reads them.

Nothing in the pipeline depends on them, so one broken file must not stop the others: its
definitions are left out, with whatever uses them (a segment on a skipped trait or segment,
a metric on a skipped measure or metric), their problems are kept for `passerelle validate`,
and `passerelle run` records each definition it skipped. Sources, identity.yml, checks and
passerelle.yml still stop everything: every later step depends on them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from passerelle.errors import Problem


@dataclass(frozen=True)
class Skipped:
    """A definition left out of this project load, and why."""

    kind: str  # trait, segment, audience, metric, semantic model, experiment, offer, placement
    name: str
    file: str
    line: int | None
    reason: str
    broken: bool  # its own file has problems; else it uses a definition that is skipped

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file

    def problem(self) -> Problem:
        return Problem(self.file, f"{self.kind} '{self.name}' is skipped: {self.reason}",
                       self.line, severity="warning")


@dataclass
class Leaves:
    traits: Any = None  # TraitDefinitions
    metrics: Any = None  # ProjectMetrics
    segments: Any = None  # SegmentDefinitions
    experiments: Any = None  # ExperimentDefinitions
    offers: Any = None  # OfferDefinitions (None: the project has no offers/ nor placements/)
    problems: list[Problem] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


def skip(out: Leaves, kind: str, name: str, origin: tuple[str, int | None], reason: str,
         broken: bool = False) -> Skipped:
    """Record that ``name`` is left out of this load, and why."""
    s = Skipped(kind, name, origin[0], origin[1], reason, broken)
    out.skipped.append(s)
    return s
