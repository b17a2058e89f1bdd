"""The columns a source offers, read without the loading machinery (`passerelle validate`).

Finding a JSON-lines file's keys scans the whole file, and a Parquet file's columns take a
DuckDB connection: their columns are kept in the project's ``.passerelle/source-columns.json``
per file (its name, size and modification time, and the connector's settings) for one
version of this code, so checking a project again reads only what changed.
"""

from __future__ import annotations

from pathlib import Path

from passerelle.project.models import CsvConnector, SourceConfig

KEPT = Path(".passerelle") / "source-columns.json"
CODE = ("sources/columns.py", "sources/files.py", "tables.py")


def source_columns(project_root: Path, source: SourceConfig) -> list[str]:
    """The columns the source offers (union over a glob's files, in first-seen order)."""
    from passerelle.sources import csvdialect, files

    connector = source.connector
    if connector.type == "collector":
        from passerelle.collect.loader import RAW_COLUMNS

        return list(RAW_COLUMNS)
    if not source.is_file:
        from passerelle.sources import databases

        return databases.columns(connector)
    from passerelle.verdicts import Verdicts

    kept = Verdicts(Path(project_root), KEPT, CODE)
    settings = connector.model_dump_json()
    seen: dict[str, None] = {}
    try:
        for unit in files.resolve(Path(project_root), connector.path):
            if isinstance(connector, CsvConnector):  # the header, read with the dialect
                dialect = csvdialect.detect(unit.path, connector)
                seen.update(dict.fromkeys(files.file_columns(unit, connector, dialect)))
                continue
            stat = unit.path.stat()
            columns = kept.of("file columns", unit.name, (stat.st_size, stat.st_mtime_ns,
                                                          settings),
                              lambda unit=unit: files.file_columns(unit, connector, None))
            seen.update(dict.fromkeys(columns))
    finally:
        kept.save()
    return list(seen)
