"""File connectors: CSV, Parquet and JSON lines, read by an in-memory DuckDB.

DuckDB does the parsing for every engine (it is fast, streams, and reports malformed CSV
lines instead of failing); the result leaves it as Arrow batches for the warehouse's bulk
path. Each matching file is one load unit, fingerprinted by the SHA-256 of its content.
"""

from __future__ import annotations

import glob as globlib
import hashlib
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from passerelle.errors import ConnectorError
from passerelle.project.models import CsvConnector, JsonlConnector, ParquetConnector
from passerelle.project.paths import allowed_roots, confine
from passerelle.sources.csvdialect import Dialect, transcode_to_utf8
from passerelle.tables import LINEAGE_COLUMNS

if TYPE_CHECKING:  # the readers need them; finding files and their columns does not
    import pyarrow as pa

BATCH_ROWS = 50_000
#: Longest CSV record DuckDB accepts (a 1 MB free-text field must load).
MAX_LINE_BYTES = 64 << 20
_NESTED = {"struct", "list", "map", "array", "union"}
_TEMPORAL = {"date", "time", "timestamp", "timestamp with time zone", "timestamp_s",
             "timestamp_ms", "timestamp_ns", "time with time zone"}


@dataclass(frozen=True)
class FileUnit:
    path: Path  # absolute
    name: str  # relative to the project root (posix), the unit's identity
    size: int


def resolve(project_root: Path, pattern: str) -> list[FileUnit]:
    """The files ``pattern`` (a path or a glob, relative to the project) matches, sorted.

    The pattern and every file it matches (links followed) must be inside the project
    folder or an ``allowed_paths`` folder: :class:`~passerelle.project.paths.PathNotAllowed`.
    """
    root = project_root.resolve()
    roots = allowed_roots(root)
    confine(root, pattern, what="source file", roots=roots)
    full = pattern if Path(pattern).is_absolute() else str(root / pattern)
    if globlib.has_magic(pattern):
        paths = sorted(Path(p) for p in globlib.glob(full, recursive=True))
        paths = [p for p in paths if p.is_file()]
        if not paths:
            raise ConnectorError(
                f"No file matches {pattern!r} (looked in {root}).",
                "Check the connector's path: it is relative to the project folder, and a "
                "glob like 'data/orders_*.csv' needs at least one matching file.",
            )
    else:
        path = Path(full)
        if not path.is_file():
            raise ConnectorError(
                f"File not found: {pattern} (looked in {root}).",
                "Check the connector's path: it is relative to the project folder.",
            )
        paths = [path]
    units = []
    for path in paths:
        confine(root, path, what="source file", roots=roots)
        try:
            name = path.resolve().relative_to(root).as_posix()
        except ValueError:
            name = path.resolve().as_posix()
        units.append(FileUnit(path, name, path.stat().st_size))
    return units


def fingerprint(path: Path) -> str:
    """SHA-256 of the content, read in 1 MB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class Reject:
    """One malformed record: its 1-based data row, DuckDB's error type and the text."""

    row: int
    error_type: str
    message: str
    line: str


@dataclass
class OpenedFile:
    reader: pa.RecordBatchReader
    _con: duckdb.DuckDBPyConnection | None = None
    _header: bool = True
    rejects: list[Reject] = field(default_factory=list)

    def collect_rejects(self) -> list[Reject]:
        """Malformed CSV records seen by the scan (call after the reader is consumed)."""
        if self._con is None:
            return []
        rows = self._con.execute(
            "SELECT line, min(error_type), string_agg(error_message, '; '), min(csv_line) "
            "FROM reject_errors GROUP BY line ORDER BY line"
        ).fetchall()
        offset = 1 if self._header else 0
        self.rejects = [Reject(int(line) - offset, str(kind), str(message), str(text or ""))
                        for line, kind, message, text in rows]
        return self.rejects


def _quoted(name: str) -> str:
    import sqlglot as sg

    return sg.to_identifier(name, quoted=True).sql("duckdb")


def _empty(columns: list[str]) -> pa.RecordBatchReader:
    import pyarrow as pa

    schema = pa.schema([(c, pa.string()) for c in columns])
    return pa.RecordBatchReader.from_batches(schema, iter(()))


READER_MEMORY = "4GB"


@contextmanager
def open_file(unit: FileUnit, connector, dialect: Dialect | None = None) -> Iterator[OpenedFile]:
    """Open ``unit`` as Arrow batches (source columns only); nested values become JSON text."""
    # This DuckDB only streams the file to the warehouse: a small memory budget (it spills to
    # disk when a CSV's rejects need more) keeps it from competing with the warehouse's own.
    con = duckdb.connect(config={"memory_limit": READER_MEMORY})
    try:
        with tempfile.TemporaryDirectory(prefix="passerelle-") as tmp:
            try:
                if isinstance(connector, CsvConnector):
                    assert dialect is not None
                    yield _open_csv(con, unit, dialect, Path(tmp))
                elif isinstance(connector, ParquetConnector):
                    yield OpenedFile(_open_parquet(con, unit))
                elif isinstance(connector, JsonlConnector):
                    yield OpenedFile(_open_jsonl(con, unit))
                else:  # pragma: no cover - models allow only the three
                    raise TypeError(connector)
            except duckdb.Error as exc:
                raise read_error(unit, exc) from exc
    finally:
        con.close()


def read_error(unit: FileUnit, exc: BaseException) -> ConnectorError:
    message = str(exc).strip().split("\n\n")[0]
    return ConnectorError(
        f"Cannot read {unit.name}: {message}",
        "Fix the file (the error above says where), or check the connector's type and options.",
    )


def _open_csv(con: duckdb.DuckDBPyConnection, unit: FileUnit, dialect: Dialect,
              tmp: Path) -> OpenedFile:
    _check_no_lineage_clash(dialect.columns, unit.name)
    if unit.size == 0 or not dialect.columns:
        return OpenedFile(_empty(dialect.columns))
    path = unit.path
    if not dialect.is_utf8:
        path = tmp / "utf8.csv"
        transcode_to_utf8(unit.path, dialect.encoding, path)
    relation = con.read_csv(
        str(path),
        header=dialect.header,
        delimiter=dialect.delimiter,
        quotechar=dialect.quote,
        escapechar=dialect.quote,
        columns={c: "VARCHAR" for c in dialect.columns},
        auto_detect=False,
        all_varchar=True,
        store_rejects=True,
        max_line_size=MAX_LINE_BYTES,
    )
    return OpenedFile(relation.to_arrow_reader(BATCH_ROWS), con, dialect.header)


def _nested_as_json(relation: duckdb.DuckDBPyRelation) -> duckdb.DuckDBPyRelation:
    types = [t.id for t in relation.types]
    if not any(t in _NESTED for t in types):
        return relation
    parts = [
        f"CAST(to_json({_quoted(c)}) AS VARCHAR) AS {_quoted(c)}" if t in _NESTED
        else _quoted(c)
        for c, t in zip(relation.columns, types, strict=True)
    ]
    return relation.select(", ".join(parts))


def _open_parquet(con: duckdb.DuckDBPyConnection, unit: FileUnit) -> pa.RecordBatchReader:
    relation = con.read_parquet(str(unit.path))
    _check_no_lineage_clash(list(relation.columns), unit.name)
    return _nested_as_json(relation).to_arrow_reader(BATCH_ROWS)


def _jsonl_columns(con: duckdb.DuckDBPyConnection, unit: FileUnit) -> dict[str, str] | None:
    """The columns of a JSON-lines file with the type each is read as; None when it is
    blank (DuckDB would invent a column named "json" for blank lines)."""
    if unit.size == 0 or (unit.size < 1 << 16 and not unit.path.read_bytes().strip()):
        return None
    # Detect types on the whole file (a key first seen late must not be dropped); nested
    # values are read as JSON text so heterogeneous objects keep exactly their own keys.
    probe = con.read_json(str(unit.path), format="newline_delimited", sample_size=-1)
    # Times stay text: DuckDB's reader turns "…T08:00:00Z" into a naive UTC TIMESTAMP, which
    # staging could not tell from a naive local time (the "Z" was shifted by the project's
    # zone); staging parses the original spelling, offset included.
    columns = {c: ("JSON" if t.id in _NESTED else "VARCHAR" if t.id in _TEMPORAL else str(t))
               for c, t in zip(probe.columns, probe.types, strict=True)}
    _check_no_lineage_clash(list(columns), unit.name)
    return columns


def _open_jsonl(con: duckdb.DuckDBPyConnection, unit: FileUnit) -> pa.RecordBatchReader:
    columns = _jsonl_columns(con, unit)
    if columns is None:
        return _empty([])
    relation = con.read_json(str(unit.path), format="newline_delimited", columns=columns)
    return relation.to_arrow_reader(BATCH_ROWS)


def file_columns(unit: FileUnit, connector, dialect: Dialect | None) -> list[str]:
    """Column names a file offers, without reading its rows (a JSON-lines file is scanned
    once for its keys, never read a second time)."""
    if isinstance(connector, CsvConnector):
        assert dialect is not None
        return list(dialect.columns)
    con = duckdb.connect(config={"memory_limit": READER_MEMORY})
    try:
        if isinstance(connector, JsonlConnector):
            return list(_jsonl_columns(con, unit) or ())
        if isinstance(connector, ParquetConnector):  # the reader's columns, without Arrow
            columns = list(con.read_parquet(str(unit.path)).columns)
            _check_no_lineage_clash(columns, unit.name)
            return columns
        raise TypeError(connector)  # pragma: no cover - models allow only the three
    except duckdb.Error as exc:
        raise read_error(unit, exc) from exc
    finally:
        con.close()


def _check_no_lineage_clash(names: list[str], where: str) -> None:
    clash = [n for n in names if n in LINEAGE_COLUMNS]
    if clash:
        raise ConnectorError(
            f"{where} has column(s) {', '.join(clash)}, names Passerelle reserves for lineage.",
            "Rename the column in the source (or in a view of it).",
        )
