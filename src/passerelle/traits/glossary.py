"""Traits as glossary entries: definition, owner, lineage, where they are used, last
computation.

Lineage is derived from each trait's definition and the project's sources: the entity a
trait aggregates is a view over the staged tables of its sources, so the columns are
``stg_<source>.<column>`` for every source of that entity (and the filter's columns).
A trait is used by the segments whose conditions name it or one of its parts (``rfm`` for
``rfm_monetary``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from passerelle.project.traits_models import AggregateTrait, TraitDefinitions, outputs
from passerelle.tables import TRAIT_DEFINITIONS_TABLE
from passerelle.traits.definitions import BUILTIN_DEFINITIONS, builtin_definition

if TYPE_CHECKING:
    from passerelle.engines.base import Engine

# What each built-in reads: (entity, column) pairs.
BUILTIN_INPUTS: dict[str, list[tuple[str, str]]] = {
    "rfm": [("orders", "ordered_at"), ("orders", "amount")],
    "clv": [("orders", "ordered_at"), ("orders", "amount")],
    "churn_risk": [("orders", "ordered_at")],
    "days_since_last_visit": [("events", "timestamp")],
    "favourite_category": [("order_lines", "category")],
    "favourite_channel": [("orders", "channel")],
}


def _inputs(trait: Any, verdicts: Any) -> list[tuple[str, str]]:
    if not isinstance(trait, AggregateTrait):
        return BUILTIN_INPUTS.get(trait.builtin, [])
    columns = [trait.column] if trait.column else []
    if trait.where:
        columns += sorted(_references(trait.where, verdicts))
    time_column = {"orders": "ordered_at", "events": "timestamp"}.get(trait.entity)
    if trait.window_days and time_column:
        columns.append(time_column)
    return [(trait.entity, c) for c in dict.fromkeys(columns)]


def _references(text: str, verdicts: Any) -> list[str]:
    """The columns a filter reads: the verdict kept by the project's load (the parse
    imports sqlglot), parsed again when there is none or it did not parse (raising why)."""
    from passerelle.metrics.load import parsed

    names, error = parsed(text, verdicts)
    if error is None:
        return names
    from passerelle.metrics.expr import parse_expression, references

    return references(parse_expression(text))


def computed_traits(project: Any) -> dict[str, dict]:
    """Each trait's last computation (``computed_at``, ``persons``, ``status``) in a
    :class:`~passerelle.core.Project`'s warehouse, by name."""
    if not project.has_table(TRAIT_DEFINITIONS_TABLE):
        return {}
    rows = project.rows("trait_definitions", lambda _slots: project.engine.table(
        TRAIT_DEFINITIONS_TABLE).select("name", "computed_at", "persons", "status"))
    return {r["name"]: r for r in rows}


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
                  lang: str = "en", computed: dict[str, dict] | None = None,
                  root: Path | None = None) -> list[dict[str, Any]]:
    """Glossary entries of the traits. A built-in trait's ``definition`` is its standard text
    in ``lang`` (``definitions`` has every language); the project's own words stay in
    ``description``. Other traits are defined by their description, as written.
    ``computed``: :func:`computed_traits` (else read through ``engine``, when given);
    ``root``: the project folder, whose load kept its filters' verdicts."""
    from passerelle.model import ENTITY_VIEWS
    from passerelle.verdicts import Verdicts, no_verdicts

    if computed is None:
        computed = {}
        if engine is not None and engine.exists(TRAIT_DEFINITIONS_TABLE):
            table = engine.table(TRAIT_DEFINITIONS_TABLE)
            computed = {r["name"]: r for r in engine.to_arrow(
                table.select("name", "computed_at", "persons", "status")).to_pylist()}
    verdicts = Verdicts(root) if root is not None else no_verdicts()
    views = {view: entity for entity, view in ENTITY_VIEWS.items()}
    using = segments_using(segments)
    entries = []
    for trait in traits.traits:
        file, line = traits.origin.get(trait.name, (None, None))
        lineage = []
        for entity_view, column in _inputs(trait, verdicts):
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
    verdicts.save()
    return entries
