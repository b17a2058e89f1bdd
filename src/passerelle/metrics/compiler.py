"""Metric queries compiled to one Ibis expression, so they run on every engine.

How a query is built:
1. Each requested metric becomes a small plan: simple and cumulative metrics are *leaves*
   (a measure with its filters); ratio and derived metrics combine other plans.
2. Leaves that share a semantic model, time dimension, filters and cumulative spec are
   aggregated together: one scan of the model, joined along entities to the models that
   hold the dimensions used in ``group_by``, ``where`` and the filters, filtered, grouped.
   A cumulative leaf then gets a running window over ``metric_time``.
3. The per-group tables are joined on the group-by columns (a null-safe full outer join)
   and ratios (numerator / denominator after aggregation) and derived expressions are
   computed on top.

Every user-written piece (measure and dimension expressions, filters, ``where``) goes
through :mod:`passerelle.metrics.expr`: parsed, checked, compiled to Ibis; never pasted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import ibis
import ibis.expr.types as ir
import pyarrow as pa
import sqlglot.expressions as sge

from passerelle.engines.base import Engine
from passerelle.metrics.expr import UnsafeExpression, parse_expression, references, to_ibis
from passerelle.metrics.semantic import (
    Hop,
    MetricsQueryError,
    ProjectMetrics,
    Resolved,
)
from passerelle.project.metrics_models import GRAINS, MetricDef

_TRUNC = {"day": "D", "week": "W", "month": "M", "quarter": "Q", "year": "Y"}


# -- plans --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Leaf:
    measure: str
    filters: tuple[str, ...] = ()
    cumulative: tuple[Any, ...] | None = None  # ("all",) ("window", n, unit) ("to_date", g)


@dataclass(frozen=True)
class Ratio:
    numerator: Any
    denominator: Any


@dataclass(frozen=True)
class Derived:
    expr: str
    inputs: tuple[tuple[str, Any], ...]  # (name or alias, plan)


def plan(pm: ProjectMetrics, metric: MetricDef, filters: tuple[str, ...] = (),
         _stack: tuple[str, ...] = ()) -> Leaf | Ratio | Derived:
    """The computation a metric stands for, with inherited filters pushed down to leaves."""
    if metric.name in _stack:
        raise MetricsQueryError(f"metric '{metric.name}' depends on itself",
                                "run `passerelle validate` to see the cycle")
    stack = (*_stack, metric.name)
    own = (*filters, *([metric.filter] if metric.filter else []))
    p = metric.type_params
    if metric.type in ("simple", "cumulative"):
        mi = p.measure_input
        assert mi is not None
        cumulative = None
        if metric.type == "cumulative":
            window, to_date = p.cumulative_window, p.cumulative_grain_to_date
            cumulative = (("window", *window) if window else
                          ("to_date", to_date) if to_date else ("all",))
        return Leaf(mi.name, tuple(sorted({*own, *([mi.filter] if mi.filter else [])})),
                    cumulative)

    def sub(name: str, extra: str | None) -> Leaf | Ratio | Derived:
        if name not in pm.metrics:
            raise MetricsQueryError(f"metric '{metric.name}' uses unknown metric '{name}'",
                                    "run `passerelle validate`")
        return plan(pm, pm.metrics[name], (*own, *([extra] if extra else [])), stack)

    if metric.type == "ratio":
        num, den = p.numerator_input, p.denominator_input
        assert num is not None and den is not None
        return Ratio(sub(num.name, num.filter), sub(den.name, den.filter))
    assert p.expr is not None
    return Derived(p.expr, tuple((i.ref, sub(i.name, i.filter)) for i in p.metric_inputs))


def leaves(node: Leaf | Ratio | Derived) -> list[Leaf]:
    if isinstance(node, Leaf):
        return [node]
    if isinstance(node, Ratio):
        return [*leaves(node.numerator), *leaves(node.denominator)]
    return [leaf for _, sub in node.inputs for leaf in leaves(sub)]


# -- the query ----------------------------------------------------------------------------
@dataclass
class _Group:
    model: str
    time_dimension: str | None
    filters: tuple[str, ...]
    cumulative: tuple[Any, ...] | None
    leaves: dict[Leaf, str] = field(default_factory=dict)  # leaf -> column name


def build(engine: Engine, pm: ProjectMetrics, metrics: Sequence[str],
          group_by: Sequence[str] = (), where: str | None = None,
          order_by: Sequence[str] = (), limit: int | None = None,
          grain: str | None = None) -> ir.Table:
    """One Ibis expression answering the query (not run)."""
    if not metrics:
        raise MetricsQueryError("no metric asked for", "name at least one metric")
    if grain is not None and grain not in GRAINS:
        raise MetricsQueryError(f"grain '{grain}' is not one of {', '.join(GRAINS)}",
                                "use day, week, month, quarter or year")
    defs = [pm.resolve_metric(m) for m in metrics]
    keys = list(dict.fromkeys(group_by))
    for name in [d.name for d in defs]:
        if name in keys:
            raise MetricsQueryError(f"'{name}' is both a metric and a group-by column",
                                    "remove it from --by")
    where_tree = _parse_user(where) if where else None
    if where_tree is not None:
        for ref in references(where_tree):
            if ref in pm.metrics:
                raise MetricsQueryError(
                    f"--where filters dimensions before aggregation; '{ref}' is a metric",
                    "filter on dimensions such as channel or customer__country")

    plans = {d.name: plan(pm, d) for d in defs}
    groups: dict[tuple[Any, ...], _Group] = {}
    for node in plans.values():
        for leaf in leaves(node):
            found = pm.measure(leaf.measure)
            if found is None:
                raise MetricsQueryError(f"unknown measure '{leaf.measure}'",
                                        "run `passerelle validate`")
            sm, measure = found
            time_dim = measure.agg_time_dimension or sm.defaults.agg_time_dimension
            gkey = (sm.name, time_dim, leaf.filters, leaf.cumulative)
            group = groups.setdefault(gkey, _Group(sm.name, time_dim, leaf.filters,
                                                   leaf.cumulative))
            if leaf not in group.leaves:
                group.leaves[leaf] = f"__l{sum(len(g.leaves) for g in groups.values())}"

    tables = [_group_table(engine, pm, g, keys, where_tree, grain) for g in groups.values()]
    wide = _join(tables, keys)
    columns = {leaf: col for g in groups.values() for leaf, col in g.leaves.items()}
    out: dict[str, ir.Value] = {k: wide[k] for k in keys}
    for d in defs:
        out[d.name] = _value(plans[d.name], wide, columns).name(d.name)
    result = wide.select(**out)
    ordering = []
    for name in order_by or keys:
        desc = name.startswith("-")
        col = name.lstrip("-")
        if col not in out:
            raise MetricsQueryError(f"cannot order by '{col}': not in the result",
                                    f"order by one of {', '.join(out)}")
        ordering.append(result[col].desc() if desc else result[col].asc())
    if ordering:
        result = result.order_by(ordering)
    if limit is not None:
        result = result.limit(int(limit))
    return result


def query(engine: Engine, pm: ProjectMetrics, metrics: Sequence[str],
          group_by: Sequence[str] = (), where: str | None = None,
          order_by: Sequence[str] = (), limit: int | None = None,
          grain: str | None = None) -> pa.Table:
    """Answer a metric query from the warehouse.

    Args:
        metrics: metric names (or synonyms).
        group_by: dimension references: ``channel``, ``customer__country``,
            ``metric_time`` (at ``grain``, default day) or ``metric_time__month``.
        where: a filter on dimensions, e.g. ``country = 'FR'`` (user input: checked).
        order_by: result columns, ``-name`` for descending; default the group-by columns.
        limit: at most this many rows.
        grain: the grain of a bare ``metric_time``.

    Example:
        >>> query(engine, pm, ["revenue"], ["channel", "metric_time"], grain="month")
    """
    return _decimals_as_floats(engine.to_arrow(build(engine, pm, metrics, group_by, where,
                                                     order_by, limit, grain)))


def _decimals_as_floats(table: pa.Table) -> pa.Table:
    """Sums of DECIMAL columns come back as Python Decimals, which JSON writes as strings
    ("1013627.20" beside a float): a metric is a number, so they become float64."""
    for i, column in enumerate(table.schema):
        if pa.types.is_decimal(column.type):
            table = table.set_column(i, column.name, table.column(i).cast(pa.float64()))
    return table


def compile_sql(engine: Engine, pm: ProjectMetrics, metrics: Sequence[str],
                group_by: Sequence[str] = (), where: str | None = None,
                order_by: Sequence[str] = (), limit: int | None = None,
                grain: str | None = None) -> str:
    """The SQL the engine would run for this query (for debugging and lineage)."""
    expr = build(engine, pm, metrics, group_by, where, order_by, limit, grain)
    return str(ibis.to_sql(expr, dialect=engine.dialect))


# -- one group: scan, join, filter, aggregate -----------------------------------------------
def _parse_user(text: str) -> sge.Expression:
    try:
        return parse_expression(text)
    except UnsafeExpression as exc:
        raise MetricsQueryError(exc.reason, exc.instruction) from None


def _group_table(engine: Engine, pm: ProjectMetrics, group: _Group, keys: list[str],
                 where_tree: sge.Expression | None, grain: str | None) -> ir.Table:
    sm = pm.semantic_models[group.model]
    filter_trees = [_parse_user(f) for f in group.filters]
    if where_tree is not None:
        filter_trees.append(where_tree)

    def resolve(ref: str, for_key: bool) -> Resolved:
        r = pm.resolve(sm.name, ref, group.time_dimension, grain if for_key else None)
        if for_key and r.kind == "time" and r.grain is None:
            dim = pm.semantic_models[r.model].dimension(ref.split("__")[-1])
            grain_ = dim.type_params.time_granularity if dim and dim.type_params else "day"
            r = Resolved(r.ref, r.kind, r.path, r.model, r.expr, grain_)
        return r

    key_refs = {k: resolve(k, True) for k in keys}
    filter_refs = {ref: resolve(ref, False) for t in filter_trees for ref in references(t)}
    needed = [*key_refs.values(), *filter_refs.values()]

    scan = _Scan(engine, pm, group.model)
    measure_cols = {}
    for leaf in group.leaves:
        measure = sm.measure(leaf.measure)
        assert measure is not None
        measure_cols[leaf] = scan.column((), measure.column_expr)
    for r in needed:
        scan.column(r.path, r.expr)
    wide = scan.joined()

    def value(r: Resolved) -> ir.Value:
        col = wide[scan.column(r.path, r.expr)]
        if r.grain is not None:
            col = col.truncate(_TRUNC[r.grain]).cast("date")
        return col

    if filter_trees:
        wide = wide.filter(*[_condition(t, to_ibis(t, lambda ref: value(filter_refs[ref])))
                             for t in filter_trees])
    aggs = {}
    for leaf, col in group.leaves.items():
        measure = sm.measure(leaf.measure)
        assert measure is not None
        aggs[col] = _aggregate(measure.agg, wide[measure_cols[leaf]])
    key_values = {k: value(r).name(k) for k, r in key_refs.items()}
    table = wide.group_by(**key_values).aggregate(**aggs) if key_values else wide.aggregate(**aggs)
    if group.cumulative is not None:
        table = _running(table, group, sm, key_refs)
    return table


def _aggregate(agg: str, col: ir.Value) -> ir.Value:
    if agg == "sum":
        return col.sum()
    if agg == "sum_boolean":  # PostgreSQL casts no boolean to bigint: count the true ones
        return col.cast("boolean").ifelse(1, 0).sum()
    if agg == "count":
        return col.count()
    if agg == "count_distinct":
        return col.nunique()
    if agg == "average":
        return col.mean()
    if agg == "min":
        return col.min()
    return col.max()


def _running(table: ir.Table, group: _Group, sm: Any, key_refs: dict[str, Resolved]) -> ir.Table:
    """Turn per-period aggregates into running ones over metric_time."""
    spec = group.cumulative
    assert spec is not None
    time_keys = [k for k, r in key_refs.items() if r.kind == "metric_time"]
    if not time_keys:
        if spec[0] == "all":
            return table  # all time, no period: the plain total
        raise MetricsQueryError("a cumulative metric with a window or grain_to_date needs "
                                "metric_time in the group-by", "add --by metric_time")
    tkey = time_keys[0]
    query_grain = key_refs[tkey].grain or "day"
    partition = [table[k] for k in key_refs if k != tkey]
    if spec[0] == "to_date":
        period = spec[1]
        if GRAINS.index(period) < GRAINS.index(query_grain):
            raise MetricsQueryError(f"{period}-to-date cannot be shown by {query_grain}",
                                    f"use a grain of {period} or finer")
        partition.append(table[tkey].truncate(_TRUNC[period]))
    if spec[0] == "window":
        n, unit = spec[1], spec[2]
        span = _window_span(n, unit, query_grain)
        window = ibis.window(group_by=partition, order_by=table[tkey],
                             range=(-span, 0)) if span is not None else ibis.window(
            group_by=partition, order_by=table[tkey], rows=(0, 0))
    else:
        window = ibis.cumulative_window(group_by=partition, order_by=table[tkey])
    measures = {leaf: sm.measure(leaf.measure) for leaf in group.leaves}
    running = {}
    for leaf, col in group.leaves.items():
        agg = measures[leaf].agg
        value = table[col]
        running[col] = (value.min() if agg == "min" else value.max() if agg == "max"
                        else value.sum()).over(window)
    return table.mutate(**running)


def _window_span(n: int, unit: str, grain: str) -> Any:
    """How far back a RANGE frame reaches: the window minus the current period."""
    if unit == grain:
        return ibis.interval(n - 1, unit=_TRUNC[unit]) if n > 1 else None
    if grain == "day" and unit == "week":
        return ibis.interval(7 * n - 1, unit="D")
    raise MetricsQueryError(
        f"a window of {n} {unit}(s) cannot be shown by {grain}",
        f"query by {unit}, or write the window in {grain}s")


class _Scan:
    """The columns one group needs from its model and from the models joined to it."""

    def __init__(self, engine: Engine, pm: ProjectMetrics, model: str) -> None:
        self.engine, self.pm, self.model = engine, pm, model
        self.nodes: dict[tuple[Hop, ...], dict[str, tuple[str, ir.Value]]] = {}
        self.raw: dict[tuple[Hop, ...], ir.Table] = {}

    def _model(self, path: tuple[Hop, ...]) -> str:
        return path[-1].model if path else self.model

    def column(self, path: tuple[Hop, ...], expr: str) -> str:
        """Name of the column computing ``expr`` in the model at ``path`` (added if new)."""
        for i in range(len(path)):  # every hop needs its keys on both sides
            self._key(path[:i], path[i])
        return self._add(path, expr)

    def _key(self, parent: tuple[Hop, ...], hop: Hop) -> None:
        parent_sm = self.pm.semantic_models[self._model(parent)]
        child_sm = self.pm.semantic_models[hop.model]
        fk, pk = parent_sm.entity(hop.entity), child_sm.entity(hop.entity)
        assert fk is not None and pk is not None
        self._add(parent, fk.column_expr)
        self._add((*parent, hop), pk.column_expr)

    def _add(self, path: tuple[Hop, ...], expr: str) -> str:
        node = self.nodes.setdefault(path, {})
        if expr in node:
            return node[expr][0]
        if path not in self.raw:
            table_name = self.pm.semantic_models[self._model(path)].model
            try:
                self.raw[path] = self.engine.table(table_name)
            except Exception as exc:  # the backend's own "table not found"
                raise MetricsQueryError(
                    f"table '{table_name}' (semantic model '{self._model(path)}') is not in "
                    "the warehouse", "run `passerelle run` first, or fix `model:`") from exc
        raw = self.raw[path]

        def column(name: str) -> ir.Value:
            if name not in raw.columns:
                raise MetricsQueryError(
                    f"'{name}' is not a column of table '{raw.get_name()}'",
                    f"columns: {', '.join(raw.columns)}")
            return raw[name]

        value = to_ibis(parse_expression(expr), column)
        name = f"__n{list(self.nodes).index(path)}_{len(node)}"
        node[expr] = (name, value)
        return name

    def joined(self) -> ir.Table:
        tables = {path: self.raw[path].select(**{n: v for n, v in cols.values()})
                  for path, cols in self.nodes.items()}
        result = tables[()]
        for path in sorted((p for p in tables if p), key=len):
            parent, hop = path[:-1], path[-1]
            parent_sm = self.pm.semantic_models[self._model(parent)]
            child_sm = self.pm.semantic_models[hop.model]
            fk = self.nodes[parent][parent_sm.entity(hop.entity).column_expr][0]  # type: ignore[union-attr]
            pk = self.nodes[path][child_sm.entity(hop.entity).column_expr][0]  # type: ignore[union-attr]
            child = tables[path]
            result = result.left_join(child, result[fk] == child[pk])
        return result.select(*[n for cols in self.nodes.values() for n, _ in cols.values()])


# -- combining groups ---------------------------------------------------------------------
def _join(tables: list[ir.Table], keys: list[str]) -> ir.Table:
    """Put the groups side by side on the group-by columns.

    A full outer join on nullable keys needs ``IS NOT DISTINCT FROM``, which PostgreSQL
    refuses in a FULL JOIN; stacking the groups (UNION ALL, each group's columns null in
    the others) and grouping again is null-safe and portable, and each group holds one row
    per key so ``max`` just picks it.
    """
    if len(tables) == 1:
        return tables[0]
    types = {c: t[c].type() for t in tables for c in t.columns if c not in keys}
    stacked = [t.select(*keys, *[t[c] if c in t.columns else ibis.null().cast(types[c]).name(c)
                                 for c in types]) for t in tables]
    union = stacked[0].union(*stacked[1:], distinct=False)
    aggs = {c: union[c].max() for c in types}
    return union.group_by(keys).aggregate(**aggs) if keys else union.aggregate(**aggs)


def _condition(tree: sge.Expression, value: ir.Value) -> ir.BooleanValue:
    """A filter must be a condition: ``'a' || 'b'`` is a string, refused by name (it would
    otherwise fail deep in Ibis)."""
    if not isinstance(value, ir.BooleanValue):
        raise MetricsQueryError(f"the filter '{tree.sql()[:80]}' is not a condition (it gives "
                                f"a {value.type()})", "compare a dimension with a value, e.g. "
                                "country = 'FR'")
    return value


def _value(node: Leaf | Ratio | Derived, wide: ir.Table, columns: dict[Leaf, str]) -> ir.Value:
    if isinstance(node, Leaf):
        return wide[columns[node]]
    if isinstance(node, Ratio):
        num = _value(node.numerator, wide, columns).cast("float64")
        den = _value(node.denominator, wide, columns).cast("float64")
        return num / den.nullif(0)
    inputs = dict(node.inputs)

    def resolve(ref: str) -> ir.Value:
        if ref not in inputs:
            raise MetricsQueryError(f"derived expression '{node.expr}' names '{ref}', which is "
                                    "not one of its metrics", "list it under type_params.metrics")
        return _value(inputs[ref], wide, columns)

    return to_ibis(_parse_user(node.expr), resolve)
