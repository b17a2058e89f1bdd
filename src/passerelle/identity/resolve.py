"""The identity step of `passerelle run`: keys, Splink, graph, stable ids, golden records."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from passerelle.engines.base import Engine
from passerelle.identity.deterministic import deterministic_edges
from passerelle.identity.golden import build_profiles
from passerelle.identity.graph import GraphResult, resolve_graph
from passerelle.identity.tables import CUSTOMER_RECORDS
from passerelle.project.identity_models import IdentityConfig
from passerelle.project.load import ProjectDefinition
from passerelle.reporter import Reporter


@dataclass
class IdentityResult:
    records: int
    persons: int
    key_edges: int
    splink_edges: int
    shared_keys: int
    splink: dict[str, Any] = field(default_factory=dict)  # model info and pre-pass counts
    graph: GraphResult | None = None
    mode: str = "full"  # 'full' | 'incremental'
    mode_reason: str = ""  # why this path: shown in the run report
    new_records: int = 0  # incremental: records matched this run
    touched_records: int = 0  # incremental: old records whose components were recomputed

    @property
    def summary(self) -> str:
        """One line for the run report."""
        if self.mode == "incremental":
            return (f"incremental: {self.mode_reason}; {self.touched_records:,} earlier "
                    f"record(s) re-examined; {self.persons:,} persons")
        return f"full: {self.mode_reason}; {self.persons:,} persons"


def inputs_fingerprint(project: ProjectDefinition, engine: Engine) -> str:
    """What the identity step depends on: its rules, pins, model and code
    (:func:`incremental.rules_fingerprint`), and the staged customer sources."""
    from passerelle import state
    from passerelle.identity.incremental import rules_fingerprint

    parts = [rules_fingerprint(project, engine)]
    for source in sorted(s.name for s in project.sources.values() if s.entity == "customers"):
        parts += [source, state.raw_state(engine, source), project.sources[source]
                  .model_dump_json()]
    return state.fingerprint(*parts)


def resolve_identity(project: ProjectDefinition, engine: Engine, reporter: Reporter,
                     run_id: str, retrain: bool = False, full: bool = False) -> IdentityResult:
    """Resolve every customer record to a person and rebuild the golden records.

    When only new records arrived since the last run (see :mod:`incremental`), they alone
    are matched and the graph is updated around them; otherwise, or with ``full``, the
    whole graph is rebuilt. ``IdentityResult.mode`` and ``mode_reason`` say which, and why.
    """
    from passerelle.identity import incremental

    with reporter.step("Identity: what changed"):
        plan = incremental.plan(project, engine, full=full, retrain=retrain)
    incremental.forget(engine, run_id)
    if plan.incremental:
        reporter.info(f"Identity: incremental run ({plan.reason})")
        try:
            outcome = incremental.resolve_new(project, engine, reporter, run_id)
        except incremental.Fallback as why:
            plan = incremental.Plan(False, f"the incremental path gave up: {why}")
        else:
            incremental.remember(project, engine, run_id)
            _name_index(engine, reporter)
            return IdentityResult(
                records=engine.count(CUSTOMER_RECORDS), persons=outcome.persons,
                key_edges=outcome.key_edges, splink_edges=outcome.splink_edges,
                shared_keys=outcome.shared_keys, splink=outcome.splink, graph=outcome.graph,
                mode="incremental", mode_reason=plan.reason, new_records=plan.new_records,
                touched_records=outcome.touched_records)
    reporter.info(f"Identity: full run ({plan.reason})")
    result = _resolve_all(project, engine, reporter, run_id, retrain)
    result.mode_reason = plan.reason
    incremental.remember(project, engine, run_id)
    _name_index(engine, reporter)
    return result


def _name_index(engine: Engine, reporter: Reporter) -> None:
    """The name search's index follows the records (only new or renamed ones are folded)."""
    from passerelle.identity.name_index import refresh_name_words

    with reporter.step("Identity: name search index"):
        refresh_name_words(engine)


def _resolve_all(project: ProjectDefinition, engine: Engine, reporter: Reporter,
                 run_id: str, retrain: bool) -> IdentityResult:
    from passerelle.identity.probabilistic import NEW_TABLE, match

    engine.drop(NEW_TABLE)  # left by an incremental attempt that gave up
    config = project.identity or IdentityConfig()
    records = engine.table(CUSTOMER_RECORDS)
    with reporter.step("Identity: deterministic keys"):
        key_edges, shared = deterministic_edges(engine, records, config.keys, run_id)
    edges = [key_edges]
    splink: dict[str, Any] = {}
    splink_edges = 0
    if config.probabilistic.enabled:
        with reporter.step("Identity: probabilistic matching (Splink)"):
            outcome = match(engine, records, config.probabilistic, project.root, run_id,
                            reporter, retrain=retrain, keep=True)
        edges.append(outcome.edges)
        splink_edges = outcome.edge_count
        splink = {"records": outcome.records, "records_scored": outcome.representatives,
                  "blocking_rules": [list(r) for r in outcome.blocking_rules],
                  "blocking_auto": config.probabilistic.blocking == "auto"}
        if outcome.model is not None:
            splink.update(trained=outcome.model.trained, model=str(outcome.model.path))
    graph = resolve_graph(engine, edges, run_id=run_id,
                          max_cluster_size=config.graph.max_cluster_size,
                          yml_pins=config.pins, records=records, reporter=reporter)
    with reporter.step("Identity: golden records"):
        persons = build_profiles(engine, config.survivorship, run_id)
    return IdentityResult(
        records=engine.count(CUSTOMER_RECORDS), persons=persons,
        key_edges=int(key_edges.count().to_pyarrow().as_py()),
        splink_edges=splink_edges, shared_keys=int(shared.count().to_pyarrow().as_py()),
        splink=splink, graph=graph,
    )
