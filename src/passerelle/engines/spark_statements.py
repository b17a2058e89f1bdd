"""Statements the pipeline builds with sqlglot, carried out on Spark's Parquet tables.

Parquet folders are immutable: ``DELETE`` and ``UPDATE`` become a ``SELECT`` of the rows to
keep (or of the updated rows) written as the table's new folder; ``ALTER TABLE`` and
``DROP``/``CREATE`` go through the engine's catalog; transaction statements do nothing
(declared: ``capabilities.transactions`` is False). Anything else is handed to Spark SQL.
"""

from __future__ import annotations

from typing import Any

import ibis
import sqlglot as sg
import sqlglot.expressions as sge

from passerelle.errors import EngineError

# the SparkEngine (not imported: it imports this module)
SparkEngine = Any


def run_statement(engine: SparkEngine, statement: sge.Expression) -> list[tuple]:
    if isinstance(statement, (sge.Transaction, sge.Commit, sge.Rollback)):
        return []
    if isinstance(statement, sge.Delete):
        return _delete(engine, statement)
    if isinstance(statement, sge.Update):
        return _update(engine, statement)
    if isinstance(statement, sge.Alter):
        return _alter(engine, statement)
    if isinstance(statement, sge.Drop) and statement.args.get("kind") in ("TABLE", "VIEW"):
        name = _name(statement.this)
        if statement.args.get("kind") == "VIEW":
            engine.session.catalog.dropTempView(name)
            engine.record_view(name, None)
        else:
            engine.drop_table(name)
        return []
    if isinstance(statement, sge.Create) and statement.args.get("kind") == "INDEX":
        return []  # Parquet has no indexes: its row groups' statistics serve the same end
    if isinstance(statement, sge.Create) and statement.args.get("kind") == "TABLE":
        return _create(engine, statement)
    if isinstance(statement, sge.Insert):
        if statement.args.get("conflict") is not None:
            raise EngineError("INSERT ... ON CONFLICT (an upsert) is not available on the "
                              "Spark engine.")
        rows = engine._run(statement.sql(dialect=engine.dialect))
        engine.refresh(_name(statement.this.this if isinstance(statement.this, sge.Schema)
                             else statement.this))
        return rows
    return engine._run(statement.sql(dialect=engine.dialect))


def _name(table: sge.Expression) -> str:
    if isinstance(table, sge.Schema):
        table = table.this
    if isinstance(table, sge.Table):
        return table.name
    return table.name if hasattr(table, "name") else str(table)


def _rewrite(engine: SparkEngine, table: str, query: sge.Select) -> None:
    engine.write_table(table, engine.session.sql(query.sql(dialect=engine.dialect)))


def _delete(engine: SparkEngine, statement: sge.Delete) -> list[tuple]:
    table = _name(statement.this)
    if table not in engine.base_tables():
        raise EngineError(f"DELETE from {table!r}: no such table in the Spark warehouse.")
    where = statement.args.get("where")
    source = sg.table(table, quoted=True)
    if where is None:
        query = sg.select("*").from_(source).where(sge.false())
    else:
        # keep the rows the condition does not hold for (NULL counts as not holding)
        condition = where.this
        query = sg.select("*").from_(source).where(
            sge.not_(sge.Coalesce(this=condition.copy(), expressions=[sge.false()])))
    _rewrite(engine, table, query)
    return []


_MATCHED = "__passerelle_matched"


def _update(engine: SparkEngine, statement: sge.Update) -> list[tuple]:
    """``UPDATE t SET c = v [FROM r] WHERE cond`` as ``SELECT IF(cond, v, c) AS c ... FROM t``
    (with ``FROM r``: a LEFT JOIN of ``r`` on ``cond``, the rows of ``t`` that found one
    updated)."""
    table = _name(statement.this)
    columns = engine.table(table).columns
    sets: dict[str, sge.Expression] = {}
    for assignment in statement.expressions:
        sets[assignment.this.name] = assignment.expression
    unknown = set(sets) - set(columns)
    if unknown:
        raise EngineError(f"UPDATE {table!r}: no column {', '.join(sorted(unknown))}.")
    where = statement.args.get("where")
    source = statement.args.get("from_")
    query = sg.select().from_(sg.table(table, quoted=True))
    condition: sge.Expression | None = None
    if source is not None:
        other = source.this
        alias = other.args.get("alias")
        if alias is None and isinstance(other, sge.Table):
            alias = sge.TableAlias(this=sg.to_identifier(other.name))
            other = other.copy()
        if alias is None:
            raise EngineError("UPDATE ... FROM needs an alias for its source on Spark.")
        inner = other.copy()
        inner.set("alias", alias.copy())
        marked = sg.select(sge.Star(), sge.alias_(sge.true(), _MATCHED)).from_(inner)
        query = query.join(marked.subquery(sg.to_identifier(alias.name)), join_type="left",
                           on=where.this.copy() if where is not None else sge.true())
        condition = sg.column(_MATCHED, table=alias.name).is_(sge.null()).not_()
    elif where is not None:
        condition = sge.Coalesce(this=where.this.copy(), expressions=[sge.false()])
    selected: list[sge.Expression] = []
    for column in columns:
        ident = sg.column(column, table=table, quoted=True)
        if column not in sets:
            selected.append(sge.alias_(ident, column, quoted=True))
            continue
        value = sets[column].copy()
        if condition is not None:
            value = sge.If(this=condition.copy(), true=value, false=ident)
        selected.append(sge.alias_(value, column, quoted=True))
    _rewrite(engine, table, query.select(*selected))
    return []


def _alter(engine: SparkEngine, statement: sge.Alter) -> list[tuple]:
    table = _name(statement.this)
    for action in statement.args.get("actions") or []:
        if isinstance(action, sge.AlterRename):
            engine.rename(table, _name(action.this))
        elif isinstance(action, sge.ColumnDef):
            kind = action.args.get("kind")
            dtype = ibis.dtype(kind.sql(dialect=engine.dialect)) if kind is not None else None
            if dtype is None:
                raise EngineError(f"ALTER TABLE {table!r}: a new column needs a type.")
            engine.add_missing_columns(table, ibis.schema({action.name: dtype}))
        elif isinstance(action, sge.AlterColumn) and action.args.get("dtype") is not None:
            _retype(engine, table, action)
        elif isinstance(action, sge.Drop) and action.args.get("kind") == "COLUMN":
            engine.drop_columns(table, [action.this.name])
        else:
            raise EngineError(f"ALTER TABLE {action.sql()} is not available on Spark.")
    return []


def _retype(engine: SparkEngine, table: str, action: sge.AlterColumn) -> None:
    """``ALTER COLUMN c SET DATA TYPE t [USING e]``: the table rewritten with ``CAST(e AS
    t)``. Spark has no JSON type (JSON is text), so a change to JSON changes nothing."""
    dtype: sge.DataType = action.args["dtype"]
    if dtype.this == sge.DataType.Type.JSON:
        return
    column = action.this.name
    value = action.args.get("using") or sg.column(column, quoted=True)
    selected = [sge.alias_(sge.Cast(this=value.copy(), to=dtype.copy()), c, quoted=True)
                if c == column else sg.column(c, quoted=True)
                for c in engine.table(table).columns]
    _rewrite(engine, table, sg.select(*selected).from_(sg.table(table, quoted=True)))


def _create(engine: SparkEngine, statement: sge.Create) -> list[tuple]:
    target = statement.this
    name = _name(target)
    if statement.args.get("exists") and name in engine.list_tables():
        return []
    query = statement.args.get("expression")
    if query is not None:
        engine.write_table(name, engine.session.sql(query.sql(dialect=engine.dialect)))
        return []
    if not isinstance(target, sge.Schema):
        raise EngineError(f"CREATE TABLE {name!r} needs columns or a query.")
    schema: dict[str, Any] = {}
    for column in target.expressions:
        schema[column.name] = ibis.dtype(column.args["kind"].sql(dialect=engine.dialect))
    engine.con.create_table(name, schema=ibis.schema(schema), overwrite=True)
    return []
