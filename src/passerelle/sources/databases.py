"""Database connectors: a PostgreSQL or MySQL/MariaDB table, read in Arrow batches.

Rows are streamed (psycopg server-side cursor, pymysql ``SSCursor``) in batches of
``BATCH_ROWS`` and converted column by column to Arrow with types taken from the source's
catalogue, so a batch of NULLs keeps its column's type. Values Arrow has no faithful type
for (JSON, arrays, UUID, unconstrained numeric, intervals...) are cast to text by the
source database itself. Every statement is a sqlglot expression with quoted identifiers;
the one value (the high-water mark) is a bound parameter or a sqlglot literal.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import sqlglot as sg
import sqlglot.expressions as sge

from passerelle.errors import ConnectorError
from passerelle.project.models import MySQLConnector, PostgresConnector

BATCH_ROWS = 50_000
DbConnector = PostgresConnector | MySQLConnector


@dataclass(frozen=True)
class SourceColumn:
    name: str
    arrow: pa.DataType
    as_text: bool  # cast to text in the source query
    as_json: bool = False  # arrays: to JSON text in the source query


def unit_name(connector: DbConnector) -> str:
    """The load unit's name in ``_source_file`` and the ledger: ``postgres:schema.table``."""
    return f"{connector.type}:{connector.table}"


def _where(connector: DbConnector) -> str:
    return f"{connector.type} at {connector.host}:{connector.port}/{connector.database}"


def _connect_error(connector: DbConnector, exc: BaseException) -> ConnectorError:
    kind = "PostgreSQL" if isinstance(connector, PostgresConnector) else "MySQL/MariaDB"
    return ConnectorError(
        f"Cannot connect to {kind} at {connector.host}:{connector.port} "
        f"(database {connector.database!r}, user {connector.user!r}): {str(exc).strip()}",
        "Check that the server runs and accepts connections from this machine, and that "
        "host, port, user, password and database in the source file are right.",
    )


def _password(connector: DbConnector) -> str | None:
    return connector.password.get_secret_value() if connector.password else None


def _split(table: str) -> tuple[str | None, str]:
    schema, _, name = table.rpartition(".")
    return schema or None, name


def _table_expr(connector: DbConnector) -> sge.Table:
    schema, name = _split(connector.table)
    return sg.table(name, db=schema, quoted=True)


# ------------------------------------------------------------------------- PostgreSQL
_PG_TYPES: dict[str, pa.DataType] = {
    "int2": pa.int16(), "int4": pa.int32(), "int8": pa.int64(),
    "float4": pa.float32(), "float8": pa.float64(), "bool": pa.bool_(),
    "text": pa.string(), "varchar": pa.string(), "bpchar": pa.string(), "name": pa.string(),
    "citext": pa.string(), "date": pa.date32(), "timestamp": pa.timestamp("us"),
    "timestamptz": pa.timestamp("us", tz="UTC"), "time": pa.time64("us"),
}


def _pg_column(name: str, typname: str, category: str, typmod: int) -> SourceColumn:
    if typname == "numeric" and typmod >= 4:
        precision, scale = ((typmod - 4) >> 16) & 0xFFFF, (typmod - 4) & 0xFFFF
        if precision <= 38:
            return SourceColumn(name, pa.decimal128(precision, scale), False)
    if typname in _PG_TYPES:
        return SourceColumn(name, _PG_TYPES[typname], False)
    # json(b), uuid, enums, unconstrained numeric... as text; arrays as JSON text
    return SourceColumn(name, pa.string(), True, as_json=category == "A")


def _pg_connect(connector: PostgresConnector, application_name: str = "passerelle"):
    import psycopg

    try:
        return psycopg.connect(host=connector.host, port=connector.port, user=connector.user,
                               password=_password(connector), dbname=connector.database,
                               connect_timeout=10, application_name=application_name[:63])
    except psycopg.OperationalError as exc:
        raise _connect_error(connector, exc) from exc


def _pg_columns(con, connector: PostgresConnector) -> list[SourceColumn]:
    qualified = _table_expr(connector).sql("postgres")
    rows = con.execute(
        "SELECT a.attname, t.typname, t.typcategory, a.atttypmod FROM pg_attribute a "
        "JOIN pg_type t ON t.oid = a.atttypid WHERE a.attrelid = to_regclass(%s) "
        "AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
        (qualified,),
    ).fetchall()
    if not rows:
        raise ConnectorError(
            f"Table {connector.table} not found in PostgreSQL database {connector.database!r} "
            f"at {connector.host}:{connector.port}.",
            "Check the table name (schema.table) and that the user may read it.",
        )
    return [_pg_column(n, t, c, m) for n, t, c, m in rows]


def _pg_cast(column: SourceColumn) -> sge.Expression:
    ident: sge.Expression = sg.column(column.name, quoted=True)
    if not column.as_text:
        return ident
    if column.as_json:
        ident = sg.func("to_json", ident)
    return sge.Alias(this=sge.cast(ident, "text"), alias=sg.to_identifier(column.name, quoted=True))


# ----------------------------------------------------------------------------- MySQL
_MY_TYPES: dict[str, pa.DataType] = {
    "tinyint": pa.int64(), "smallint": pa.int64(), "mediumint": pa.int64(), "int": pa.int64(),
    "integer": pa.int64(), "bigint": pa.int64(), "year": pa.int64(),
    "float": pa.float32(), "double": pa.float64(), "real": pa.float64(),
    "date": pa.date32(), "datetime": pa.timestamp("us"), "timestamp": pa.timestamp("us"),
    "char": pa.string(), "varchar": pa.string(), "tinytext": pa.string(), "text": pa.string(),
    "mediumtext": pa.string(), "longtext": pa.string(), "enum": pa.string(), "set": pa.string(),
    "json": pa.string(),
    "binary": pa.binary(), "varbinary": pa.binary(), "tinyblob": pa.binary(),
    "blob": pa.binary(), "mediumblob": pa.binary(), "longblob": pa.binary(),
}


def _my_column(name: str, data_type: str, column_type: str, precision: Any,
               scale: Any) -> SourceColumn:
    data_type = data_type.lower()
    if data_type == "decimal" and precision is not None and int(precision) <= 38:
        return SourceColumn(name, pa.decimal128(int(precision), int(scale or 0)), False)
    if data_type == "bigint" and "unsigned" in column_type.lower():
        return SourceColumn(name, pa.decimal128(20, 0), False)
    if data_type in _MY_TYPES:
        return SourceColumn(name, _MY_TYPES[data_type], False)
    return SourceColumn(name, pa.string(), True)  # time, bit, geometry, ...


def _my_connect(connector: MySQLConnector):
    import pymysql

    try:
        return pymysql.connect(host=connector.host, port=connector.port, user=connector.user,
                               password=_password(connector) or "", database=connector.database,
                               connect_timeout=10, charset="utf8mb4")
    except pymysql.err.OperationalError as exc:
        raise _connect_error(connector, exc) from exc


def _my_columns(con, connector: MySQLConnector) -> list[SourceColumn]:
    schema, name = _split(connector.table)
    with con.cursor() as cursor:
        cursor.execute(
            "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, NUMERIC_PRECISION, NUMERIC_SCALE "
            "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s "
            "ORDER BY ORDINAL_POSITION",
            (schema or connector.database, name),
        )
        rows = cursor.fetchall()
    if not rows:
        raise ConnectorError(
            f"Table {connector.table} not found in MySQL database {connector.database!r} "
            f"at {connector.host}:{connector.port}.",
            "Check the table name and that the user may read it.",
        )
    return [_my_column(*row) for row in rows]


def _my_cast(column: SourceColumn) -> sge.Expression:
    ident = sg.column(column.name, quoted=True)
    if not column.as_text:
        return ident
    return sge.Alias(this=sge.cast(ident, "char"), alias=sg.to_identifier(column.name, quoted=True))


# ----------------------------------------------------------------------------- common
def _is_driver_error(exc: BaseException) -> bool:
    import psycopg
    import pymysql

    return isinstance(exc, psycopg.Error | pymysql.err.Error)


def _lost(connector: DbConnector, exc: BaseException) -> ConnectorError:
    return ConnectorError(
        f"Reading {connector.table} from {_where(connector)} failed: {str(exc).strip()}",
        "Nothing from this load was kept. Check the server and the network, then run again.",
    )


def check_connection(connector: DbConnector) -> None:
    """Connect and look the table up; raise :class:`ConnectorError` if either fails."""
    columns(connector)


def columns(connector: DbConnector) -> list[str]:
    if isinstance(connector, PostgresConnector):
        con = _pg_connect(connector)
        try:
            return [c.name for c in _pg_columns(con, connector)]
        finally:
            con.close()
    con = _my_connect(connector)
    try:
        return [c.name for c in _my_columns(con, connector)]
    finally:
        con.close()


def _select(connector: DbConnector, cols: list[SourceColumn], key: str | None,
            hwm_expr: sge.Expression | None, dialect: str) -> str:
    cast = _pg_cast if dialect == "postgres" else _my_cast
    query = sg.select(*[cast(c) for c in cols]).from_(_table_expr(connector))
    if key is not None:
        key_col = sg.column(key, quoted=True)
        if hwm_expr is not None:
            query = query.where(sge.GT(this=key_col, expression=hwm_expr))
        query = query.order_by(key_col)
    return query.sql(dialect)


def _to_batch(rows: list[tuple], schema: pa.Schema) -> pa.RecordBatch:
    """Driver rows to one Arrow batch, converted column by column with declared types."""
    arrays = [pa.array([r[i] for r in rows], type=f.type) for i, f in enumerate(schema)]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


@contextmanager
def open_table(connector: DbConnector, key: str | None, high_water_mark: str | None,
               tag: str = "passerelle") -> Iterator[pa.RecordBatchReader]:
    """Stream the table (rows with ``key`` above ``high_water_mark`` when given) as Arrow."""
    if isinstance(connector, PostgresConnector):
        con = _pg_connect(connector, tag)
        cols = _pg_columns(con, connector)
        _check_key(connector, cols, key)
        sql = _select(connector, cols, key,
                      sge.Placeholder(this="hwm") if high_water_mark is not None else None,
                      "postgres")
        params = {"hwm": high_water_mark} if high_water_mark is not None else None

        def fetch() -> Iterator[list[tuple]]:
            with con.cursor(name="passerelle_load") as cursor:
                cursor.execute(sql, params)
                while rows := cursor.fetchmany(BATCH_ROWS):
                    yield rows
    else:
        import pymysql.cursors

        con = _my_connect(connector)
        cols = _my_columns(con, connector)
        _check_key(connector, cols, key)
        sql = _select(connector, cols, key,
                      sge.convert(high_water_mark) if high_water_mark is not None else None,
                      "mysql")

        def fetch() -> Iterator[list[tuple]]:
            with con.cursor(pymysql.cursors.SSCursor) as cursor:
                cursor.execute(sql)
                while rows := cursor.fetchmany(BATCH_ROWS):
                    yield list(rows)

    schema = pa.schema([(c.name, c.arrow) for c in cols])

    def batches(fetch: Callable[[], Iterator[list[tuple]]] = fetch) -> Iterator[pa.RecordBatch]:
        try:
            for rows in fetch():
                yield _to_batch(rows, schema)
        except Exception as exc:
            if _is_driver_error(exc):
                raise _lost(connector, exc) from exc
            raise

    try:
        yield pa.RecordBatchReader.from_batches(schema, batches())
    finally:
        with suppress(Exception):  # the connection may already be gone: nothing to release
            con.close()


def _check_key(connector: DbConnector, cols: list[SourceColumn], key: str | None) -> None:
    if key is not None and key not in {c.name for c in cols}:
        raise ConnectorError(
            f"The incremental key {key!r} is not a column of {connector.table}.",
            f"Use one of: {', '.join(c.name for c in cols)}.",
        )
