"""What every warehouse engine offers the pipeline.

The pipeline writes transformations as Ibis expressions; an engine adds what Ibis leaves
to each backend: bulk appends from Arrow, statements built with sqlglot, transactions and
the error messages a user can act on. Differences between engines are declared as
capabilities here rather than tested with ``if dialect == ...`` elsewhere.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import ibis
import ibis.backends.sql.dialects
import ibis.expr.datatypes as dt
import ibis.expr.types as ir
import pyarrow as pa
import sqlglot as sg
import sqlglot.expressions as sge

from passerelle.errors import EngineError

# Ibis patches sqlglot's dialects (Postgres ``make_date``, ``string_to_array``...) when
# ``ibis.backends.sql.dialects`` is imported, but sqlglot 30 caches each generator's
# dispatch table the first time it generates SQL. Importing it here, before any engine
# turns a statement into SQL, keeps the patches from being silently lost.


@dataclass(frozen=True)
class Capabilities:
    single_writer: bool  # one process may write at a time (DuckDB file)
    scans_arrow: bool  # can INSERT ... SELECT from an Arrow stream without a copy
    transactions: bool = True  # statements in transaction() commit together (not Spark)
    temporary_tables: bool = True  # session-local tables for scratch work (not Spark)


class Engine(ABC):
    """A connection to the warehouse through Ibis, plus bulk paths and statements."""

    name: str
    dialect: str
    capabilities: Capabilities

    def __init__(self) -> None:
        self._con: Any = None
        self.transaction_depth = 0
        # Answers that hold while one read-only page is built (web.cache.same_tables sets
        # it to a dict, then back to None): what the page asks twice is computed once.
        self.page_memo: dict[str, Any] | None = None

    # -- connection -------------------------------------------------------------------
    @property
    def con(self) -> Any:
        """The Ibis backend, connected on first use."""
        if self._con is None:
            self._con = self._connect()
        return self._con

    @abstractmethod
    def _connect(self) -> Any: ...

    def close(self) -> None:
        if self._con is not None:
            self._con.disconnect()
            self._con = None

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def connection_error(self, exc: BaseException) -> EngineError | None:
        """``exc`` (raised by this engine, Ibis or a library using its database) as the
        :class:`EngineError` a user sees when it means the warehouse server refused or
        dropped the connection; None for any other error. An embedded engine has no server."""
        return None

    # -- tables -----------------------------------------------------------------------
    def table(self, name: str) -> ir.Table:
        return self.con.table(name)

    def exists(self, name: str) -> bool:
        return name in self.con.list_tables()

    def list_tables(self, like: str | None = None) -> list[str]:
        return self.con.list_tables(like=like)

    def base_tables(self) -> list[str]:
        """The tables of the project, views left out (they hold no rows of their own)."""
        info = sg.table("tables", db="information_schema")
        query = sg.select("table_name").from_(info).where(sge.and_(
            sg.column("table_type").eq(sge.convert("BASE TABLE")),
            sg.column("table_schema").eq(sge.Anonymous(this="current_schema", expressions=[]))))
        return sorted(r[0] for r in self.execute(query))

    def replace_table(self, name: str, expr: ir.Table) -> None:
        """Materialise ``expr`` as ``name``, replacing the previous table atomically."""
        self.con.create_table(name, obj=expr, overwrite=True)

    def replace_layered_table(self, name: str, expr: ir.Table, temp: bool = False) -> None:
        """:meth:`replace_table` for an expression built as many layers of columns, each
        computed from the previous layer's (staging's normalisation); ``temp``: as a
        :meth:`scratch_table`. Engines whose planner copies a subquery's expressions into
        every place the next layer uses them override this to keep the layers apart."""
        if temp:
            self.scratch_table(name, expr)
        else:
            self.replace_table(name, expr)

    def index_on(self, table: str, column: str) -> None:
        """Make lookups of one value of ``column`` read few rows. Here nothing: DuckDB skips
        the row groups whose min/max cannot hold the value, so a table written sorted on
        the column needs no index; engines with indexes create one."""
        return None

    def stored_sorted(self, table: str, column: str) -> bool | None:
        """Whether ``table``'s rows are stored in the order of ``column`` (a table written
        sorted can be read by ranges of it); None where the engine does not read by the
        rows' order (its :meth:`index_on` makes an index)."""
        return None

    def scratch_table(self, name: str, expr: ir.Table) -> ir.Table:
        """Materialise a work table that only this connection reads and that the step drops
        when done; returns it. A temporary table: never written to the warehouse file nor
        checkpointed on DuckDB (spilled under its memory limit), session-local on
        PostgreSQL. Never for a table another connection reads (Splink's PostgreSQL backend
        has its own)."""
        self.con.create_table(name, obj=expr, temp=True, overwrite=True)
        return self.table(name)

    def layered_sql(self, expr: ir.Table) -> str:
        """The SELECT :meth:`replace_layered_table` materialises for ``expr``, as SQL text
        to keep and run again with :meth:`scratch_table_from_sql` (compiling a large
        expression costs tenths of a second; running the text, nothing)."""
        return self.con.compiler.to_sqlglot(expr).sql(dialect=self.dialect)

    def scratch_table_from_sql(self, name: str, select_sql: str) -> None:
        """:meth:`scratch_table` from a SELECT given as SQL text that Passerelle compiled
        (:meth:`layered_sql`), never text a user wrote."""
        target = sg.table(name, quoted=True)
        self.execute(sge.Drop(this=target, kind="TABLE", exists=True))
        self._run(f"CREATE TEMPORARY TABLE {target.sql(dialect=self.dialect)} AS {select_sql}")

    def temp_view(self, name: str, expr: ir.Table) -> None:
        """Create or replace a session-local view of ``expr`` (engines with
        ``temporary_tables``); :meth:`drop_view` drops it."""
        view = sg.table(name, quoted=True).sql(dialect=self.dialect)
        self._run(f"CREATE OR REPLACE TEMPORARY VIEW {view} AS {self.layered_sql(expr)}")

    def drop_view(self, name: str) -> None:
        self.execute(sge.Drop(this=sg.table(name, quoted=True), kind="VIEW", exists=True))

    def create_empty(self, name: str, schema: ibis.Schema) -> None:
        if not self.exists(name):
            self.con.create_table(name, schema=schema)

    def drop(self, name: str, cascade: bool = False) -> None:
        """Drop a table if it exists; ``cascade`` also drops the views built on it (on
        PostgreSQL, which binds views to tables; DuckDB re-reads a view's tables by name)."""
        if cascade and self.exists(name):
            self.execute(sge.Drop(this=sg.table(name, quoted=True), kind="TABLE", exists=True,
                                  cascade=True))
            return
        self.con.drop_table(name, force=True)

    def count(self, name: str) -> int:
        return int(self.table(name).count().to_pyarrow().as_py())

    def to_arrow(self, expr: ir.Expr) -> pa.Table:
        return self.con.to_pyarrow(expr)

    def prepared(self, key: Hashable, values: Mapping[str, Any],
                 build: Callable[[Mapping[str, Any]], ir.Expr]) -> Any:
        """The result of ``build(slots)`` (as :meth:`to_arrow` gives it) where each slot
        stands for one of ``values`` (text or a number, or a list of them). ``key`` names
        the query: its SQL depends only on the key and how many values each name has. An
        engine that prepares statements compiles it once per shape
        (:mod:`passerelle.engines.prepared`); here it is compiled every time."""
        from passerelle.engines.prepared import literal_slots

        return self.to_arrow(build(literal_slots(values)))

    @abstractmethod
    def sha256_hex(self, value: ir.StringValue) -> ir.StringValue:
        """SHA-256 of the UTF-8 text, as 64 lower-case hex digits (NULL stays NULL)."""

    def byte_length(self, value: ir.StringValue) -> ir.IntegerValue:
        """Length of the UTF-8 text in bytes (``octet_length``; DuckDB spells it
        ``strlen``), as wire protocols count it."""
        return _octet_length(value)

    def json_string(self, value: ir.StringValue) -> ir.StringValue:
        """Text as a JSON string, quotes included (NULL stays NULL): backslash, quote and
        control characters escaped; the replacements only for the rare text that needs
        them (a CASE evaluates its branch for those rows alone)."""
        out = value.replace("\\", "\\\\").replace('"', '\\"')
        for code in range(1, 32):
            out = out.replace(chr(code), f"\\u{code:04x}")
        return '"' + ibis.ifelse(value.re_search('[\\\\"\x01-\x1f]'), out, value) + '"'

    def strip(self, value: ir.StringValue) -> ir.StringValue:
        """``value`` without leading and trailing white space, as Ibis's ``strip()``."""
        return value.strip()

    def naive_utc(self, instant: ir.TimestampValue) -> ir.TimestampValue:
        """An instant (a timestamp with a time zone) as the naive UTC timestamp Passerelle
        stores: ``timezone('UTC', instant)``, which DuckDB and PostgreSQL share and Spark's
        compiler spells its way."""
        return _wall_clock("UTC", instant)

    @abstractmethod
    def json_text(self, doc: ir.JSONValue, key: str) -> ir.StringValue:
        """The top-level property ``key`` of a JSON document as text (NULL when absent).
        Any key works, quotes, dots and ``$`` included: it stays a literal, never a path
        for sqlglot to parse (which fails on quotes, and reads ``a.b`` as nested)."""

    # -- statements -------------------------------------------------------------------
    def execute(self, statement: sge.Expression) -> list[tuple]:
        """Run a statement built with sqlglot (never from user text) and fetch all rows."""
        return self._run(statement.sql(dialect=self.dialect))

    @abstractmethod
    def _run(self, sql: str) -> list[tuple]: ...

    def delete_where_in(self, table: str, column: str, values: Sequence[Any]) -> None:
        if not values or not self.exists(table):
            return
        stmt = sge.delete(
            sg.table(table, quoted=True),
            where=sg.column(column, quoted=True).isin(*[sge.convert(v) for v in values]),
        )
        self.execute(stmt)

    def add_missing_columns(self, table: str, schema: ibis.Schema) -> list[str]:
        """Add the columns of ``schema`` that ``table`` lacks (a source grew a column)."""
        existing = set(self.table(table).columns)
        missing = ibis.schema({c: t for c, t in schema.items() if c not in existing})
        for column_def in missing.to_sqlglot_column_defs(self.dialect):
            self.execute(
                sge.Alter(this=sg.table(table, quoted=True), kind="TABLE", actions=[column_def])
            )
        return list(missing.names)

    def drop_columns(self, table: str, columns: Sequence[str]) -> None:
        for column in columns:
            self.execute(sge.Alter(this=sg.table(table, quoted=True), kind="TABLE", actions=[
                sge.Drop(this=sg.to_identifier(column, quoted=True), kind="COLUMN")]))

    def rename(self, old: str, new: str) -> None:
        """Rename a table (metadata only: no copy of the rows)."""
        self.execute(sge.Alter(this=sg.table(old, quoted=True), kind="TABLE",
                               actions=[sge.AlterRename(this=sg.table(new, quoted=True))]))

    def checkpoint(self) -> None:
        """Make what was committed durable in the database itself (nothing to do but on
        DuckDB, whose write-ahead log is otherwise replayed at the next open)."""
        return None

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Statements inside are committed together or not at all."""
        self.execute(sge.Transaction())
        # counted so that the server's worker never lets a reader onto this connection
        # while a transaction is open (see passerelle.jobs.worker)
        self.transaction_depth += 1
        try:
            yield
        except BaseException:
            self.execute(sge.Rollback())
            raise
        finally:
            self.transaction_depth -= 1
        self.execute(sge.Commit())

    # -- bulk loading -----------------------------------------------------------------
    @abstractmethod
    def append_arrow(self, table: str, batches: pa.RecordBatchReader) -> int:
        """Append every batch to ``table`` (created from the stream's schema if missing)
        through the engine's bulk path. Returns the number of rows appended."""


@ibis.udf.scalar.builtin(name="octet_length")
def _octet_length(value: str) -> int: ...


@ibis.udf.scalar.builtin(name="timezone")
def _wall_clock(zone: str, instant: dt.Timestamp(timezone="UTC")) -> dt.timestamp:  # type: ignore[valid-type, empty-body]
    """``timezone(zone, instant)``: the wall-clock time of ``instant`` in ``zone``, naive."""
