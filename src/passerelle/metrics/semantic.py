"""The loaded semantic layer and how names are resolved in it.

A query or a filter names dimensions the way MetricFlow does: ``channel`` (a dimension of
the metric's own semantic model, or of one joinable model if only one has it),
``customer__country`` (the ``country`` dimension of the model whose primary entity is
``customer``), ``metric_time`` / ``metric_time__month`` (the measure's aggregation time at a
grain), ``ordered_at__week`` (a time dimension at a grain) or an entity name (its key).

Models join along entities: a model that has entity ``customer`` (usually ``foreign``)
reaches the model where ``customer`` is ``primary``, and from there the models that one
reaches, breadth first; the shortest path wins and a tie is an ambiguity to qualify.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

from passerelle.errors import PasserelleError
from passerelle.project.load import Located
from passerelle.project.metrics_models import (
    GRAINS,
    DimensionDef,
    MeasureDef,
    MetricDef,
    SemanticModelDef,
)

METRIC_TIME = "metric_time"


class MetricsQueryError(PasserelleError, ValueError):
    """A metric query names something that does not exist or cannot be computed."""


@dataclass(frozen=True)
class Hop:
    entity: str  # the entity joined on
    model: str  # the semantic model reached


@dataclass(frozen=True)
class Resolved:
    """What a reference means from one semantic model."""

    ref: str
    kind: str  # "dimension", "time", "metric_time", "entity"
    path: tuple[Hop, ...]  # joins from the metric's model; () = its own columns
    model: str  # semantic model that holds the column
    expr: str  # column expression in that model
    grain: str | None = None  # truncation for time references


@dataclass
class ProjectMetrics:
    """Every semantic model and metric of a project, with where each was defined."""

    semantic_models: dict[str, SemanticModelDef] = field(default_factory=dict)
    metrics: dict[str, MetricDef] = field(default_factory=dict)
    located: dict[tuple[str, str], Located] = field(default_factory=dict)

    # -- lookups ------------------------------------------------------------------------
    def measure(self, name: str) -> tuple[SemanticModelDef, MeasureDef] | None:
        for sm in self.semantic_models.values():
            m = sm.measure(name)
            if m is not None:
                return sm, m
        return None

    def where(self, kind: str, name: str) -> tuple[str | None, int | None]:
        at = self.located.get((kind, name))
        return (at.doc.file, at.line()) if at else (None, None)

    def resolve_metric(self, name: str) -> MetricDef:
        """A metric by name or synonym (case-insensitive), else a helpful error."""
        if name in self.metrics:
            return self.metrics[name]
        folded = name.strip().casefold()
        for metric in self.metrics.values():
            if folded == metric.name.casefold() or folded in (
                    s.casefold() for s in metric.synonyms):
                return metric
        close = difflib.get_close_matches(name, list(self.metrics), n=1)
        raise MetricsQueryError(
            f"no metric named '{name}'",
            f"did you mean '{close[0]}'?" if close else
            f"metrics: {', '.join(sorted(self.metrics)) or 'none (add metrics/*.yml)'}")

    def dependencies(self, metric: MetricDef) -> list[str]:
        """Metrics a ratio or derived metric is computed from (direct inputs only)."""
        p = metric.type_params
        if metric.type == "ratio":
            return [i.name for i in (p.numerator_input, p.denominator_input) if i]
        if metric.type == "derived":
            return [i.name for i in p.metric_inputs]
        return []

    def used_by(self, name: str) -> list[str]:
        return sorted(m.name for m in self.metrics.values() if name in self.dependencies(m))

    def measures_of(self, metric: MetricDef, _seen: frozenset[str] = frozenset()) -> list[str]:
        """Every measure a metric ends up aggregating."""
        if metric.name in _seen:
            return []
        if metric.type in ("simple", "cumulative"):
            mi = metric.type_params.measure_input
            return [mi.name] if mi else []
        out: list[str] = []
        for dep in self.dependencies(metric):
            if dep in self.metrics:
                for m in self.measures_of(self.metrics[dep], _seen | {metric.name}):
                    if m not in out:
                        out.append(m)
        return out

    # -- joins and references ------------------------------------------------------------
    def reachable(self, start: str) -> dict[str, tuple[Hop, ...]]:
        """Semantic models reachable from ``start`` through entities, with the shortest path."""
        paths: dict[str, tuple[Hop, ...]] = {start: ()}
        frontier = [start]
        while frontier:
            nxt: list[str] = []
            for name in frontier:
                for entity in self.semantic_models[name].entities:
                    for other in self.semantic_models.values():
                        pe = other.primary_entity
                        if other.name in paths or pe is None or pe.name != entity.name:
                            continue
                        paths[other.name] = (*paths[name], Hop(entity.name, other.name))
                        nxt.append(other.name)
            frontier = nxt
        return paths

    def resolve(self, start: str, ref: str, time_dimension: str | None = None,
                default_grain: str | None = None) -> Resolved:
        """Resolve a dimension reference from the semantic model ``start``."""
        parts = ref.split("__")
        grain = None
        if len(parts) > 1 and parts[-1] in GRAINS:
            grain, parts = parts[-1], parts[:-1]
        if len(parts) > 2 or not all(parts):
            raise MetricsQueryError(f"'{ref}' is not a dimension reference",
                                    "write dimension, entity__dimension or metric_time__month")
        sm = self.semantic_models[start]
        if parts == [METRIC_TIME]:
            dim = sm.dimension(time_dimension or "") if time_dimension else None
            if dim is None:
                raise MetricsQueryError(
                    f"semantic model '{start}' has no aggregation time dimension for metric_time",
                    "set defaults.agg_time_dimension in the semantic model")
            return Resolved(ref, "metric_time", (), start, dim.column_expr,
                            grain or default_grain or "day")
        paths = self.reachable(start)
        if len(parts) == 2:
            entity, name = parts
            owners = [m for m in paths if (pe := self.semantic_models[m].primary_entity)
                      and pe.name == entity]
            if not owners:
                raise self._unreachable(start, ref, f"no model reachable from '{start}' has "
                                        f"'{entity}' as primary entity")
            return self._in_model(ref, owners[0], name, paths[owners[0]], grain, start)
        name = parts[0]
        if sm.entity(name) is not None and sm.dimension(name) is None:
            return Resolved(ref, "entity", (), start, sm.entity(name).column_expr)  # type: ignore[union-attr]
        holders = [m for m in paths if self.semantic_models[m].dimension(name) is not None]
        if not holders:
            raise self._unreachable(start, ref, f"no dimension '{name}' in '{start}' or in a "
                                    "model it joins to")
        best = min(len(paths[m]) for m in holders)
        nearest = [m for m in holders if len(paths[m]) == best]
        if len(nearest) > 1:
            options = [f"{self.semantic_models[m].primary_entity.name}__{name}"  # type: ignore[union-attr]
                       for m in nearest]
            raise MetricsQueryError(f"'{ref}' is ambiguous from '{start}'",
                                    f"write one of {', '.join(options)}")
        return self._in_model(ref, nearest[0], name, paths[nearest[0]], grain, start)

    def _in_model(self, ref: str, model: str, name: str, path: tuple[Hop, ...],
                  grain: str | None, start: str) -> Resolved:
        sm = self.semantic_models[model]
        dim: DimensionDef | None = sm.dimension(name)
        if dim is None:
            entity = sm.entity(name)
            if entity is not None:
                return Resolved(ref, "entity", path, model, entity.column_expr)
            raise self._unreachable(start, ref, f"'{model}' has no dimension '{name}'")
        if dim.type == "time":
            return Resolved(ref, "time", path, model, dim.column_expr, grain)
        if grain:
            raise MetricsQueryError(f"'{name}' is categorical: it takes no grain ('{ref}')",
                                    f"write '{name}'")
        return Resolved(ref, "dimension", path, model, dim.column_expr)

    def _unreachable(self, start: str, ref: str, why: str) -> MetricsQueryError:
        names: set[str] = set()
        for m, p in self.reachable(start).items():
            pe = self.semantic_models[m].primary_entity
            prefix = f"{pe.name}__" if p and pe else ""
            names.update(prefix + d.name for d in self.semantic_models[m].dimensions)
        known = {d.name for m in self.semantic_models.values() for d in m.dimensions}
        quote = ("" if ref.split("__")[-1] in known else
                 f"if '{ref}' is a value, not a dimension, put it in quotes: = '{ref}'; ")
        return MetricsQueryError(
            f"dimension '{ref}' cannot be reached from semantic model '{start}': {why}",
            f"{quote}dimensions reachable from '{start}': "
            f"{', '.join([METRIC_TIME, *sorted(names)])}; "
            "to reach another model, give both the same entity (foreign here, primary there)")
