"""The SQL of a source's incremental staging, compiled once per staging rule.

Turning staging's Ibis expression (a dozen layers of normalisation) into SQL costs a few
tenths of a CPU second, whatever the rows: for a day's 1 % of new events it was most of
the staging's cost. An incremental staging reads the new loads through a temporary view of
a fixed name (``_stg_input_<source>``), so its SQL does not depend on which loads are new
and is kept in ``_passerelle_staging_sql``, keyed by everything it is compiled from: the
staging rule (:func:`passerelle.staging.incremental.rule_fingerprint`: the source's
definition, the project's settings, the raw table's columns, Passerelle's staging code),
whether the new rows may repeat a record, the dictionaries' columns, the engine and the
versions of Ibis and sqlglot. Any change among those compiles it again.

The statement is SQL Passerelle compiled itself from the project's definition (never text
a user typed); a warehouse's writers can change what it runs, as they can change its rows.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import ibis
import ibis.expr.types as ir
import pyarrow as pa
import sqlglot as sg
import sqlglot.expressions as sge

from passerelle.engines.base import Engine
from passerelle.runlog import utcnow

TABLE = "_passerelle_staging_sql"
SCHEMA = ibis.schema({
    "source": "string", "rule": "string", "key": "string", "statement": "string",
    "dictionaries": "boolean", "compiled_at": "timestamp",
})


@dataclass(frozen=True)
class Statement:
    sql: str  # the SELECT of the staging rows, reading the input view
    dictionaries: bool  # the rows join dictionaries, which must be filled first


def statement_key(engine: Engine, rule: str, repeats: bool,
                  dictionary_columns: dict[str, list[str]]) -> str:
    """What the compiled SQL depends on besides the rule (see the module's text)."""
    parts = [rule, engine.name, engine.dialect, ibis.__version__, sg.__version__,
             str(repeats), json.dumps(dictionary_columns, sort_keys=True)]
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def lookup(engine: Engine, source: str, key: str) -> Statement | None:
    if not engine.exists(TABLE):
        return None
    query = (sg.select("statement", "dictionaries").from_(sg.table(TABLE, quoted=True))
             .where(sge.and_(sg.column("source", quoted=True).eq(sge.convert(source)),
                             sg.column("key", quoted=True).eq(sge.convert(key))))
             .limit(1))
    rows = engine.execute(query)
    return Statement(rows[0][0], bool(rows[0][1])) if rows else None


def keep(engine: Engine, source: str, rule: str, key: str, statement: Statement) -> None:
    """Keep ``statement`` for ``source``; those compiled under another rule go."""
    engine.create_empty(TABLE, SCHEMA)
    engine.execute(sge.delete(sg.table(TABLE, quoted=True), where=sge.and_(
        sg.column("source", quoted=True).eq(sge.convert(source)),
        sge.or_(sg.column("rule", quoted=True).neq(sge.convert(rule)),
                sg.column("key", quoted=True).eq(sge.convert(key))))))
    row = pa.table({"source": [source], "rule": [rule], "key": [key],
                    "statement": [statement.sql], "dictionaries": [statement.dictionaries],
                    "compiled_at": [utcnow()]}, schema=SCHEMA.to_pyarrow())
    engine.append_arrow(TABLE, row.to_reader())



@contextmanager
def input_view(engine: Engine, source: str, rows: ir.Table) -> Iterator[ir.Table]:
    """``rows`` as the temporary view the kept statements of ``source`` read."""
    name = f"_stg_input_{source}"
    engine.temp_view(name, rows)
    try:
        yield engine.table(name)
    finally:
        engine.drop_view(name)


def kept_statement(engine: Engine, source: str, rule: str, view: ir.Table, repeats: bool,
                   dictionaries: list[str], compile_: Callable[..., Any],
                   fill: Callable[[Any], dict[str, int]] | None = None,
                   ) -> tuple[Statement, dict[str, int]]:
    """The statement kept for staging the rows of ``view`` (:func:`input_view`), compiled
    with ``compile_`` (:func:`passerelle.staging.stage.compile_staging` bound to the
    source) and kept if there is none yet; with ``fill``, the dictionaries it joins are
    filled first (``fill`` returns the values sent to Python, returned too)."""
    key = statement_key(engine, rule, repeats,
                        {name: engine.table(name).columns for name in dictionaries})
    kept = lookup(engine, source, key)
    sent: dict[str, int] = {}
    if kept is None or (fill is not None and kept.dictionaries):
        compiled = compile_(rows=view, repeats=repeats)
        if fill is not None:
            sent = fill(compiled)
        if kept is None:
            kept = Statement(engine.layered_sql(compiled.rows), bool(compiled.dictionary_keys))
            keep(engine, source, rule, key, kept)
    return kept, sent
