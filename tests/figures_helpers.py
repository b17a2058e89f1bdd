"""Comparing the figures a run stored (passerelle.figures) with the on-demand computation."""

from __future__ import annotations

import pytest

from passerelle.errors import PasserelleError
from passerelle.figures import store
from passerelle.figures.compute import compute_or_error, run_keys


def same(a, b) -> bool:
    """Equal, floats to 1e-9 (a sum's last digit depends on the order the engine adds in)."""
    if isinstance(a, float) and isinstance(b, float):
        return a == pytest.approx(b, rel=1e-9, nan_ok=True)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return type(a) is type(b) and len(a) == len(b) and all(map(same, a, b))
    if isinstance(a, PasserelleError) and isinstance(b, PasserelleError):
        return (a.reason, a.instruction) == (b.reason, b.instruction)
    return a == b


def stored_differ(project) -> list[str]:
    """The run's figures that are missing, not current, or not what computing them now
    gives (none on a warehouse the last run left)."""
    bad = []
    for key in run_keys(project):
        stored = store.read(project.engine, key)
        if stored is None or not stored.current:
            bad.append(f"{key}: {'missing' if stored is None else 'not current'}")
            continue
        expected = compute_or_error(project, key)
        if not same(stored.value, expected):
            bad.append(f"{key}: stored {str(stored.value)[:300]} != {str(expected)[:300]}")
    return bad
