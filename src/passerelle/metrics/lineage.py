"""Where a metric's numbers come from, and the glossary that lists every metric.

Lineage is not typed by hand: the metric is compiled to SQL exactly as a query would run
it, and sqlglot's column lineage walks that SQL down to base-table columns. Views of the
warehouse (``orders`` gathers every ``stg_<source>`` table of orders) are expanded from
their definitions as the engine stores them, so the lineage reaches the staged tables, and
from there, when the project's sources are given, the column of each source file or table.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlglot
import sqlglot.expressions as sge
from sqlglot.lineage import lineage as sqlglot_lineage

from passerelle.engines.base import Engine
from passerelle.metrics.compiler import compile_sql
from passerelle.metrics.semantic import MetricsQueryError, ProjectMetrics


def _view_definitions(engine: Engine) -> dict[str, str]:
    """Name -> SELECT of every view in the engine's schema (information_schema.views)."""
    schema = getattr(engine, "schema", None) or "main"
    stmt = (sge.select("table_name", "view_definition")
            .from_(sge.table_("views", db="information_schema"))
            .where(sge.column("table_schema").eq(sge.convert(schema))))
    views: dict[str, str] = {}
    for name, definition in engine.execute(stmt):
        if not definition:
            continue
        tree = sqlglot.parse_one(definition, read=engine.dialect)
        if isinstance(tree, sge.Create):
            tree = tree.expression
        views[str(name)] = tree.sql(dialect=engine.dialect)
    return views


def _schemas(engine: Engine, sql: str, views: dict[str, str]) -> dict[str, dict[str, str]]:
    """Column types of the base tables the SQL reaches (views expanded), to resolve ``*``."""
    todo = [sql]
    seen: set[str] = set()
    tables: set[str] = set()
    while todo:
        for table in sqlglot.parse_one(todo.pop(), read=engine.dialect).find_all(sge.Table):
            if table.name in seen:
                continue
            seen.add(table.name)
            if table.name in views:
                todo.append(views[table.name])
            else:
                tables.add(table.name)
    schema = {}
    for name in sorted(tables):
        try:
            columns = engine.table(name).schema()
        except Exception:
            continue
        schema[name] = {col: dtype.to_sqlglot(engine.dialect).sql(engine.dialect)
                        if hasattr(dtype, "to_sqlglot") else "TEXT"
                        for col, dtype in columns.items()}
    return schema


def lineage(engine: Engine, pm: ProjectMetrics, metric: str) -> list[tuple[str, str]]:
    """Base tables and columns a metric's value is computed from, sorted.

    Views are expanded, so a metric on ``orders`` returns the ``stg_<source>`` columns.

    Example:
        >>> lineage(engine, pm, "revenue")
        [('stg_eshop_orders', 'amount'), ('stg_store_tickets', 'amount')]
    """
    name = pm.resolve_metric(metric).name
    sql = compile_sql(engine, pm, [name])
    views = _view_definitions(engine)
    schema = _schemas(engine, sql, views)
    try:
        root = sqlglot_lineage(name, sql, dialect=engine.dialect, sources=views, schema=schema)
    except sqlglot.errors.SqlglotError as exc:  # pragma: no cover - a compiler bug
        raise MetricsQueryError(f"cannot trace the lineage of '{name}': {exc}",
                                "report this with the metric definition") from exc
    found: set[tuple[str, str]] = set()
    for node in root.walk():
        if not node.downstream and isinstance(node.source, sge.Table):
            found.add((node.source.name, node.name.split(".")[-1]))
    return sorted(found)


def source_lineage(engine: Engine, pm: ProjectMetrics, metric: str,
                   sources: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Lineage down to each source's own column, through its mapping in ``sources/*.yml``.

    ``sources`` is ``ProjectDefinition.sources`` (name -> SourceConfig). Each entry has
    ``table``, ``column`` (the warehouse side) and, for ``stg_<source>`` tables,
    ``source`` and ``source_column`` (or ``source_value`` for a constant mapping).
    """
    out = []
    for table, column in lineage(engine, pm, metric):
        entry: dict[str, Any] = {"table": table, "column": column}
        source = sources.get(table.removeprefix("stg_")) if table.startswith("stg_") else None
        if source is not None:
            entry["source"] = source.name
            mapping = source.mappings().get(column)
            if mapping is not None:
                if mapping.column is not None:
                    entry["source_column"] = mapping.column
                else:
                    entry["source_value"] = mapping.value
        out.append(entry)
    return out
