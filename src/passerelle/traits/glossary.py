"""Traits as glossary entries: definition, owner, lineage, where they are used, last
computation.

Lineage is derived from each trait's definition and the project's sources: the entity a
trait aggregates is a view over the staged tables of its sources, so the columns are
``stg_<source>.<column>`` for every source of that entity (and the filter's columns).
A trait is used by the segments whose conditions name it or one of its parts (``rfm`` for
``rfm_monetary``).
"""

from __future__ import annotations

from typing import Any

from passerelle.engines.base import Engine
from passerelle.metrics.expr import parse_expression, references
from passerelle.project.traits_models import AggregateTrait, TraitDefinitions, outputs
from passerelle.traits.definitions import BUILTIN_DEFINITIONS, builtin_definition

# What each built-in reads: (entity, column) pairs.
BUILTIN_INPUTS: dict[str, list[tuple[str, str]]] = {
    "rfm": [("orders", "ordered_at"), ("orders", "amount")],
    "clv": [("orders", "ordered_at"), ("orders", "amount")],
    "churn_risk": [("orders", "ordered_at")],
    "days_since_last_visit": [("events", "timestamp")],
    "favourite_category": [("order_lines", "category")],
    "favourite_channel": [("orders", "channel")],
}


def _inputs(trait: Any) -> list[tuple[str, str]]:
    if not isinstance(trait, AggregateTrait):
        return BUILTIN_INPUTS.get(trait.builtin, [])
    columns = [trait.column] if trait.column else []
    if trait.where:
        columns += sorted(references(parse_expression(trait.where)))
    time_column = {"orders": "ordered_at", "events": "timestamp"}.get(trait.entity)
    if trait.window_days and time_column:
        columns.append(time_column)
    return [(trait.entity, c) for c in dict.fromkeys(columns)]


def segments_using(segments: Any) -> dict[str, set[str]]:
    """Trait output -> the segments whose conditions name it (``segments``: the project's
    SegmentDefinitions, or None)."""
    from passerelle.project.segments_models import TraitCondition
    from passerelle.segments.validate import walk

    using: dict[str, set[str]] = {}
    for name, segment in (getattr(segments, "segments", None) or {}).items():
        for condition, _ in walk(segment.where):
            if isinstance(condition, TraitCondition):
                using.setdefault(condition.trait, set()).add(name)
    return using


def trait_entries(traits: TraitDefinitions, engine: Engine | None,
                  sources: dict[str, Any], segments: Any = None,
                  lang: str = "en") -> list[dict[str, Any]]:
    """Glossary entries of the traits. A built-in trait's ``definition`` is its standard text
    in ``lang`` (``definitions`` has every language); the project's own words stay in
    ``description``. Other traits are defined by their description, as written."""
    from passerelle.model import ENTITY_VIEWS
    from passerelle.traits.store import TRAIT_DEFINITIONS

    computed: dict[str, dict] = {}
    if engine is not None and engine.exists(TRAIT_DEFINITIONS):
        table = engine.table(TRAIT_DEFINITIONS)
        computed = {r["name"]: r for r in engine.to_arrow(
            table.select("name", "computed_at", "persons", "status")).to_pylist()}
    views = {view: entity for entity, view in ENTITY_VIEWS.items()}
    using = segments_using(segments)
    entries = []
    for trait in traits.traits:
        file, line = traits.origin.get(trait.name, (None, None))
        lineage = []
        for entity_view, column in _inputs(trait):
            entity = views.get(entity_view, entity_view)
            lineage += [f"stg_{s.name}.{column}" for s in sources.values()
                        if s.entity == entity]
        last = computed.get(trait.name, {})
        used_by = set().union(*(using.get(o, set()) for o in outputs(trait)))
        builtin = getattr(trait, "builtin", None)
        definitions = BUILTIN_DEFINITIONS.get(builtin) if builtin else None
        entries.append({
            "name": trait.name, "kind": "trait",
            "definition": builtin_definition(builtin, lang) if definitions
            else trait.description,
            "description": trait.description, "definitions": definitions,
            "owner": trait.owner, "status": last.get("status") or "not computed yet",
            "type": trait.type, "file": file, "line": line, "lineage": sorted(lineage),
            "used_by": [f"segment {n}" for n in sorted(used_by)],
            "last_computed_at": last.get("computed_at"), "persons": last.get("persons"),
        })
    return entries
