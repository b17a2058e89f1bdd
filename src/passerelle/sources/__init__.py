"""Sources: connectors (CSV, Parquet, JSON lines, PostgreSQL, MySQL/MariaDB) and incremental
loading into ``raw_<source>`` tables with lineage, a load ledger and a quarantine.

Public API (everything else in this package is internal)::

    load_source(engine, project_root, source, run_id, reporter) -> LoadResult
    source_columns(project_root, source) -> list[str]
    check_connection(source, project_root=None) -> None
    csv_dialect(project_root, source) -> dict | None
"""

from passerelle.sources.bookkeeping import LINEAGE, LOADS_TABLE, QUARANTINE_SCHEMA, QUARANTINE_TABLE
from passerelle.sources.load import (
    LoadResult,
    check_connection,
    csv_dialect,
    load_source,
    raw_table_name,
    source_columns,
)

__all__ = [
    "LINEAGE",
    "LOADS_TABLE",
    "QUARANTINE_SCHEMA",
    "QUARANTINE_TABLE",
    "LoadResult",
    "check_connection",
    "csv_dialect",
    "load_source",
    "raw_table_name",
    "source_columns",
]
