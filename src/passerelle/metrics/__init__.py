"""The semantic layer: metrics defined once in ``metrics/*.yml``, answered from the warehouse.

Public API (the CLI, the HTTP API and the web app call these):

- :func:`load_metrics` / :func:`read_metrics`: parse and check the project's metric files.
- :func:`query`: answer a metric query as an Arrow table; :func:`build` gives the Ibis
  expression, :func:`compile_sql` the SQL.
- :func:`lineage` / :func:`source_lineage`: the columns a metric comes from.
- :func:`glossary`: every metric with definition, owner, status, lineage and usage.
"""

from passerelle.lazy import lazy_exports

# Submodule -> its public names, imported on first use: importing one light submodule
# must not pull in the heavy ones (scipy, pandas, lifetimes).
_EXPORTS = {
    "compiler": "build compile_sql query",
    "expr": "UnsafeExpression",
    "glossary": "glossary",
    "lineage": "lineage source_lineage",
    "load": "load_metrics read_metrics",
    "semantic": "METRIC_TIME MetricsQueryError ProjectMetrics",
}
__all__ = sorted(n for names in _EXPORTS.values() for n in names.split())
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
