"""DuckDB in a file: the embedded default."""

from __future__ import annotations

import functools
import string
from collections.abc import Callable, Hashable, Mapping
from itertools import pairwise
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir
import pyarrow as pa
import sqlglot as sg
import sqlglot.expressions as sge

from passerelle.engines.base import Capabilities, Engine
from passerelle.engines.quick import DuckDBFile


class DuckDBEngine(Engine):
    name = "duckdb"
    dialect = "duckdb"
    capabilities = Capabilities(single_writer=True, scans_arrow=True)

    def __init__(self, path: Path | str, threads: int | None = None,
                 memory_limit: str | None = None, read_only: bool = False,
                 file: DuckDBFile | None = None) -> None:
        super().__init__()
        # the duckdb connection, shared with the commands that read without Ibis
        self.file = file or DuckDBFile(path, threads, memory_limit, read_only)
        self.path = self.file.path
        self._prepared: Any = None  # PreparedQueries, made on first use

    def _connect(self) -> Any:
        from ibis.backends.duckdb import Backend

        ibis.duckdb  # noqa: B018 - loading the backend registers its options
        return Backend.from_connection(self.file.connection)

    def close(self) -> None:
        super().close()  # closes the connection underneath
        self.file.close()

    def exists(self, name: str) -> bool:
        """``name in list_tables()`` (tables and views of the warehouse's schema, temporary
        ones too) with one look-up of the name: Ibis lists every table through
        information_schema (about 10 ms), and a pipeline run asks hundreds of times."""
        return bool(self.con.con.execute(_exists_sql(name)).fetchall())

    def checkpoint(self) -> None:
        self.con.con.execute("CHECKPOINT").fetchall()

    def stored_sorted(self, table: str, column: str) -> bool | None:
        """Whether the rows at the start, middle and end of the table (2,048 of each, by
        position) are in ``column``'s order: a table its step wrote in any order fails
        this, one sorted then appended to fails at its end. A sample, not a proof (the
        order only makes reads faster, never different)."""
        import sqlglot as sg

        t = sg.table(table, quoted=True).sql(self.dialect)
        c = sg.column(column, quoted=True).sql(self.dialect)
        n = self.con.con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
        middle, end = max(n // 2, 2048), max(n - 2048, n // 2 + 2048)
        rows = self.con.con.execute(
            f"SELECT {c} FROM {t} WHERE rowid < 2048 OR (rowid >= $1 AND rowid < $2) "
            f"OR rowid >= $3 ORDER BY rowid", [middle, middle + 2048, end]).fetchall()
        values = [r[0] for r in rows if r[0] is not None]
        return all(a <= b for a, b in pairwise(values))

    def to_arrow(self, expr: ir.Expr) -> pa.Table:
        """ibis's ``to_pyarrow`` without its DuckDB converter module, which imports pandas
        (half a second of every command) only to define a pandas mapper we never use."""
        table = self.con._to_duckdb_relation(expr).to_arrow_table()
        return expr.__pyarrow_result__(table, data_mapper=_arrow_mapper())

    def prepared(self, key: Hashable, values: Mapping[str, Any],
                 build: Callable[[Mapping[str, Any]], ir.Expr]) -> Any:
        """Compiled once per shape, then run as a prepared statement with bound values."""
        from passerelle.engines.prepared import PreparedQueries

        if self._prepared is None:
            self._prepared = PreparedQueries()
        return self._prepared.run(self, key, values, build, _arrow_mapper())

    def compile_prepared(self, values: Mapping[str, Any],
                         build: Callable[[Mapping[str, Any]], ir.Expr]) -> Any:
        """``build(slots)`` compiled with a parameter for each value (a ``Prepared``), or
        None (see :func:`passerelle.engines.prepared.compile_prepared`)."""
        from passerelle.engines.prepared import compile_prepared

        return compile_prepared(self, values, build)

    def sha256_hex(self, value: ir.StringValue) -> ir.StringValue:
        return _duckdb_sha256(value)

    def byte_length(self, value: ir.StringValue) -> ir.IntegerValue:
        return _duckdb_strlen(value)  # octet_length takes BLOBs only

    def json_string(self, value: ir.StringValue) -> ir.StringValue:
        return _duckdb_to_json(value).cast(dt.string)  # its own escaping: fast

    def strip(self, value: ir.StringValue) -> ir.StringValue:
        # Trimming every value was the largest cost of staging (a third of the CPU of the
        # query over 500,000 events); few values start or end with white space, and those
        # are found with byte comparisons: all of string.whitespace sorts before "!" (DuckDB
        # compares bytes), and SUFFIX compares the last bytes. 5x less CPU.
        edge = (value < "!") | ibis.or_(*[value.endswith(c) for c in string.whitespace])
        return ibis.ifelse(edge, value.strip(), value)

    def naive_utc(self, instant: ir.TimestampValue) -> ir.TimestampValue:
        # timezone('UTC', ...) builds an ICU calendar for every value; the instant's
        # microseconds since the epoch are already the naive UTC value (staging 500,000
        # Parquet events: 14% less CPU).
        return _duckdb_make_timestamp(_duckdb_epoch_us(instant))

    def json_text(self, doc: ir.JSONValue, key: str) -> ir.StringValue:
        # A JSON pointer (RFC 6901) names one key whatever its characters; sqlglot leaves
        # pointers as they are, where it would parse a '$.key' path.
        pointer = "/" + key.replace("~", "~0").replace("/", "~1")
        return _duckdb_json_text(doc, ibis.literal(pointer, type="string"))

    def _run(self, sql: str) -> list[tuple]:
        result = self.con.con.execute(sql)
        # Read every result: an unread one makes the next query on this connection fail.
        return result.fetchall() if result.description else []

    def append_arrow(self, table: str, batches: pa.RecordBatchReader) -> int:
        raw = self.con.con  # the duckdb connection underneath Ibis
        view = f"__passerelle_append_{id(batches)}"
        raw.register(view, batches)
        try:
            quoted = sg.to_identifier(table, quoted=True).sql("duckdb")
            if not self.exists(table):
                raw.execute(f"CREATE TABLE {quoted} AS SELECT * FROM {view} LIMIT 0").fetchall()
            before = raw.execute(f"SELECT count(*) FROM {quoted}").fetchone()[0]
            raw.execute(f"INSERT INTO {quoted} BY NAME SELECT * FROM {view}").fetchall()
            after = raw.execute(f"SELECT count(*) FROM {quoted}").fetchone()[0]
        finally:
            raw.unregister(view)
        return int(after - before)


@ibis.udf.scalar.builtin(name="sha256")
def _duckdb_sha256(value: str) -> str:  # DuckDB's sha256(VARCHAR) returns hex text
    ...


@ibis.udf.scalar.builtin(name="to_json")
def _duckdb_to_json(value: str) -> dt.JSON: ...


@ibis.udf.scalar.builtin(name="strlen")
def _duckdb_strlen(value: str) -> int: ...


@ibis.udf.scalar.builtin(name="epoch_us")
def _duckdb_epoch_us(instant: dt.Timestamp(timezone="UTC")) -> dt.int64:  # type: ignore[valid-type, empty-body]
    ...


@ibis.udf.scalar.builtin(name="make_timestamp")
def _duckdb_make_timestamp(micros: dt.int64) -> dt.timestamp:  # type: ignore[empty-body]
    ...


@ibis.udf.scalar.builtin(name="json_extract_string")
def _duckdb_json_text(doc: dt.JSON, path: str) -> str: ...


def _arrow_mapper() -> type:
    """What ibis's ``DuckDBPyArrowData`` does: NULL-typed columns and scalars stay NULL."""
    global _MAPPER
    if _MAPPER is None:
        from ibis.formats.pyarrow import PyArrowData

        class _DuckDBArrow(PyArrowData):
            @classmethod
            def convert_scalar(cls, scalar: pa.Scalar, dtype: dt.DataType) -> pa.Scalar:
                return pa.scalar(None) if dtype.is_null() else super().convert_scalar(scalar,
                                                                                     dtype)

            @classmethod
            def convert_column(cls, column: pa.Array, dtype: dt.DataType) -> pa.Array:
                return pa.nulls(len(column)) if dtype.is_null() else super().convert_column(
                    column, dtype)

        _MAPPER = _DuckDBArrow
    return _MAPPER


_MAPPER: type | None = None


@functools.lru_cache(maxsize=1024)
def _exists_sql(name: str) -> str:
    """The query of :meth:`DuckDBEngine.exists` for one name (the name a quoted literal),
    compiled once: a run asks about the same few dozen tables."""
    def named(function: str, column: str) -> sge.Select:
        return sg.select(sge.convert(1)).from_(sge.Anonymous(this=function)).where(
            sg.column("database_name").isin(sge.CurrentCatalog(), sge.convert("temp")),
            sg.column("schema_name").eq(sge.CurrentSchema()),
            sg.column(column).eq(sge.convert(name)))

    return sge.union(named("duckdb_tables", "table_name"), named("duckdb_views", "view_name"),
                     distinct=False).sql(dialect="duckdb")
