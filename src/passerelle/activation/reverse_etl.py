"""Reverse ETL: write an audience's treated members into a table of a PostgreSQL or MariaDB
(MySQL) database that another application reads.

The table is created when missing (``person_id`` primary key). An existing table must have
every column Passerelle writes; extra columns are left alone (a team may add its own), a
missing one is refused by name before anything is written. The write is one transaction on
the target: ``replace`` deletes the previous rows and inserts the audience, ``upsert``
inserts or updates members by ``person_id`` and keeps the other rows. Rows travel in bulk:
PostgreSQL ``COPY`` from Arrow batches written as CSV, MariaDB ``executemany`` in chunks
(PyMySQL sends each chunk as one multi-row INSERT).
"""

from __future__ import annotations

import io
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any

import ibis
import ibis.expr.types as ir
import pyarrow as pa
import pyarrow.csv as pacsv
import sqlglot as sg
import sqlglot.expressions as sge

from passerelle.activation.log import ExportResult, finish_export, record_members, start_export
from passerelle.activation.members import (
    BASE_COLUMNS,
    consent_note,
    left_out,
    sendable_build,
    treated,
    with_fields,
)
from passerelle.engines.base import Engine
from passerelle.project.destinations_models import (
    DeliveryError,
    DestinationError,
    MySQLDestination,
    PostgresDestination,
)
from passerelle.runlog import utcnow

TRAILING_COLUMNS = ("audience", "synced_at")


def table_columns(destination: PostgresDestination | MySQLDestination) -> list[str]:
    """The columns Passerelle writes, in order."""
    return [*BASE_COLUMNS, *destination.attributes, *TRAILING_COLUMNS]


def audience_rows(engine: Engine, audience: str,
                  destination: PostgresDestination | MySQLDestination) -> ir.Table:
    fields = with_fields(engine, treated(engine, audience, destination.purpose),
                         destination.attributes)
    rows = fields.mutate(audience=ibis.literal(audience, "string"),
                         synced_at=ibis.literal(utcnow(), "timestamp"))
    return rows.select(*table_columns(destination)).order_by("person_id")


def write_table(engine: Engine, audience: str,
                destination: PostgresDestination | MySQLDestination, *,
                name: str = "database", user: str | None = None,
                allow_empty: bool = False) -> ExportResult:
    """Write the treated members of ``audience`` to the destination table and log it. An
    empty audience is refused unless ``allow_empty``."""
    sendable_build(engine, audience, allow_empty=allow_empty)
    target = _Target.of(destination)
    rows = audience_rows(engine, audience, destination)
    export_id = start_export(engine, audience, name, destination.type, target.display, user)
    result = ExportResult(export_id, audience, name, destination.type, target.display,
                          "failed", 0)
    result.no_consent, result.purpose = left_out(engine, audience, destination.purpose)
    try:
        reader = engine.con.to_pyarrow_batches(rows, chunk_size=destination.chunk_size)
        count = target.write(reader, destination)
    except Exception as exc:
        result.detail = str(exc)
        finish_export(engine, result)
        raise
    with engine.transaction():
        record_members(engine, export_id, treated(engine, audience, destination.purpose))
        result.status, result.people = "delivered", count
        result.detail = f"{destination.mode}: {count} rows" + consent_note(
            result.no_consent, result.purpose)
        finish_export(engine, result)
    return result


class _Target(ABC):
    """One target database: its dialect, connection and the statements it needs."""

    dialect: str

    def __init__(self, destination: Any) -> None:
        self.d = destination
        self.c = destination.connection
        self.columns = table_columns(destination)

    @staticmethod
    def of(destination: PostgresDestination | MySQLDestination) -> _Target:
        return _Postgres(destination) if destination.type == "postgres" else _MySQL(destination)

    # -- shared -----------------------------------------------------------------------
    @property
    def display(self) -> str:
        return f"{self.d.type}://{self.c.user}@{self.c.host}:{self.c.port}/{self.c.database}/" \
               f"{self.table_label}"

    @property
    def table_label(self) -> str:
        return self.d.table

    def table_sql(self) -> str:
        return self.table_expr().sql(self.dialect)

    def table_expr(self) -> sge.Table:
        return sg.table(self.d.table, quoted=True)

    def ident(self, name: str) -> str:
        return sg.to_identifier(name, quoted=True).sql(self.dialect)

    def create_sql(self) -> str:
        defs = []
        for col in self.columns:
            kind = "timestamp" if col == "synced_at" else self.text_type(col)
            constraints = [sge.ColumnConstraint(kind=sge.NotNullColumnConstraint()),
                           sge.ColumnConstraint(kind=sge.PrimaryKeyColumnConstraint())] \
                if col == "person_id" else []
            defs.append(sge.ColumnDef(this=sg.to_identifier(col, quoted=True),
                                      kind=sge.DataType.build(kind, dialect=self.dialect),
                                      constraints=constraints))
        return sge.Create(kind="TABLE", exists=True,
                          this=sge.Schema(this=self.table_expr(), expressions=defs)
                          ).sql(self.dialect)

    def check_columns(self, existing: list[str], unique_person_id: bool) -> None:
        missing = [c for c in self.columns if c not in existing]
        if missing:
            raise DestinationError(
                f"The table {self.table_label} exists but lacks the column"
                f"{'s' if len(missing) > 1 else ''} {', '.join(missing)} (it has: "
                f"{', '.join(existing)}).",
                f"Add the missing columns, drop the table so Passerelle creates it, or choose "
                f"another table. Passerelle writes: {', '.join(self.columns)}.")
        if self.d.mode == "upsert" and not unique_person_id:
            raise DestinationError(
                f"The table {self.table_label} has no primary key or unique index on "
                "person_id, so upsert cannot find existing rows.",
                "Add one (ALTER TABLE ... ADD PRIMARY KEY (person_id)) or use mode: replace.")

    def insert_sql(self, table: str) -> str:
        cols = ", ".join(self.ident(c) for c in self.columns)
        values = ", ".join(["%s"] * len(self.columns))
        return f"INSERT INTO {table} ({cols}) VALUES ({values})"

    @abstractmethod
    def write(self, reader: pa.RecordBatchReader, destination: Any) -> int:
        """Bulk-write the batches into the table; returns the rows written."""

    text_type = staticmethod(lambda col: "text")


class _Postgres(_Target):
    dialect = "postgres"

    @property
    def table_label(self) -> str:
        return f"{self.c.schema_}.{self.d.table}"

    def table_expr(self) -> sge.Table:
        return sg.table(self.d.table, db=self.c.schema_, quoted=True)

    def connect(self) -> Any:
        import psycopg

        try:
            return psycopg.connect(host=self.c.host, port=self.c.port, user=self.c.user,
                                   password=_secret(self.c.password), dbname=self.c.database,
                                   connect_timeout=10)
        except psycopg.OperationalError as exc:
            raise DeliveryError(f"Cannot connect to PostgreSQL {self.display}: "
                                f"{str(exc).strip()}",
                                "Check host, port, user, password and database of the "
                                "destination.") from exc

    def write(self, reader: pa.RecordBatchReader, destination: Any) -> int:
        import psycopg

        con = self.connect()
        try:
            with con.transaction(), con.cursor() as cur:
                cur.execute(sge.Create(kind="SCHEMA", exists=True, this=sg.to_identifier(
                    self.c.schema_, quoted=True)).sql(self.dialect))
                cur.execute(self.create_sql())
                cur.execute("SELECT column_name FROM information_schema.columns WHERE "
                            "table_schema = %s AND table_name = %s ORDER BY ordinal_position",
                            (self.c.schema_, self.d.table))
                existing = [r[0] for r in cur.fetchall()]
                cur.execute(_UNIQUE_SQL, (self.c.schema_, self.d.table))
                self.check_columns(existing, bool(cur.fetchall()))
                cols = ", ".join(self.ident(c) for c in self.columns)
                if destination.mode == "replace":
                    cur.execute(f"DELETE FROM {self.table_sql()}")
                    return _copy(cur, f"COPY {self.table_sql()} ({cols}) FROM STDIN "
                                      "(FORMAT csv)", reader)
                staging = self.ident("_passerelle_upsert")
                cur.execute(f"CREATE TEMP TABLE {staging} (LIKE {self.table_sql()}) "
                            "ON COMMIT DROP")
                count = _copy(cur, f"COPY {staging} ({cols}) FROM STDIN (FORMAT csv)", reader)
                updates = ", ".join(f"{self.ident(c)} = EXCLUDED.{self.ident(c)}"
                                    for c in self.columns if c != "person_id")
                cur.execute(f"INSERT INTO {self.table_sql()} ({cols}) SELECT {cols} FROM "
                            f"{staging} ON CONFLICT ({self.ident('person_id')}) DO UPDATE "
                            f"SET {updates}")
                return count
        except psycopg.Error as exc:
            raise DeliveryError(f"PostgreSQL refused the write to {self.display}: "
                                f"{str(exc).strip()}", "Nothing was written (the transaction "
                                "was rolled back); fix the cause and export again.") from exc
        finally:
            con.close()


class _MySQL(_Target):
    dialect = "mysql"

    @staticmethod
    def text_type(col: str) -> str:  # type: ignore[override]
        # a primary key must be bounded: 191 utf8mb4 characters fit InnoDB's 767-byte limit
        return "varchar(191)" if col == "person_id" else "text"

    def connect(self) -> Any:
        import pymysql

        try:
            return pymysql.connect(host=self.c.host, port=self.c.port, user=self.c.user,
                                   password=_secret(self.c.password) or "",
                                   database=self.c.database, charset="utf8mb4",
                                   connect_timeout=10, autocommit=False)
        except pymysql.MySQLError as exc:
            raise DeliveryError(f"Cannot connect to MariaDB/MySQL {self.display}: {exc}",
                                "Check host, port, user, password and database of the "
                                "destination.") from exc

    def create_sql(self) -> str:
        return super().create_sql() + " DEFAULT CHARSET=utf8mb4"

    def write(self, reader: pa.RecordBatchReader, destination: Any) -> int:
        import pymysql

        con = self.connect()
        try:
            with con.cursor() as cur:
                # DDL commits implicitly in MySQL: create and check before the transaction
                cur.execute(self.create_sql())
                cur.execute("SELECT column_name FROM information_schema.columns WHERE "
                            "table_schema = %s AND table_name = %s ORDER BY ordinal_position",
                            (self.c.database, self.d.table))
                existing = [r[0] for r in cur.fetchall()]
                cur.execute(_UNIQUE_SQL, (self.c.database, self.d.table))
                self.check_columns(existing, bool(cur.fetchall()))
                con.begin()
                if destination.mode == "replace":
                    cur.execute(f"DELETE FROM {self.table_sql()}")
                    sql = self.insert_sql(self.table_sql())
                else:
                    updates = ", ".join(f"{self.ident(c)} = VALUES({self.ident(c)})"
                                        for c in self.columns if c != "person_id")
                    sql = f"{self.insert_sql(self.table_sql())} ON DUPLICATE KEY UPDATE " \
                          f"{updates}"
                count = 0
                for chunk in _tuples(reader):
                    cur.executemany(sql, chunk)
                    count += len(chunk)
            con.commit()
            return count
        except pymysql.MySQLError as exc:
            con.rollback()
            raise DeliveryError(f"MariaDB/MySQL refused the write to {self.display}: {exc}",
                                "Nothing was written (the transaction was rolled back); fix "
                                "the cause and export again.") from exc
        except BaseException:
            con.rollback()
            raise
        finally:
            con.close()


_UNIQUE_SQL = (
    "SELECT tc.constraint_name FROM information_schema.table_constraints tc "
    "JOIN information_schema.key_column_usage kcu ON kcu.constraint_name = tc.constraint_name "
    "AND kcu.table_schema = tc.table_schema AND kcu.table_name = tc.table_name "
    "WHERE tc.table_schema = %s AND tc.table_name = %s "
    "AND tc.constraint_type IN ('PRIMARY KEY', 'UNIQUE') AND kcu.column_name = 'person_id'")


def _copy(cur: Any, sql: str, reader: pa.RecordBatchReader) -> int:
    count = 0
    with cur.copy(sql) as copy:
        for batch in reader:
            buffer = io.BytesIO()
            pacsv.write_csv(batch, buffer, pacsv.WriteOptions(include_header=False))
            copy.write(buffer.getvalue())
            count += batch.num_rows
    return count


def _tuples(reader: pa.RecordBatchReader) -> Iterator[list[tuple]]:
    """Each Arrow batch as the list of row tuples ``executemany`` takes (column-wise
    conversion, one batch at a time)."""
    for batch in reader:
        yield list(zip(*(column.to_pylist() for column in batch.columns), strict=True))


def _secret(value: Any) -> str | None:
    return value.get_secret_value() if value is not None else None
