"""Recompute every trait of a project and publish them with their history.

Order of work: each trait's rows are inserted into a work table (one INSERT ... SELECT per
trait, compiled by Ibis for the engine), then changed values are appended to the history and
the work table replaces ``traits`` in one transaction. A trait that fails (e.g. CLV with too
few repeat buyers) keeps its previous values and is reported; the others are published.

A trait whose inputs, definition and time did not move since its last computation
(:mod:`passerelle.traits.incremental`) is not recomputed: its values are carried over, and
when every trait is current nothing is written at all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import ibis.expr.types as ir

from passerelle.engines.base import Engine
from passerelle.errors import PasserelleError
from passerelle.project.models import SourceConfig
from passerelle.project.traits_models import (
    BUILTIN_ENTITY,
    AggregateTrait,
    BuiltinTrait,
    TraitDefinitions,
)
from passerelle.reporter import Reporter, SilentReporter
from passerelle.traits import builtins, incremental, store
from passerelle.traits.aggregates import aggregate_trait
from passerelle.traits.clv import Fit
from passerelle.traits.persons import PERSON_MAP, person_events, person_order_lines, person_orders

Trait = AggregateTrait | BuiltinTrait


@dataclass
class TraitsSummary:
    run_id: str
    computed_at: datetime
    persons: dict[str, int] = field(default_factory=dict)  # trait output -> persons with a value
    history_rows: int = 0  # rows appended to traits_history (values that changed)
    fits: dict[str, dict[str, Fit | None]] = field(default_factory=dict)  # clv trait -> fits
    failed: dict[str, str] = field(default_factory=dict)  # trait -> reason (kept old values)
    skipped: list[str] = field(default_factory=list)  # traits whose inputs did not change


class _Inputs:
    """The person-attributed entities, built once per run and only when a trait needs them."""

    def __init__(self, engine: Engine, sources: Mapping[str, SourceConfig]) -> None:
        self.engine, self.sources = engine, sources
        self._cache: dict[str, ir.Table] = {}

    def get(self, entity: str) -> ir.Table:
        if entity not in self._cache:
            if not self.engine.exists(entity):
                raise PasserelleError(f"traits need the '{entity}' table, which does not exist",
                                      "run the pipeline so that sources are staged and unified")
            build = {"orders": person_orders, "events": person_events,
                     "order_lines": person_order_lines}[entity]
            self._cache[entity] = build(self.engine, self.sources)
        return self._cache[entity]

    def persons(self) -> ir.Table:
        pm = self.engine.table(PERSON_MAP)
        return pm.select("person_id").distinct()


def outputs(trait: Trait) -> list[str]:
    return builtins.outputs(trait) if isinstance(trait, BuiltinTrait) else [trait.name]


def compute_traits(engine: Engine, traits: TraitDefinitions | Sequence[Trait],
                   sources: Mapping[str, SourceConfig], run_id: str, now: datetime,
                   reporter: Reporter | None = None, *, full: bool = False) -> TraitsSummary:
    """Recompute the traits as of ``now`` (naive UTC) and publish them.

    Needs ``person_map`` and the unified ``orders`` / ``order_lines`` / ``events`` the traits
    use. Returns how many persons got each value, the CLV fits (with standard errors), the
    number of history rows appended, the traits that failed and those skipped because
    nothing they depend on changed (``full`` recomputes them all).
    """
    if isinstance(traits, TraitDefinitions):
        trait_list, origin = list(traits.traits), traits.origin
    else:
        trait_list, origin = list(traits), {}
    reporter = reporter or SilentReporter()
    if not engine.exists(PERSON_MAP):
        raise PasserelleError("traits need person_map, which does not exist yet",
                              "run the identity step first (`passerelle run`)")
    summary = TraitsSummary(run_id, now)
    store.recover(engine)
    prints = incremental.fingerprints(engine, trait_list, sources, now)
    previous = store.read_definitions(engine)
    skip = set() if full or not engine.exists(store.TRAITS) else {
        name for name in incremental.current(engine, prints)
        if previous.get(name, {}).get("status") == "ok"}
    summary.skipped = [t.name for t in trait_list if t.name in skip]
    if len(skip) == len(trait_list) and set(previous) == skip:
        summary.persons = _persons(engine)
        return summary
    inputs = _Inputs(engine, sources)
    models: dict[str | None, builtins.ClvModel] = {}
    definitions: list[dict] = []
    store.start_next(engine)
    with reporter.step("traits", total=len(trait_list)) as progress:
        for trait in trait_list:
            if trait.name in skip:  # unchanged inputs: carry values and definition row over
                store.keep_previous(engine, outputs(trait))
                file, line = origin.get(trait.name, (None, None))
                definitions.append({**previous[trait.name], "file": file, "line": line})
                progress.advance(1)
                continue
            status, message, fit_info = "ok", None, None
            try:
                rows, fit_info = _rows(engine, trait, inputs, models, now)
                store.insert_values(engine, rows, now, run_id)
                if fit_info is not None:
                    summary.fits[trait.name] = fit_info
            except PasserelleError as exc:
                status, message = "failed", exc.reason
                summary.failed[trait.name] = exc.reason
                store.keep_previous(engine, outputs(trait))
                reporter.warning(f"trait {trait.name}: {exc.reason}")
            file, line = origin.get(trait.name, (None, None))
            definitions.append(_definition_row(trait, file, line, fit_info, status, message,
                                               now, run_id))
            progress.advance(1)
    done = [t for t in trait_list if t.name not in summary.failed and t.name not in skip]
    computed = [o for t in done for o in outputs(t)]
    tracked = [o for t in done if t.history for o in outputs(t)]
    summary.history_rows = store.publish(engine, tracked, computed, now, run_id)
    summary.persons = _persons(engine)
    for row in definitions:
        row["persons"] = summary.persons.get(row["name"], 0)
    store.write_definitions(engine, definitions)
    # remembered only once published: a crash before this point recomputes next time
    incremental.remember(engine, prints, [t.name for t in done], run_id)
    engine.drop(builtins.CLV_LOOKUP)
    for model in models.values():
        engine.drop(model.table)
    return summary


def _persons(engine: Engine) -> dict[str, int]:
    table = engine.table(store.TRAITS)
    counts = engine.to_arrow(table.group_by("trait").aggregate(n=table.count())).to_pylist()
    return {r["trait"]: int(r["n"]) for r in counts}


def _rows(engine: Engine, trait: Trait, inputs: _Inputs,
          models: dict[str | None, builtins.ClvModel],
          now: datetime) -> tuple[ir.Table, dict[str, Fit | None] | None]:
    if isinstance(trait, AggregateTrait):
        return aggregate_trait(trait, inputs.get(trait.entity), inputs.persons(), now), None
    rows = inputs.get(BUILTIN_ENTITY[trait.builtin])
    if trait.builtin in ("favourite_channel", "favourite_category"):
        return builtins.favourite(trait, rows, now), None
    if trait.builtin == "days_since_last_visit":
        return builtins.days_since_last_visit(trait, rows, now), None
    if trait.builtin == "rfm":
        return builtins.rfm(trait, rows, now), None
    if trait.where not in models:  # clv and churn_risk on the same orders share one fit
        models[trait.where] = builtins.fit_models(engine, rows, now, trait.where,
                                                  f"{builtins.CLV_STATS}_{len(models)}")
    model = models[trait.where]
    fits = {"bgnbd": model.bgnbd, "gamma_gamma": model.gamma_gamma}
    return builtins.clv_traits(engine, trait, model), fits


def _definition_row(trait: Trait, file: str | None, line: int | None,
                    fits: dict[str, Fit | None] | None, status: str, message: str | None,
                    now: datetime, run_id: str) -> dict:
    fit_json = None
    if fits:
        fit_json = {name: None if f is None else {
            "parameters": f.summary(), "log_likelihood": f.log_likelihood, "n": f.n,
            "converged": f.converged, "sample_of": f.sample_of} for name, f in fits.items()}
    return {
        "name": trait.name, "type": trait.type,
        "entity": getattr(trait, "entity", None) or BUILTIN_ENTITY.get(
            getattr(trait, "builtin", ""), None),
        "function": getattr(trait, "function", None), "builtin": getattr(trait, "builtin", None),
        "description": trait.description, "owner": trait.owner,
        "outputs": ",".join(outputs(trait)),
        "definition": trait.model_dump(mode="json", exclude_none=True),
        "file": file, "line": line, "model_fit": fit_json, "status": status,
        "message": message, "persons": 0, "computed_at": now, "run_id": run_id,
    }
