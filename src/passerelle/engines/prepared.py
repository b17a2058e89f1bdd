"""Read queries compiled once per shape and run with bound values (DuckDB).

A page that shows one person runs a dozen small queries whose SQL is the same from one
person to the next but for a few values (the person's id, their records' ids...). Compiling
an Ibis expression costs tens of milliseconds; running it on one person's rows, a few. So a
query is described by a *shape* (a key and how many values of each kind it takes) and a
``build`` function that writes the Ibis expression from value slots. The first time a shape
is seen, ``build`` gets sentinel literals, the expression is compiled, and each sentinel in
the SQL tree becomes a named parameter (``$p0``...); then every run binds the values to the
prepared SQL. Values are never SQL text, as with Ibis literals.

The compiled SQL is kept per engine while the warehouse's catalogue (its tables and their
column counts, looked at most once a second) is unchanged; a query whose result no longer
has the compiled schema, or that the database refuses, is compiled again once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import ibis
import ibis.expr.types as ir
import pyarrow as pa
import sqlglot.expressions as sge

from passerelle.engines.quick import Value, Values, bind, refusing, shape, value_type

Build = Callable[[Mapping[str, Any]], ir.Expr]

MAX_QUERIES = 512  # shapes kept per engine (a person page uses about fifteen)
STAMP_EVERY_S = 1.0
_MARK = "\x1epasserelle-slot-{}\x1e"
_CATALOGUE = sge.select("table_name", "column_count").from_(
    sge.Anonymous(this="duckdb_tables")).where(
    sge.column("database_name").eq(sge.Anonymous(this="current_database")))


def literal(value: Value) -> ir.Scalar:
    return ibis.literal(value, value_type(value))


def literal_slots(values: Values) -> dict[str, Any]:
    """The slots of a query that is compiled every time: the values as Ibis literals."""
    return {k: [literal(x) for x in v] if isinstance(v, list | tuple) else literal(v)
            for k, v in values.items()}


@dataclass(frozen=True)
class Prepared:
    expr: ir.Expr  # the expression with sentinels (it converts results to its schema)
    sql: str
    order: tuple[tuple[str, int | None], ...]  # which value each parameter $p<n> takes
    tables: tuple[str, ...] = ()  # the tables (and common table expressions) it reads
    schema: pa.Schema | None = None  # the result's schema, known after the first run


class PreparedQueries:
    """One engine's compiled queries."""

    def __init__(self) -> None:
        self.queries: dict[Hashable, Prepared] = {}
        self.stamp: Any = None
        self.checked = 0.0
        self.guard = threading.Lock()
        self.compiled = 0  # compilations made (the tests count them)

    def run(self, engine: Any, key: Hashable, values: Values, build: Build,
            mapper: Any) -> Any:
        import duckdb

        self._check_catalogue(engine)
        full = (key, shape(values))
        with self.guard:
            found = self.queries.get(full)
        if found is not None:
            try:
                table = self._execute(engine, found, values)
            except duckdb.Error:  # a table or column the SQL names has changed
                table = None
            if table is not None and table.schema == found.schema:
                return found.expr.__pyarrow_result__(table, data_mapper=mapper)
        found = self._compile(engine, values, build)
        if found is None:  # a value the SQL does not carry as a literal: no caching
            return engine.to_arrow(build(literal_slots(values)))
        table = self._execute(engine, found, values)
        self._keep(full, replace(found, schema=table.schema))
        return found.expr.__pyarrow_result__(table, data_mapper=mapper)

    def _keep(self, full: Hashable, prepared: Prepared) -> None:
        with self.guard:
            if len(self.queries) >= MAX_QUERIES:
                self.queries.clear()
            self.queries[full] = prepared

    def _check_catalogue(self, engine: Any) -> None:
        now = time.monotonic()
        if now - self.checked < STAMP_EVERY_S:
            return
        stamp = tuple(sorted(engine.execute(_CATALOGUE)))
        with self.guard:
            if stamp != self.stamp:
                self.queries.clear()
                self.stamp = stamp
            self.checked = now

    def _compile(self, engine: Any, values: Values, build: Build) -> Prepared | None:
        found = compile_prepared(engine, values, build)
        if found is not None:
            self.compiled += 1
        return found

    def _execute(self, engine: Any, prepared: Prepared, values: Values) -> pa.Table:
        params = bind(prepared.order, values)
        with refusing(("pandas",)):  # binding text and numbers needs no pandas (quick.py)
            result = engine.con.con.execute(prepared.sql, params)
        return result.to_arrow_table()


def compile_prepared(engine: Any, values: Values, build: Build) -> Prepared | None:
    """``build(slots)`` compiled with a parameter where each value goes; None when a value
    does not reach the SQL as a literal (the query cannot be prepared)."""
    marks: dict[str, tuple[str, int | None]] = {}
    slots: dict[str, Any] = {}
    for name, v in values.items():
        if isinstance(v, list | tuple):
            slots[name] = []
            for i, x in enumerate(v):
                mark = _MARK.format(len(marks))
                marks[mark] = (name, i)
                slots[name].append(_slot(mark, x))
        else:
            mark = _MARK.format(len(marks))
            marks[mark] = (name, None)
            slots[name] = _slot(mark, v)
    expr = build(slots)
    con = engine.con
    con._run_pre_execute_hooks(expr)
    tree = con.compiler.to_sqlglot(expr.as_table())
    order: list[tuple[str, int | None]] = []
    seen: dict[str, int] = {}

    def swap(node: sge.Expression) -> sge.Expression:
        text = _marked(node)
        if text is None or text not in marks:
            return node
        if text not in seen:
            seen[text] = len(order)
            order.append(marks[text])
        placeholder = sge.Placeholder(this=f"p{seen[text]}")
        if isinstance(node, sge.Literal) and node.is_string:
            return placeholder
        return sge.Cast(this=placeholder, to=node.args["to"])

    sql = tree.transform(swap).sql(dialect=con.dialect)
    if "\x1e" in sql or len(seen) != len(marks):
        return None
    tables = tuple(sorted({t.name for t in tree.find_all(sge.Table)}))
    return Prepared(expr, sql, tuple(order), tables)


def _slot(mark: str, value: Value) -> ir.Scalar:
    """A sentinel standing for ``value`` in the expression: text itself, or a number as a
    cast of text (the cast becomes a cast of the parameter)."""
    kind = value_type(value)
    text = ibis.literal(mark, "string")
    return text if kind == "string" else text.cast(kind)


def _marked(node: sge.Expression) -> str | None:
    if isinstance(node, sge.Literal) and node.is_string:
        return node.this
    if isinstance(node, sge.Cast) and isinstance(node.this, sge.Literal) \
            and node.this.is_string:
        return node.this.this
    return None
