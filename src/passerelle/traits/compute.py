"""Recompute every trait of a project and publish them with their history.

Order of work: the entities the traits read are attributed to persons (once, into a
temporary work table, when several queries read one); every reduction trait of an entity
(counts, sums, min/max, averages, RFM's inputs, the last visit) is requested before anything
runs, so that they come out of one aggregation grouped by person; then each trait's rows are
inserted into a work table (one INSERT ... SELECT per trait, compiled by Ibis for the
engine, keeping the start of every value that did not change), the values that stopped
holding move to ``traits_past`` and the work table replaces ``traits`` in one transaction.
A trait that fails (e.g. CLV with too few repeat buyers) keeps its previous values and is
reported; the others are published.

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
from passerelle.identity.attribution import (
    PERSON_MAP,
    person_events,
    person_order_lines,
    person_orders,
)
from passerelle.project.models import SourceConfig
from passerelle.project.traits_models import (
    BUILTIN_ENTITY,
    TIME_COLUMN,
    AggregateTrait,
    BuiltinTrait,
    TraitDefinitions,
)
from passerelle.reporter import Reporter, SilentReporter
from passerelle.traits import builtins, incremental, store
from passerelle.traits.aggregates import (
    MERGEABLE,
    aggregate_trait,
    from_reduction,
    reduction,
    until,
)
from passerelle.traits.clv import Fit
from passerelle.traits.expr import referenced_columns

Trait = AggregateTrait | BuiltinTrait


@dataclass
class TraitsSummary:
    run_id: str
    computed_at: datetime
    persons: dict[str, int] = field(default_factory=dict)  # trait output -> persons with a value
    history_rows: int = 0  # history rows added: values that started, NULLs for values gone
    fits: dict[str, dict[str, Fit | None]] = field(default_factory=dict)  # clv trait -> fits
    failed: dict[str, str] = field(default_factory=dict)  # trait -> reason (kept old values)
    skipped: list[str] = field(default_factory=list)  # traits whose inputs did not change


# Columns the built-ins read, besides person_id, the time column and their ``where``.
BUILTIN_COLUMNS = {"rfm": {"amount"}, "clv": {"amount"}, "churn_risk": {"amount"},
                   "favourite_channel": {"channel"}, "favourite_category": {"category"},
                   "days_since_last_visit": set()}
# What order lines take from their order (see persons.person_order_lines).
ORDER_HEAD = {"order_id", "ordered_at", "channel", "matched_by"}
WORK = "_traits_work_"  # prefix of this run's work tables (temporary, dropped at the end)


class _Inputs:
    """The person-attributed entities, and the one per-person aggregation of each entity that
    every reduction trait (counts, sums, ... , RFM, days since last visit) reads.

    An entity read by more than one query is attributed once, into a temporary work table
    holding only the columns the traits read, instead of once per query; the reductions of
    an entity are computed in one scan grouped by person (:meth:`request`, then
    :meth:`per_person`).
    """

    def __init__(self, engine: Engine, sources: Mapping[str, SourceConfig],
                 traits: Sequence[Trait], now: datetime) -> None:
        self.engine, self.sources, self.now = engine, sources, now
        self.scans, self.columns = _reads(traits)
        self._rows: dict[str, ir.Table] = {}
        self._cut: dict[str, ir.Table] = {}
        self._requests: dict[str, dict[str, ir.Scalar]] = {}
        self._per_person: dict[str, ir.Table] = {}
        self.work: list[str] = []

    def get(self, entity: str) -> ir.Table:
        """The entity's rows with ``person_id`` (all of its columns, or the ones traits read
        when it was worth a work table)."""
        if entity not in self._rows:
            if not self.engine.exists(entity):
                raise PasserelleError(f"traits need the '{entity}' table, which does not exist",
                                      "run the pipeline so that sources are staged and unified")
            if entity == "order_lines":
                if not self.engine.exists("orders"):
                    raise PasserelleError("traits need the 'orders' table, which does not exist",
                                          "run the pipeline so that sources are staged and "
                                          "unified")
                rows = person_order_lines(self.engine, self.sources, orders=self.get("orders"))
            else:
                build = {"orders": person_orders, "events": person_events}[entity]
                rows = build(self.engine, self.sources)
            if self.scans.get(entity, 0) > 1:
                keep = [c for c in rows.columns if c in self.columns[entity]]
                rows = self._materialise(entity, rows.select(*keep))
            self._rows[entity] = rows
        return self._rows[entity]

    def cut(self, entity: str) -> ir.Table:
        """The entity's rows not after ``now``: what reductions are built on."""
        if entity not in self._cut:
            self._cut[entity] = until(self.get(entity), TIME_COLUMN[entity], self.now)
        return self._cut[entity]

    def request(self, entity: str, reductions: Mapping[str, ir.Scalar]) -> dict[str, str]:
        """Add reductions (built on :meth:`cut`) to the entity's per-person aggregation;
        returns the column each is in."""
        wanted = self._requests.setdefault(entity, {})
        columns = {}
        for part, value in reductions.items():
            columns[part] = f"_r{len(wanted)}"
            wanted[columns[part]] = value
        return columns

    def per_person(self, entity: str) -> ir.Table:
        """Every requested reduction of the entity, one row per person, computed once."""
        if entity not in self._per_person:
            cut = self.cut(entity)
            per = cut.group_by("person_id").aggregate(**self._requests[entity])
            self._per_person[entity] = self._materialise(f"per_{entity}", per)
        return self._per_person[entity]

    def persons(self) -> ir.Table:
        pm = self.engine.table(PERSON_MAP)
        return pm.select("person_id").distinct()

    def _materialise(self, name: str, expr: ir.Table) -> ir.Table:
        table = f"{WORK}{name}"
        self.work.append(table)
        return self.engine.scratch_table(table, expr)

    def close(self) -> None:
        for table in reversed(self.work):
            self.engine.drop(table)
        self.work.clear()


def _reads(traits: Sequence[Trait]) -> tuple[dict[str, int], dict[str, set[str]]]:
    """How many queries read each entity, and which columns they read."""
    scans: dict[str, int] = {}
    columns: dict[str, set[str]] = {}
    merged: set[str] = set()
    models: set[str | None] = set()
    for trait in traits:
        entity = entity_of(trait)
        need = columns.setdefault(entity, {"person_id", TIME_COLUMN[entity]})
        if trait.where:
            need |= referenced_columns(trait.where)
        if isinstance(trait, AggregateTrait):
            if trait.column:
                need.add(trait.column)
            single = trait.function not in MERGEABLE
        else:
            need |= BUILTIN_COLUMNS[trait.builtin]
            single = trait.builtin in ("favourite_channel", "favourite_category")
            if trait.builtin in ("clv", "churn_risk"):  # one fit per filter, shared
                single = trait.where not in models
                models.add(trait.where)
        if single:
            scans[entity] = scans.get(entity, 0) + 1
        elif entity not in merged:
            merged.add(entity)
            scans[entity] = scans.get(entity, 0) + 1
    if "order_lines" in scans:  # lines are attributed through their order
        scans["orders"] = scans.get("orders", 0) + 1
        columns.setdefault("orders", {"person_id", "ordered_at"}).update(ORDER_HEAD)
    return scans, columns


def entity_of(trait: Trait) -> str:
    return trait.entity if isinstance(trait, AggregateTrait) else BUILTIN_ENTITY[trait.builtin]


def _reductions(trait: Trait, inputs: _Inputs, now: datetime) -> dict[str, ir.Scalar] | None:
    """The trait's reductions of its entity's per-person scan (None: it needs a query of
    its own)."""
    if isinstance(trait, AggregateTrait):
        if trait.function not in MERGEABLE:
            return None
        return {"value": reduction(trait, inputs.cut(trait.entity), now)}
    if trait.builtin == "rfm":
        return builtins.rfm_reductions(trait, inputs.cut("orders"), now)
    if trait.builtin == "days_since_last_visit":
        return builtins.days_since_reductions(trait, inputs.cut("events"), now)
    return None


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
    todo = [t for t in trait_list if t.name not in skip]
    inputs = _Inputs(engine, sources, todo, now)
    try:
        return _compute(engine, trait_list, origin, skip, previous, prints, inputs, summary,
                        reporter, now, run_id)
    finally:
        inputs.close()


def _compute(engine: Engine, trait_list: list[Trait], origin: Mapping[str, tuple],
             skip: set[str], previous: dict[str, dict], prints: Mapping[str, str | None],
             inputs: _Inputs, summary: TraitsSummary, reporter: Reporter, now: datetime,
             run_id: str) -> TraitsSummary:
    # every reduction is requested before the first per-person scan runs, so there is one
    plans: dict[str, dict[str, str] | PasserelleError | None] = {}
    for trait in trait_list:
        if trait.name in skip:
            continue
        try:
            parts = _reductions(trait, inputs, now)
            plans[trait.name] = (None if parts is None
                                 else inputs.request(entity_of(trait), parts))
        except PasserelleError as exc:
            plans[trait.name] = exc
    models: dict[str | None, builtins.ClvModel] = {}
    definitions: list[dict] = []
    run, had = store.start_next(engine)
    with reporter.step("traits", total=len(trait_list)) as progress:
        for trait in trait_list:
            if trait.name in skip:  # unchanged inputs: carry values and definition row over
                store.keep_previous(engine, builtins.outputs(trait))
                file, line = origin.get(trait.name, (None, None))
                definitions.append({**previous[trait.name], "file": file, "line": line})
                progress.advance(1)
                continue
            status, message, fit_info = "ok", None, None
            try:
                plan = plans[trait.name]
                if isinstance(plan, PasserelleError):
                    raise plan
                rows, fit_info = _rows(engine, trait, inputs, models, now, plan)
                store.insert_values(engine, rows, now, run, tracked=trait.history,
                                    compare=bool(had.intersection(builtins.outputs(trait))))
                if fit_info is not None:
                    summary.fits[trait.name] = fit_info
            except PasserelleError as exc:
                status, message = "failed", exc.reason
                summary.failed[trait.name] = exc.reason
                store.keep_previous(engine, builtins.outputs(trait))
                reporter.warning(f"trait {trait.name}: {exc.reason}")
            file, line = origin.get(trait.name, (None, None))
            definitions.append(_definition_row(trait, file, line, fit_info, status, message,
                                               now, run_id))
            progress.advance(1)
    done = [t for t in trait_list if t.name not in summary.failed and t.name not in skip]
    tracked = [o for t in done if t.history for o in builtins.outputs(t)]
    summary.history_rows = store.publish(engine, tracked, now, run, run_id)
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
          models: dict[str | None, builtins.ClvModel], now: datetime,
          columns: dict[str, str] | None) -> tuple[ir.Table, dict[str, Fit | None] | None]:
    if columns is not None:  # reductions: read from the entity's per-person scan
        per = inputs.per_person(entity_of(trait))
        if isinstance(trait, AggregateTrait):
            return from_reduction(trait, per, columns["value"], inputs.persons()), None
        if trait.builtin == "rfm":
            return builtins.rfm(trait, per, columns, now), None
        return builtins.days_since_last_visit(trait, per, columns, now), None
    if isinstance(trait, AggregateTrait):
        return aggregate_trait(trait, inputs.get(trait.entity), now), None
    rows = inputs.get(BUILTIN_ENTITY[trait.builtin])
    if trait.builtin in ("favourite_channel", "favourite_category"):
        return builtins.favourite(trait, rows, now), None
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
        "outputs": ",".join(builtins.outputs(trait)),
        "definition": trait.model_dump(mode="json", exclude_none=True),
        "file": file, "line": line, "model_fit": fit_json, "status": status,
        "message": message, "persons": 0, "computed_at": now, "run_id": run_id,
    }
