"""Read queries a command runs without importing Ibis, on a DuckDB warehouse.

Importing Ibis and its DuckDB backend costs most of a second of CPU, more than everything
else `passerelle status` or `passerelle checks` does. Their queries never change from one
run to the next but for a few values, so the SQL Ibis compiles for them is kept in the
project's ``.passerelle/compiled-sql.json`` and the next run binds the values to it through
the ``duckdb`` module alone. Values are bound parameters, never SQL text
(:mod:`passerelle.engines.prepared` makes the parameters).

A compiled query is used again only while everything it depends on is unchanged: the
versions of Passerelle, Ibis, sqlglot and DuckDB, the code of the function that builds the
query, the shape of its values, and the columns (names and types) of the tables it reads;
a result whose columns are not the ones compiled, or SQL the database refuses, is compiled
again. Other engines compile every time, as before.

This module imports neither Ibis nor pyarrow nor sqlglot; ``duckdb`` only when a query runs.
"""

from __future__ import annotations

import functools
import hashlib
import marshal
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from passerelle.errors import EngineError
from passerelle.verdicts import read_kept, write_kept

Value = str | int | float
Values = Mapping[str, Value | Sequence[Value]]
CACHE_FILE = Path(".passerelle") / "compiled-sql.json"
_LIBRARIES = ("ibis-framework", "sqlglot", "duckdb")
MAX_KEPT = 256  # queries kept (a command keeps one or two)


class DuckDBFile:
    """The ``duckdb`` connection to a warehouse file, opened on first use: the one Ibis
    backend a :class:`~passerelle.engines.duckdb.DuckDBEngine` wraps, when it needs one."""

    def __init__(self, path: Path | str, threads: int | None = None,
                 memory_limit: str | None = None, read_only: bool = False) -> None:
        self.path = Path(path)
        self.threads = threads
        self.memory_limit = memory_limit
        self.read_only = read_only
        self._con: Any = None

    @property
    def connection(self) -> Any:
        if self._con is None:
            self._con = self._connect()
        return self._con

    @property
    def is_open(self) -> bool:
        return self._con is not None

    def _connect(self) -> Any:
        import duckdb

        # No table promises an order (every reader sorts what it shows), and letting DuckDB
        # write in any order makes large INSERT ... SELECT and CREATE TABLE ... AS parallel
        # and lighter on memory (measured: a 4M-row trait insert 8.0 s -> 5.0 s on 2 cores).
        config: dict[str, Any] = {"preserve_insertion_order": False}
        if self.threads:
            config["threads"] = self.threads
        if self.memory_limit:
            config["memory_limit"] = self.memory_limit
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            con = duckdb.connect(_database(self.path), read_only=self.read_only,
                                 config=config)
        except duckdb.IOException as exc:
            if "lock" in str(exc).lower():
                raise EngineError(
                    f"The warehouse {self.path} is in use by another process.",
                    "DuckDB allows one writer at a time: wait for the other run to finish, or "
                    "stop `passerelle serve` (it runs pipelines itself).",
                ) from exc
            raise EngineError(f"Cannot open the warehouse {self.path}: {exc}") from exc
        # What Ibis sets on every connection it makes: times in UTC, and no Python variable
        # ever read as a table.
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET python_enable_replacements = false")
        return con

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None


def _database(path: Path) -> str:
    """What ``duckdb.connect`` is given: a file by its absolute path, an in-memory or
    MotherDuck database by its name (as Ibis does)."""
    name = str(path)
    return name if name.startswith((":memory:", "md:", "motherduck:")) else str(path.absolute())


def value_type(value: Value) -> str:
    if isinstance(value, bool):
        raise TypeError("a prepared query takes text and numbers, not booleans")
    return "string" if isinstance(value, str) else \
        "int64" if isinstance(value, int) else "float64"


def shape(values: Values) -> tuple[Any, ...]:
    """What the SQL depends on besides the values: each name, with its type or its length."""
    return tuple((name, (len(v), *(value_type(x) for x in v)) if isinstance(v, list | tuple)
                  else value_type(v)) for name, v in sorted(values.items()))


def bind(order: Sequence[tuple[str, int | None]], values: Values) -> dict[str, Value]:
    """The parameters ``$p0``, ``$p1``... of compiled SQL: which value each one takes."""
    return {f"p{i}": values[name] if index is None else values[name][index]  # type: ignore[index]
            for i, (name, index) in enumerate(order)}


def exists(file: DuckDBFile, table: str) -> bool:
    """Whether the warehouse has this table or view (what ``Engine.exists`` answers)."""
    return table in _columns(file.connection)


def catalogue(file: DuckDBFile) -> str:
    """A digest of the warehouse's tables and views: each one's columns (name, type) and
    each view's SQL. What a result derived from the catalogue alone is kept for."""
    views = file.connection.execute(
        "SELECT view_name, sql FROM duckdb_views() WHERE database_name = current_database() "
        "AND schema_name = current_schema() AND NOT internal ORDER BY view_name").fetchall()
    text = repr([sorted(_columns(file.connection).items()), views])
    return hashlib.sha256(text.encode()).hexdigest()


def _columns(con: Any) -> dict[str, list[tuple[str, str]]]:
    """Each table and view of the warehouse with its columns (name, type), in order.

    No bound parameter: binding one makes the duckdb module import pandas (half a second)."""
    tables: dict[str, list[tuple[str, str]]] = {}
    for table, column, kind in con.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_catalog = current_database() AND table_schema = current_schema() "
            "ORDER BY table_name, ordinal_position").fetchall():
        tables.setdefault(table, []).append((column, kind))
    return tables


def read_rows(root: Path, file: DuckDBFile, key: str, values: Values,
              build: Callable[[Mapping[str, Any]], Any], engine: Callable[[], Any]
              ) -> list[dict[str, Any]]:
    """The rows of the query ``build(slots)`` makes (an Ibis expression of a table), as
    dicts, with ``values`` bound. ``key`` names the query; ``engine()`` gives the
    :class:`~passerelle.engines.duckdb.DuckDBEngine` of ``file``, only called to compile."""
    import duckdb

    con = file.connection
    cache = _Cache(root / CACHE_FILE)
    name = f"{key} {shape(values)} {_code_hash(build)}"
    entry = cache.get(name)
    if entry is not None and entry["stamp"] == _stamp(con, entry["tables"]):
        try:
            columns, rows = _execute(con, entry, values)
        except duckdb.Error:  # a table or column the SQL names has changed
            columns, rows = None, []
        if columns == entry["columns"]:
            return rows
    prepared = engine().compile_prepared(values, build)
    if prepared is None:  # a value the SQL does not carry as a literal: no caching
        return engine().prepared(key, values, build).to_pylist()
    entry = {"sql": prepared.sql, "order": [list(o) for o in prepared.order],
             "tables": list(prepared.tables), "stamp": _stamp(con, prepared.tables)}
    columns, rows = _execute(con, entry, values)
    cache.put(name, {**entry, "columns": columns})
    return rows


def _execute(con: Any, entry: dict[str, Any], values: Values
             ) -> tuple[list[str], list[dict[str, Any]]]:
    params = bind([tuple(o) for o in entry["order"]], values)
    if params:
        with refusing(("pandas", "numpy")):
            result = con.execute(entry["sql"], params)
    else:
        result = con.execute(entry["sql"])
    columns = [d[0] for d in result.description]
    return columns, [dict(zip(columns, row, strict=True)) for row in result.fetchall()]


@contextmanager
def refusing(modules: Sequence[str]) -> Iterator[None]:
    """Imports of ``modules`` (not yet imported) fail in this thread for the duration.

    Binding a parameter makes the duckdb module import pandas and numpy (half a second of
    CPU) to recognise their values; ours are text and numbers, which it converts without
    them, and it still finds pandas when it is imported later (tested)."""
    refused = tuple(m for m in modules if m not in sys.modules)
    if not refused:
        yield
        return
    finder = _Refuse(refused, threading.get_ident())
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)


class _Refuse:
    def __init__(self, modules: tuple[str, ...], thread: int) -> None:
        self.modules, self.thread = modules, thread

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name.partition(".")[0] in self.modules and threading.get_ident() == self.thread:
            raise ModuleNotFoundError(f"{name} is not imported to bind values", name=name)


def _stamp(con: Any, tables: Sequence[str]) -> str:
    """The columns (name, type) of ``tables``: compiled SQL holds for these only."""
    columns = _columns(con)
    return hashlib.sha256(repr([(t, columns.get(t)) for t in tables]).encode()).hexdigest()


def _code_hash(build: Callable[..., Any]) -> str:
    """The build function's code (its text may change without a version change)."""
    return hashlib.sha256(marshal.dumps(build.__code__)).hexdigest()[:16]


@functools.cache
def _versions() -> str:
    from importlib.metadata import version

    from passerelle import __version__

    return " ".join([f"passerelle {__version__}", *(f"{n} {version(n)}" for n in _LIBRARIES)])


class _Cache:
    """``.passerelle/compiled-sql.json``: compiled SQL by query, for these library versions.
    A file that cannot be read or written is no error: queries are then compiled again."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.versions = _versions()
        self.queries: dict[str, Any] = read_kept(path, "versions", self.versions, "queries")

    def get(self, name: str) -> dict[str, Any] | None:
        entry = self.queries.get(name)
        return entry if isinstance(entry, dict) and {"sql", "order", "tables", "stamp",
                                                     "columns"} <= entry.keys() else None

    def put(self, name: str, entry: dict[str, Any]) -> None:
        if len(self.queries) >= MAX_KEPT:  # queries of code that changed: start again
            self.queries.clear()
        self.queries[name] = entry
        write_kept(self.path, {"versions": self.versions, "queries": self.queries})
