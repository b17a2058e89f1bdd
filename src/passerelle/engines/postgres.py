"""PostgreSQL: for teams that share one warehouse."""

from __future__ import annotations

import io
from typing import Any

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir
import pyarrow as pa
import pyarrow.csv as pacsv
import sqlglot as sg
import sqlglot.expressions as sge

from passerelle.engines.base import Capabilities, Engine
from passerelle.errors import EngineError


class PostgresEngine(Engine):
    name = "postgres"
    dialect = "postgres"
    capabilities = Capabilities(single_writer=False, scans_arrow=False)

    def __init__(self, host: str = "127.0.0.1", port: int = 5432, user: str = "postgres",
                 password: str | None = None, database: str = "postgres",
                 schema: str = "passerelle") -> None:
        super().__init__()
        self.params = dict(host=host, port=port, user=user, password=password, dbname=database)
        self.schema = schema

    @property
    def where(self) -> str:
        """The server as a user names it (no user, no password): ``host:port/database``."""
        return f"{self.params['host']}:{self.params['port']}/{self.params['dbname']}"

    @property
    def application_name(self) -> str:
        """Every connection of this engine shows as this in ``pg_stat_activity``."""
        return f"passerelle/{self.schema}"[:63]

    def connect_args(self) -> dict[str, Any]:
        """libpq options of every connection to the warehouse (Ibis's, Splink's): give up
        connecting after 10 s, and notice a server or network gone silent within about
        30 s (TCP keepalives) instead of waiting on a dead socket for minutes."""
        return dict(connect_timeout=10, application_name=self.application_name, keepalives=1,
                    keepalives_idle=10, keepalives_interval=5, keepalives_count=3)

    def session_options(self, search_path: str) -> str:
        """libpq ``options`` of every session on the warehouse (Ibis's, Splink's): the schemas
        it reads, and no JIT. The pipeline's statements are few rows and very large
        expressions (Splink's match weights nest a CASE per comparison level): PostgreSQL's
        cost estimate passes the JIT thresholds and LLVM then compiles for minutes what runs
        in milliseconds (the demo's Splink scoring: 44 s with JIT, 0.2 s without)."""
        return f"-c search_path={search_path} -c jit=off"

    def _connect(self) -> Any:
        import psycopg

        try:
            with psycopg.connect(**self.params, autocommit=True, **self.connect_args()) as admin:
                admin.execute(
                    sg.exp.Create(kind="SCHEMA", this=sg.to_identifier(self.schema, quoted=True),
                                  exists=True).sql("postgres")
                )
            return ibis.postgres.connect(
                host=self.params["host"], port=self.params["port"], user=self.params["user"],
                password=self.params["password"], database=self.params["dbname"],
                options=self.session_options(self.schema), **self.connect_args(),
            )
        except psycopg.OperationalError as exc:
            raise EngineError(
                f"Cannot connect to PostgreSQL at {self.where}: {str(exc).strip()}",
                "Check that the server runs and that host, port, user and password in "
                "passerelle.yml are right.",
            ) from exc

    def connection_error(self, exc: BaseException) -> EngineError | None:
        # psycopg raises OperationalError for a refused, closed or killed connection (and
        # for a server out of resources): under SQLAlchemy (Splink) and Splink's own
        # SplinkException it is the cause, so the whole chain is searched.
        import psycopg

        seen: set[int] = set()
        cause: BaseException | None = exc
        while cause is not None and id(cause) not in seen:
            if isinstance(cause, EngineError):
                return cause
            if isinstance(cause, psycopg.OperationalError):
                detail = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
                return EngineError(
                    f"The connection to the PostgreSQL warehouse at {self.where} was refused "
                    f"or lost: {detail}",
                    "Check that the server runs and accepts connections (a restart, an "
                    "administrator ending sessions, a network cut), then run again: the run "
                    "resumes cleanly.",
                )
            seen.add(id(cause))
            cause = cause.__cause__ or cause.__context__
        return None

    def close(self) -> None:
        try:
            super().close()
        except Exception as exc:  # closing a connection the server already dropped
            if self.connection_error(exc) is None:
                raise
            self._con = None

    def replace_layered_table(self, name: str, expr: ir.Table, temp: bool = False) -> None:
        # PostgreSQL pulls simple subqueries up into the query above, copying each column's
        # expression wherever the next layer reads it: over staging's dozen layers the query
        # grows exponentially (five rows took 70 s). A subquery with an OFFSET is never
        # pulled up, so OFFSET 0 on each keeps every layer computed once.
        self.con._run_pre_execute_hooks(expr)  # registers the memtables it reads, if any
        query = fence_subqueries(self.con.compiler.to_sqlglot(expr))
        columns = expr.schema().to_sqlglot_column_defs(self.dialect)
        target = sg.table(name, quoted=True)
        with self.transaction():
            self.execute(sge.Drop(this=target, kind="TABLE", exists=True))
            temporary = sge.Properties(expressions=[sge.TemporaryProperty()]) if temp else None
            self.execute(sge.Create(kind="TABLE", this=sge.Schema(this=target,
                                                                   expressions=columns),
                                    properties=temporary))
            self.execute(sge.Insert(this=target, expression=query))

    def layered_sql(self, expr: ir.Table) -> str:
        return fence_subqueries(self.con.compiler.to_sqlglot(expr)).sql(dialect=self.dialect)

    def index_on(self, table: str, column: str) -> None:
        """A B-tree index named after the table and column (a replaced table is a new one:
        call this again after each replacement), and the table's statistics."""
        name = f"{table}__{column}_idx"[:63]
        self.execute(sge.Create(
            this=sge.Index(this=sg.to_identifier(name, quoted=True),
                           table=sg.table(table, quoted=True),
                           params=sge.IndexParameters(columns=[sg.column(column, quoted=True)])),
            kind="INDEX", exists=True))
        self._run(f"ANALYZE {sg.table(table, quoted=True).sql(self.dialect)}")

    def sha256_hex(self, value: ir.StringValue) -> ir.StringValue:
        return _pg_encode(_pg_sha256(_pg_convert_to(value, "UTF8")), "hex")

    def json_text(self, doc: ir.JSONValue, key: str) -> ir.StringValue:
        return _pg_json_text(doc, ibis.literal(key, type="string"))

    def _run(self, sql: str) -> list[tuple]:
        with self.con.con.cursor() as cursor:
            cursor.execute(sql)
            return cursor.fetchall() if cursor.description else []

    def list_tables(self, like: str | None = None) -> list[str]:
        return self.con.list_tables(like=like, database=self.schema)

    def exists(self, name: str) -> bool:
        return name in self.list_tables()

    def drop_schema(self) -> None:
        """Remove every Passerelle table of this project (used by tests and `reset`)."""
        self.execute(sg.exp.Drop(kind="SCHEMA", this=sg.to_identifier(self.schema, quoted=True),
                                 exists=True, cascade=True))

    def append_arrow(self, table: str, batches: pa.RecordBatchReader) -> int:
        schema = ibis.Schema.from_pyarrow(batches.schema)
        if not self.exists(table):
            self.con.create_table(table, schema=schema)
        columns = ", ".join(sg.to_identifier(c, quoted=True).sql("postgres") for c in schema)
        target = sg.table(table, db=self.schema, quoted=True).sql("postgres")
        copy_sql = f"COPY {target} ({columns}) FROM STDIN WITH (FORMAT csv, HEADER true)"
        rows = 0
        raw = self.con.con
        with raw.cursor() as cursor, raw.transaction(), cursor.copy(copy_sql) as copy:
            for number, batch in enumerate(batches):
                buffer = io.BytesIO()
                # COPY skips one header line: write it with the first batch only
                pacsv.write_csv(batch, buffer, pacsv.WriteOptions(include_header=number == 0))
                copy.write(buffer.getvalue())
                rows += batch.num_rows
        return rows


# PostgreSQL hashes bytes: sha256(convert_to(text, 'UTF8')), then hex text with encode()
@ibis.udf.scalar.builtin(name="sha256")
def _pg_sha256(value: bytes) -> bytes: ...


@ibis.udf.scalar.builtin(name="convert_to")
def _pg_convert_to(value: str, encoding: str) -> bytes: ...


@ibis.udf.scalar.builtin(name="encode")
def _pg_encode(value: bytes, format: str) -> str: ...


# Schema-qualified so sqlglot keeps the key a plain argument: under its own name sqlglot
# turns the key into a JSON path and writes it back unescaped (a quote breaks the SQL).
@ibis.udf.scalar.builtin(name="json_extract_path_text", database="pg_catalog")
def _pg_json_text(doc: dt.JSON, key: str) -> str: ...


def fence_subqueries(query: sge.Expression) -> sge.Expression:
    """``query`` with ``OFFSET 0`` on every subquery and CTE body that has neither LIMIT
    nor OFFSET: the same rows, but PostgreSQL plans each on its own instead of pulling it
    up into the query that reads it (see :meth:`PostgresEngine.replace_layered_table`)."""
    for node in query.find_all(sge.Subquery, sge.CTE):
        inner = node.this
        if isinstance(inner, sge.Select) and not inner.args.get("offset") \
                and not inner.args.get("limit"):
            inner.set("offset", sge.Offset(expression=sge.Literal.number(0)))
    return query
