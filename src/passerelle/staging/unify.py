"""What staging produces for the later steps: its fingerprint per source, and one view per
entity over the staged tables of its sources."""

from __future__ import annotations

import ibis

from passerelle.engines.base import Engine
from passerelle.model import ENTITIES, ENTITY_VIEWS, EXTRA_PREFIX
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
        extra = sorted({EXTRA_PREFIX + n for s in project.sources.values()
                        if s.entity == entity for n in s.extra_fields})
        columns = ["_source", "_record_id", *ENTITIES[entity].field_names, "_issues",
                   "_load_id", "_loaded_at", "_source_file", "_source_row"]
        parts = []
        for name in tables:  # an extra field a source does not map is NULL in its rows
            table = engine.table(name)
            parts.append(table.select(*columns, **{
                x: table[x] if x in table.columns else ibis.null("string") for x in extra}))
        expr = parts[0].union(*parts[1:], distinct=False) if len(parts) > 1 else parts[0]
        engine.con.create_view(view, expr, overwrite=True)
        made.append(view)
    return made
