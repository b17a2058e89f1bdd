"""Read ``metrics/*.yml`` and check them together, with the file and line of every problem.

The pydantic models catch shapes and unknown keys; this module checks what needs every
file at once: names used twice, measures and metrics that do not exist, cycles between
derived metrics, expressions outside the safe subset or naming unknown columns, filters on
dimensions the metric's semantic model cannot join to.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from passerelle.errors import Problems
from passerelle.metrics.semantic import METRIC_TIME, MetricsQueryError, ProjectMetrics
from passerelle.model import ENTITIES
from passerelle.project.load import LINEAGE_COLUMNS, Located, parse_document, read_documents
from passerelle.project.metrics_models import (
    MetricDef,
    MetricsFile,
    MetricTypeParams,
    SemanticModelDef,
)
from passerelle.verdicts import no_verdicts

CUMULATIVE_AGGS = ("sum", "count", "min", "max", "sum_boolean")


def _view_columns() -> dict[str, list[str]]:
    """Columns of the views the pipeline builds, so column names can be checked offline."""
    from passerelle.model import ENTITY_VIEWS

    return {view: [*ENTITIES[entity].field_names, *LINEAGE_COLUMNS]
            for entity, view in ENTITY_VIEWS.items()}


def load_metrics(root: Path | str) -> ProjectMetrics:
    """Parse and check every ``metrics/*.yml`` of a project; raises ProjectError."""
    problems = Problems()
    metrics = read_metrics(Path(root), problems)
    problems.raise_if_any()
    return metrics


def read_metrics(root: Path, problems: Problems, verdicts: Any = None) -> ProjectMetrics:
    """Like :func:`load_metrics` but adds problems to ``problems`` (for ``validate``);
    ``verdicts`` (a :class:`passerelle.verdicts.Verdicts`) keeps the expressions' checks."""
    root = Path(root).resolve()
    verdicts = verdicts if verdicts is not None else no_verdicts()
    pm = ProjectMetrics()
    for doc in read_documents(root, "metrics/*", problems,
                              expected="expected semantic_models: and metrics: at the top level"):
        parsed: MetricsFile | None = parse_document(MetricsFile, doc, problems)
        if parsed is None:
            continue
        for kind, key, items, into in (
                ("semantic_model", "semantic_models", parsed.semantic_models, pm.semantic_models),
                ("metric", "metrics", parsed.metrics, pm.metrics)):
            for i, item in enumerate(items):
                at = Located(doc, (key, i))
                if item.name in into:
                    _twice(problems, pm, at, kind, item.name)
                    continue
                into[item.name] = item
                pm.located[(kind, item.name)] = at
    _check_semantic_models(pm, problems, verdicts)
    _add_measure_metrics(pm)
    _check_metrics(pm, problems, verdicts)
    return pm


def _twice(problems: Problems, pm: ProjectMetrics, at: Located, kind: str, name: str) -> None:
    file, line = pm.where(kind, name)
    problems.add(at.doc.file, f"{kind.replace('_', ' ')} name '{name}' is used twice",
                 at.line("name"), f"first defined in {file}:{line}")


def _hint(word: str, options: list[str]) -> str | None:
    close = difflib.get_close_matches(word, options, n=1)
    return f"did you mean '{close[0]}'?" if close else None


def parsed(text: str, verdicts: Any) -> tuple[list[str], tuple[str, str | None] | None]:
    """The names an expression reads, or why it is outside the safe subset (reason,
    instruction): its verdict kept in ``verdicts`` (the parse imports sqlglot)."""

    def check() -> dict[str, Any]:
        from passerelle.metrics.expr import UnsafeExpression, parse_expression, references

        try:
            return {"references": references(parse_expression(text))}
        except UnsafeExpression as exc:
            return {"error": [exc.reason, exc.instruction]}

    verdict = verdicts.of("expression", text, None, check)
    error = verdict.get("error")
    return verdict.get("references", []), (error[0], error[1]) if error else None


def _check_expr(text: str, columns: list[str] | None, at: Located, loc: tuple[str | int, ...],
                problems: Problems, what: str, verdicts: Any) -> None:
    names, error = parsed(text, verdicts)
    if error is not None:
        problems.add(at.doc.file, f"{what}: {error[0]}", at.line(*loc), error[1])
        return
    if columns is None:
        return
    for name in names:
        if name not in columns:
            problems.add(at.doc.file, f"{what}: '{name}' is not a column of the model",
                         at.line(*loc), _hint(name, columns))


def _check_semantic_models(pm: ProjectMetrics, problems: Problems, verdicts: Any) -> None:
    views = _view_columns()
    measures: dict[str, str] = {}
    for sm in pm.semantic_models.values():
        at = pm.located[("semantic_model", sm.name)]
        columns = views.get(sm.model)  # None: a table we cannot know offline
        primaries = [e.name for e in sm.entities if e.type != "foreign"]
        if len(primaries) > 1:
            problems.add(at.doc.file, f"semantic model '{sm.name}' has {len(primaries)} "
                         "primary entities", at.line("entities"), "keep one; others are foreign")
        dims = {d.name: d for d in sm.dimensions}
        seen: set[str] = set()
        for kind, items in (("entities", sm.entities), ("dimensions", sm.dimensions),
                            ("measures", sm.measures)):
            for i, item in enumerate(items):
                if kind != "entities" and item.name in seen:
                    problems.add(at.doc.file, f"'{item.name}' is defined twice in '{sm.name}'",
                                 at.line(kind, i, "name"))
                seen.add(item.name)
                loc = (kind, i, "expr") if item.expr else (kind, i, "name")
                _check_expr(item.column_expr, columns, at, loc, problems,
                            f"{kind[:-1].replace('entitie', 'entity')} '{item.name}'",
                            verdicts)
        for i, m in enumerate(sm.measures):
            if m.name in measures:
                problems.add(at.doc.file, f"measure '{m.name}' is already defined in semantic "
                             f"model '{measures[m.name]}'", at.line("measures", i, "name"),
                             "measure names are unique across the project")
            measures.setdefault(m.name, sm.name)
        times = [d for d, v in dims.items() if v.type == "time"]
        checks = [(sm.defaults.agg_time_dimension, ("defaults", "agg_time_dimension"))]
        checks += [(m.agg_time_dimension, ("measures", i, "agg_time_dimension"))
                   for i, m in enumerate(sm.measures)]
        for time_dim, loc in checks:
            if time_dim is not None and (time_dim not in dims or dims[time_dim].type != "time"):
                problems.add(at.doc.file, f"'{time_dim}' is not a time dimension of "
                             f"'{sm.name}'", at.line(*loc),
                             _hint(time_dim, times) or f"time dimensions: {', '.join(times)}")


def _add_measure_metrics(pm: ProjectMetrics) -> None:
    """``create_metric: true`` on a measure exposes it as a simple metric of the same name."""
    for sm in pm.semantic_models.values():
        for i, m in enumerate(sm.measures):
            if m.create_metric and m.name not in pm.metrics:
                pm.metrics[m.name] = MetricDef(
                    name=m.name, type="simple", description=m.description, label=m.label,
                    type_params=MetricTypeParams(measure=m.name))
                at = pm.located[("semantic_model", sm.name)]
                pm.located[("metric", m.name)] = Located(at.doc, (*at.prefix, "measures", i))


def _check_metrics(pm: ProjectMetrics, problems: Problems, verdicts: Any) -> None:
    all_measures = [m.name for sm in pm.semantic_models.values() for m in sm.measures]
    broken: set[str] = set()
    for metric in pm.metrics.values():
        at = pm.located[("metric", metric.name)]
        p = metric.type_params
        if metric.type in ("simple", "cumulative"):
            mi = p.measure_input
            assert mi is not None  # the model requires it
            found = pm.measure(mi.name)
            if found is None:
                problems.add(at.doc.file, f"metric '{metric.name}': unknown measure '{mi.name}'",
                             at.line("type_params", "measure"),
                             _hint(mi.name, all_measures)
                             or f"measures: {', '.join(all_measures) or 'none'}")
                broken.add(metric.name)
            elif metric.type == "cumulative" and found[1].agg not in CUMULATIVE_AGGS:
                problems.add(at.doc.file, f"cumulative metric '{metric.name}': a running "
                             f"{found[1].agg} cannot be built from per-period values",
                             at.line("type_params", "measure"),
                             f"use a measure with agg {', '.join(CUMULATIVE_AGGS)}")
        for dep, loc in _inputs(metric):
            if dep not in pm.metrics:
                problems.add(at.doc.file, f"metric '{metric.name}': unknown metric '{dep}'",
                             at.line("type_params", *loc), _hint(dep, list(pm.metrics)))
                broken.add(metric.name)
        if metric.type == "derived" and p.expr:
            _check_expr(p.expr, [i.ref for i in p.metric_inputs], at, ("type_params", "expr"),
                        problems, f"metric '{metric.name}' expr", verdicts)
    cyclic = _check_cycles(pm, problems)
    for metric in pm.metrics.values():
        if metric.name not in broken and metric.name not in cyclic:
            _check_filters(pm, metric, problems, verdicts)


def _inputs(metric: MetricDef) -> list[tuple[str, tuple[str | int, ...]]]:
    p = metric.type_params
    if metric.type == "ratio":
        return [(i.name, (k,)) for k, i in (("numerator", p.numerator_input),
                                            ("denominator", p.denominator_input)) if i]
    if metric.type == "derived":
        return [(i.name, ("metrics", n)) for n, i in enumerate(p.metric_inputs)]
    return []


def _check_cycles(pm: ProjectMetrics, problems: Problems) -> set[str]:
    state: dict[str, int] = {}  # 1 visiting, 2 done
    cyclic: set[str] = set()

    def visit(name: str, stack: list[str]) -> None:
        state[name] = 1
        for dep in pm.dependencies(pm.metrics[name]):
            if dep not in pm.metrics:
                continue
            if state.get(dep) == 1:
                loop = [*stack[stack.index(dep):], dep]
                cyclic.update(loop)
                at = pm.located[("metric", name)]
                problems.add(at.doc.file, "metrics depend on each other in a cycle: "
                             + " -> ".join(loop), at.line("type_params"),
                             "a derived or ratio metric cannot use itself, even indirectly")
            elif state.get(dep) is None:
                visit(dep, [*stack, dep])
        state[name] = 2

    for name in pm.metrics:
        if name not in state:
            visit(name, [name])
    return cyclic


def _check_filters(pm: ProjectMetrics, metric: MetricDef, problems: Problems,
                   verdicts: Any) -> None:
    """Every filter must parse and name dimensions reachable from each measure's model."""
    at = pm.located[("metric", metric.name)]
    p = metric.type_params
    filters: list[tuple[str, tuple[str | int, ...]]] = []
    if metric.filter:
        filters.append((metric.filter, ("filter",)))
    mi = p.measure_input
    if mi and mi.filter:
        filters.append((mi.filter, ("type_params", "measure", "filter")))
    for key, inp in (("numerator", p.numerator_input), ("denominator", p.denominator_input)):
        if inp and inp.filter:
            filters.append((inp.filter, ("type_params", key, "filter")))
    for n, inp in enumerate(p.metric_inputs):
        if inp.filter:
            filters.append((inp.filter, ("type_params", "metrics", n, "filter")))
    if not filters:
        return
    models = []
    for measure in pm.measures_of(metric):
        found = pm.measure(measure)
        if found:
            models.append((found[0], found[1]))
    for text, loc in filters:
        refs, error = parsed(text, verdicts)
        if error is not None:
            problems.add(at.doc.file, f"metric '{metric.name}' filter: {error[0]}",
                         at.line(*loc), error[1])
            continue
        for ref in refs:
            for sm, measure in models:
                time_dim = measure.agg_time_dimension or sm.defaults.agg_time_dimension
                try:
                    pm.resolve(sm.name, ref, time_dim)
                except MetricsQueryError as exc:
                    problems.add(at.doc.file, f"metric '{metric.name}' filter: {exc.reason}",
                                 at.line(*loc), exc.instruction)
                    break


__all__ = ["METRIC_TIME", "SemanticModelDef", "load_metrics", "read_metrics"]
