"""Computing the stored figures: each under its key, all of them at the end of a run (or in a
job the web app starts), with progress.

Keys: ``home``; ``campaigns/<section>/<days>`` (section: holdouts, results, attribution);
``experiment/<name>/<digest of its settings>`` (a changed experiment is a new figure).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from passerelle.engines.base import Engine
from passerelle.errors import PasserelleError
from passerelle.figures import store
from passerelle.figures.stored import WINDOW_DAYS, campaigns_key
from passerelle.reporter import Reporter

SECTIONS = ("holdouts", "results", "attribution")


@dataclass
class Scope:
    """What the figures read of a project: its definition and the warehouse (a run has no
    :class:`passerelle.core.Project`, only these two)."""

    definition: Any  # ProjectDefinition
    engine: Engine

    @property
    def config(self) -> Any:
        return self.definition.config

    @property
    def sources(self) -> Any:
        return self.definition.sources

    @property
    def root(self) -> Path:
        return self.definition.root


def home_key() -> str:
    return "home"


def experiment_key(project: Any, name: str) -> str:
    experiments = project.definition.experiments
    config = experiments.experiments.get(name) if experiments else None
    digest = hashlib.sha256(config.model_dump_json().encode()).hexdigest()[:12] \
        if config is not None else "undefined"
    return f"experiment/{name}/{digest}"


def run_keys(project: Any) -> list[str]:
    """The figures a run computes: the home tiles, the campaigns page at its default window,
    every experiment's read-out."""
    keys = [home_key(), *(campaigns_key(s, WINDOW_DAYS) for s in SECTIONS)]
    experiments = project.definition.experiments
    names = sorted(experiments.experiments) if experiments else []
    return keys + [experiment_key(project, n) for n in names]


def compute(project: Any, key: str) -> Any:
    """The figure ``key`` computed now (the pages' values, language-free)."""
    from passerelle.figures.home import home_tiles
    from passerelle.measure.holdouts import incrementality_report
    from passerelle.measure.report import analyse_experiment, attribution_report, campaign_results

    kind, *rest = key.split("/")
    engine = project.engine
    if kind == "home":
        tiles, period_end = home_tiles(project)
        return [vars(t) for t in tiles], period_end
    if kind == "campaigns":
        section, days = rest[0], timedelta(days=int(rest[1]))
        if section == "results":
            return campaign_results(project, engine, days).to_pylist()
        if section == "holdouts":
            return incrementality_report(project, engine, days)
        if section == "attribution":
            return _attribution(attribution_report(project, engine))
    if kind == "experiment":
        return analyse_experiment(project, engine, rest[0])
    raise PasserelleError(f"There is no figure '{key}'.")


def compute_or_error(project: Any, key: str) -> Any:
    """:func:`compute`, or the error it ended on (a bug becomes a clear error: one figure
    that fails leaves the others, and the run, going)."""
    try:
        return compute(project, key)
    except PasserelleError as exc:
        return exc
    except Exception as exc:
        return PasserelleError(
            f"This figure could not be computed ({type(exc).__name__}: {exc}).",
            "Report it with the run's log; the other figures are not affected.")


def _attribution(report: dict[str, Any]) -> dict[str, Any]:
    conv, rev = report["conversions"].to_pylist(), report["revenue"].to_pylist()
    models = report["summary"]["models"]
    return {"channels": [r["channel"] for r in conv], "models": models,
            "conversions": {m: [float(r[m] or 0) for r in conv] for m in models},
            "rows": conv, "revenue": rev, "summary": report["summary"]}


def refresh(project: Any, reporter: Reporter, keys: list[str] | None = None) -> dict[str, Any]:
    """Compute ``keys`` (default: :func:`run_keys`) and store them, stamped with the data
    they were computed on. A figure that ends on a clear error is stored as that error (the
    page shows it), and so is one that fails on a bug (the run goes on); returns
    ``{"figures": n, "errors": {key: reason}}``."""
    engine = project.engine
    keys = keys or run_keys(project)
    run_id, stamp = store.data_stamp(engine)
    out: dict[str, Any] = {}
    for i, key in enumerate(keys, 1):
        # a step each: a job lets the pages read the warehouse between two figures
        with reporter.step(f"Computing the pages' figures ({i}/{len(keys)}): {key}"):
            out[key] = compute_or_error(project, key)
    store.write(engine, out, run_id, stamp)
    return {"figures": len(out), "errors": {k: v.reason for k, v in out.items()
                                            if isinstance(v, PasserelleError)}}


STATE_STEP = "figures"


def definition_print(definition: Any) -> str:
    """A fingerprint of what a project defines that the figures read (its settings, sources,
    metrics, experiments, segments, consent purposes...): a changed definition computes
    them again."""
    from passerelle import state

    parts = []
    for name in ("config", "sources", "checks", "identity", "traits", "metrics",
                 "experiments", "segments", "consent"):
        parts.append(f"{name}={_dump(getattr(definition, name, None))}")
    return state.fingerprint(*parts)


def _dump(value: Any) -> str:
    if hasattr(value, "model_dump_json"):
        return str(value.model_dump_json())
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{_dump(v)}" for k, v in sorted(value.items())) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_dump(v) for v in value) + "]"
    return repr(value)


def refresh_if_changed(project: Any, reporter: Reporter, run_id: str,
                       full: bool = False) -> dict[str, Any] | None:
    """The run's figures step: :func:`refresh` of :func:`run_keys`, unless each of them is
    stored, stamped with the data as it is now, and the definition and keys are those it
    was computed for (then None: nothing to do, one small query)."""
    from passerelle import state

    keys = run_keys(project)
    _, stamp = store.data_stamp(project.engine)
    print_ = state.fingerprint(stamp, definition_print(project.definition), *keys)
    stored = store.stamps(project.engine, keys)
    if not full and len(stored) == len(keys) and set(stored.values()) == {stamp} and (
            state.is_current(project.engine, STATE_STEP, print_)):
        return None
    done = refresh(project, reporter, keys)
    state.remember(project.engine, STATE_STEP, print_, run_id)
    return done
