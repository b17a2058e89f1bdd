"""Sources: connectors (CSV, Parquet, JSON lines, PostgreSQL, MySQL/MariaDB) and incremental
loading into ``raw_<source>`` tables with lineage, a load ledger and a quarantine.

Public API (everything else in this package is internal)::

    load_source(engine, project_root, source, run_id, reporter) -> LoadResult
    source_columns(project_root, source) -> list[str]
    check_connection(source, project_root=None) -> None
    csv_dialect(project_root, source) -> dict | None
"""

from passerelle.lazy import lazy_exports

# Submodule -> its public names, imported on first use: `passerelle validate` reads the
# sources' columns without the loading machinery (Ibis, pyarrow, numpy).
_EXPORTS = {
    "bookkeeping": "LINEAGE LOADS_TABLE QUARANTINE_SCHEMA QUARANTINE_TABLE",
    "columns": "source_columns",
    "load": "LoadResult check_connection csv_dialect load_source raw_table_name",
}
__all__ = sorted(n for names in _EXPORTS.values() for n in names.split())
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
