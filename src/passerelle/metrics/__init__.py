"""The semantic layer: metrics defined once in ``metrics/*.yml``, answered from the warehouse.

Public API (the CLI, the HTTP API and the web app call these):

- :func:`load_metrics` / :func:`read_metrics`: parse and check the project's metric files.
- :func:`query`: answer a metric query as an Arrow table; :func:`build` gives the Ibis
  expression, :func:`compile_sql` the SQL.
- :func:`lineage` / :func:`source_lineage`: the columns a metric comes from.
- :func:`glossary`: every metric with definition, owner, status, lineage and usage.
"""

from passerelle.metrics.compiler import build, compile_sql, query
from passerelle.metrics.expr import UnsafeExpression
from passerelle.metrics.lineage import glossary, lineage, source_lineage
from passerelle.metrics.load import load_metrics, read_metrics
from passerelle.metrics.semantic import METRIC_TIME, MetricsQueryError, ProjectMetrics

__all__ = [
    "METRIC_TIME",
    "MetricsQueryError",
    "ProjectMetrics",
    "UnsafeExpression",
    "build",
    "compile_sql",
    "glossary",
    "lineage",
    "load_metrics",
    "query",
    "read_metrics",
    "source_lineage",
]
