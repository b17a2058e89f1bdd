"""What staging produces for the later steps: its fingerprint per source, and one view per
entity over the staged tables of its sources."""

from __future__ import annotations

from passerelle.engines.base import Engine
from passerelle.model import ENTITIES, ENTITY_VIEWS
from passerelle.project.load import ProjectDefinition
from passerelle.project.models import SourceConfig


def stage_fingerprint(project: ProjectDefinition, engine: Engine, source: SourceConfig) -> str:
    """What staging a source depends on: its definition, the project's time zone and phone
    region, and its committed loads. Unchanged, the staged table is current."""
    from passerelle import state

    return state.fingerprint(source.model_dump_json(), project.config.timezone,
                             project.config.default_region, state.raw_state(engine, source.name))


def unify_entities(project: ProjectDefinition, engine: Engine) -> list[str]:
    """(Re)create one view per entity over the staged tables of its sources."""
    made = []
    for entity, view in ENTITY_VIEWS.items():
        tables = [f"stg_{s.name}" for s in project.sources.values()
                  if s.entity == entity and engine.exists(f"stg_{s.name}")]
        if not tables:
            continue
        columns = ["_source", "_record_id", *ENTITIES[entity].field_names, "_issues",
                   "_load_id", "_loaded_at", "_source_file", "_source_row"]
        parts = [engine.table(t).select(columns) for t in tables]
        expr = parts[0].union(*parts[1:], distinct=False) if len(parts) > 1 else parts[0]
        engine.con.create_view(view, expr, overwrite=True)
        made.append(view)
    return made
