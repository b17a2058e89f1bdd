"""Reading a whole project folder: the files every step depends on (:mod:`passerelle.project`)
and the leaf definitions each capability reads and checks (:mod:`passerelle.leaves`).

It sits above the capabilities, so ``project/`` (the ground floor) never imports one.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from passerelle.errors import Problems, ProjectError
from passerelle.leaves import load_leaves
from passerelle.project.consent_models import read_consent
from passerelle.project.load import PROJECT_FILE, ProjectDefinition, read_core


def read_project(root: Path | str) -> tuple[ProjectDefinition | None, Problems]:
    """Like :func:`load_project` but never raises: the definition of what parsed (None when
    passerelle.yml itself did not), and the problems that stop a run."""
    definition, problems = read_core(root)
    if definition is None and not (Path(root) / PROJECT_FILE).is_file():
        return None, problems  # not a project folder: nothing else to read
    leaves = load_leaves(Path(root).resolve())
    if definition is None:
        problems.items += leaves.problems
        return None, problems
    consent = read_consent(definition.root, definition.sources, problems, leaves)
    return dataclasses.replace(
        definition, consent=consent,
        traits=leaves.traits if leaves.traits.traits else None,
        metrics=leaves.metrics if leaves.metrics.metrics else None,
        experiments=leaves.experiments,
        segments=leaves.segments if leaves.segments.segments else None,
        leaf_problems=leaves.problems, skipped=leaves.skipped,
    ), problems


def load_project(root: Path | str) -> ProjectDefinition:
    """Parse and cross-check a project folder; raises :class:`ProjectError` with all problems
    of the files the pipeline depends on. A broken leaf file (trait, metric, segment...) only
    leaves its definitions out: see ``ProjectDefinition.skipped``."""
    definition, problems = read_project(root)
    if problems.errors or definition is None:
        # every problem in one pass, the leaf files' too
        raise ProjectError([*problems.items, *(definition.leaf_problems if definition else [])])
    return definition
