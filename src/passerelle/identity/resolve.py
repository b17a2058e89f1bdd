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



def inputs_fingerprint(project: ProjectDefinition, engine: Engine) -> str:
    """What the identity step depends on: its rules, the staged customer sources, the pins
    made from the CLI or API, and the saved model."""
    from passerelle import state
    from passerelle.identity.tables import IDENTITY_PINS

    config = project.identity or IdentityConfig()
    parts = [config.model_dump_json()]
    for source in sorted(s.name for s in project.sources.values() if s.entity == "customers"):
        parts += [source, state.raw_state(engine, source), project.sources[source]
                  .model_dump_json()]
    if engine.exists(IDENTITY_PINS):
        pins = engine.table(IDENTITY_PINS)
        parts.append(str(engine.to_arrow(pins.aggregate(
            n=pins.count(), active=pins.active.ifelse(1, 0).sum(),
            last=pins.created_at.max())).to_pylist()))
    model = project.root / config.probabilistic.model_path
    if config.probabilistic.enabled and model.is_file():
        parts.append(state.fingerprint(model.read_text(encoding="utf-8")))
    return state.fingerprint(*parts)


def resolve_identity(project: ProjectDefinition, engine: Engine, reporter: Reporter,
                     run_id: str, retrain: bool = False) -> IdentityResult:
    """Resolve every customer record to a person and rebuild the golden records."""
    from passerelle.identity.probabilistic import match

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
                            reporter, retrain=retrain)
        edges.append(outcome.edges)
        splink_edges = outcome.edge_count
        splink = {"records": outcome.records, "records_scored": outcome.representatives}
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
