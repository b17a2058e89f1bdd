"""Apache Spark: the engine for data that outgrows one machine.

Every table is a folder of Parquet files in the project's warehouse folder, registered in
Spark's in-memory catalog (no Hive metastore, no Derby) as an external table; a small
``catalog.json`` beside the folders names each table's current folder and schema, and the
SQL of each view, so that the next run (another Spark session) reopens the same tables.

Parquet files cannot be changed in place, so what the pipeline does with statements on
DuckDB and PostgreSQL is done here by rewriting a table into a new folder and switching
the catalog to it: ``DELETE``, ``UPDATE``, ``ALTER TABLE`` and renames (see
:mod:`passerelle.engines.spark_statements`). The differences are capabilities: no
transactions (each table switch is atomic, a failed run is resumed by running again), one
writer at a time (the catalog file), no temporary tables.

Known gaps of Ibis's PySpark backend are worked around in :class:`_IbisSpark` here, never
elsewhere: in-memory tables are handed to Spark as Arrow (no pandas round trip) and dropped
at safe points rather than from the garbage collector (under Spark Connect a drop from a
finaliser can deadlock or remove a table still in use); results come back through
``toArrow``. Splink runs on the same session (:meth:`SparkEngine.splink_api`) with
``break_lineage_method="parquet"`` in the warehouse's checkpoint folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import ibis
import ibis.common.exceptions as com
import ibis.expr.datatypes as dt
import ibis.expr.operations as ops
import ibis.expr.types as ir
import pyarrow as pa
import sqlglot as sg
import sqlglot.expressions as sge
from ibis.backends.pyspark import Backend as _PySparkBackend
from ibis.backends.sql.compilers.base import NULL
from ibis.backends.sql.compilers.pyspark import PySparkCompiler
from ibis.expr.operations.udf import InputType

from passerelle.engines.base import Capabilities, Engine
from passerelle.errors import EngineError

CATALOG_FILE = "catalog.json"
TABLES_DIR = "tables"
CHECKPOINT_DIR = "checkpoints"
# Rows handed to Spark at a time by append_arrow (one Arrow table in the driver's memory).
APPEND_CHUNK_ROWS = 500_000
# In local mode Spark's default of 200 shuffle partitions makes every small step slow.
LOCAL_DEFAULTS = {"spark.sql.shuffle.partitions": "4", "spark.ui.enabled": "false",
                  "spark.ui.showConsoleProgress": "false"}
JAVA_HINT = ("Spark needs Java 17 or later: install a JDK (e.g. `apt-get install "
             "openjdk-17-jre-headless`) and make `java` available on PATH or set JAVA_HOME.")


class SparkEngine(Engine):
    name = "spark"
    dialect = "pyspark"  # Ibis's Spark dialect, registered with sqlglot under this name
    capabilities = Capabilities(single_writer=True, scans_arrow=False, transactions=False,
                                temporary_tables=False)

    def __init__(self, warehouse: Path | str, master: str = "local[2]",
                 connect_url: str | None = None, settings: Mapping[str, Any] | None = None,
                 app_name: str = "passerelle") -> None:
        super().__init__()
        # A saved Splink model names its dialect: it must be known before any model is read
        # (a run that only scores with a model trained by another process).
        import passerelle.engines.spark_splink  # noqa: F401
        self.warehouse = Path(warehouse)
        self.master = master
        self.connect_url = connect_url
        self.settings = {k: str(v).lower() if isinstance(v, bool) else str(v)
                         for k, v in (settings or {}).items()}
        self.app_name = app_name
        where = str(self.warehouse.resolve()).encode()
        self.database = "pw_" + hashlib.sha1(where).hexdigest()[:12]

    # -- session ---------------------------------------------------------------------
    @property
    def session(self) -> Any:
        """The SparkSession under Ibis (shared with Splink)."""
        return self.con._session

    def _build_session(self) -> Any:
        from pyspark.sql import SparkSession

        if self.connect_url:
            builder = SparkSession.builder.remote(self.connect_url)
        else:
            active = SparkSession.getActiveSession()
            if active is not None:  # one JVM per process: reuse it (tests, notebooks)
                return active
            builder = SparkSession.builder.master(self.master).appName(self.app_name)
            builder = builder.config("spark.sql.catalogImplementation", "in-memory")
            builder = builder.config("spark.sql.warehouse.dir",
                                     str(self.warehouse.resolve() / "managed"))
            jar = _splink_jar()
            if jar:
                builder = builder.config("spark.jars", jar)
            if self.master.startswith("local"):
                for key, value in LOCAL_DEFAULTS.items():
                    builder = builder.config(key, value)
        builder = builder.config("spark.sql.session.timeZone", "UTC")
        for key, value in self.settings.items():
            builder = builder.config(key, value)
        return builder.getOrCreate()

    def _connect(self) -> Any:
        if not self.connect_url and shutil.which("java") is None \
                and not os.environ.get("JAVA_HOME"):
            raise EngineError("Cannot start Spark: no Java runtime found.", JAVA_HINT)
        try:
            import pyspark  # noqa: F401
        except ImportError as exc:
            raise EngineError("The Spark engine needs PySpark, which is not installed.",
                              "Install it with `pip install 'passerelle[spark]'`.") from exc
        try:
            session = self._build_session()
        except Exception as exc:
            where = (self.connect_url and "the Spark Connect server") or f"Spark ({self.master})"
            raise EngineError(f"Cannot start {where}: {str(exc).strip().splitlines()[0]}",
                              JAVA_HINT if not self.connect_url else
                              "Check the connect_url in passerelle.yml and that the server "
                              "runs.") from exc
        for key, value in self.settings.items():  # a reused session gets them too
            # ...those that can change in a running session: spark.driver.memory and the
            # like count only when the JVM starts (the builder passed them then)
            if session.conf.get(key, None) != value and session.conf.isModifiable(key):
                session.conf.set(key, value)
        self.warehouse.mkdir(parents=True, exist_ok=True)
        if not self.connect_url:
            session.sparkContext.setCheckpointDir(str(self.warehouse.resolve() / CHECKPOINT_DIR))
        _ = ibis.pyspark  # loading the backend through Ibis registers its options
        con = _IbisSpark()
        con.do_connect(session)
        con.engine = self
        self._con = con
        if not self.connect_url:
            session.sparkContext.setLogLevel("ERROR")
        self._open_catalog()
        return con

    def close(self) -> None:
        # The session is left running: it is the process's one JVM, and stopping it makes
        # the next engine of this process (another project, a test) start a new one.
        if self._con is not None:
            self._con.drop_pending_memtables()
            self._con = None

    # -- the warehouse catalog ------------------------------------------------------
    def _read_catalog(self) -> dict[str, Any]:
        path = self.warehouse / CATALOG_FILE
        if not path.exists():
            return {"tables": {}, "views": {}}
        return json.loads(path.read_text(encoding="utf-8"))

    def _write_catalog(self, catalog: dict[str, Any]) -> None:
        path = self.warehouse / CATALOG_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(catalog, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(tmp, path)

    def _sql(self, statement: sge.Expression) -> Any:
        return self.session.sql(statement.sql(dialect=self.dialect))

    def _open_catalog(self) -> None:
        """Register the warehouse's tables and views in a fresh Spark database."""
        db = sg.to_identifier(self.database, quoted=True)
        self._sql(sge.Use(this=sg.to_identifier("default")))
        self._sql(sge.Drop(this=db, kind="DATABASE", exists=True, cascade=True))
        self._sql(sge.Create(this=db, kind="DATABASE", exists=True))
        self._sql(sge.Use(this=db))
        catalog = self._read_catalog()
        for name, entry in catalog["tables"].items():
            self._register(name, entry, replace=False)  # the database is new: nothing to drop
        self._restore_views(catalog["views"])
        self._sweep(catalog)

    def _register(self, name: str, entry: dict[str, Any], replace: bool = True) -> None:
        if replace:
            self._sql(sge.Drop(this=sg.table(name, quoted=True), kind="TABLE", exists=True))
        schema = _struct(entry)
        self.session.catalog.createTable(name, path=str(self.warehouse.resolve() / entry["path"]),
                                         source="parquet", schema=schema)

    def _restore_views(self, views: dict[str, str]) -> None:
        todo = dict(views)
        while todo:  # a view may read another: create those whose inputs exist first
            done = []
            for name, sql in todo.items():
                try:
                    self.session.sql(sql).createOrReplaceTempView(name)
                    done.append(name)
                except Exception:  # an input not created yet
                    continue
            if not done:
                raise EngineError(f"The Spark warehouse {self.warehouse} has views that read "
                                  f"missing tables: {', '.join(sorted(todo))}.",
                                  "Run `passerelle run` to rebuild them.")
            for name in done:
                del todo[name]

    def _sweep(self, catalog: dict[str, Any]) -> None:
        """Remove table folders no entry names (left by a run that stopped midway)."""
        tables = self.warehouse / TABLES_DIR
        if not tables.is_dir():
            return
        used = {Path(e["path"]).name for e in catalog["tables"].values()}
        for folder in tables.iterdir():
            if folder.name not in used:
                shutil.rmtree(folder, ignore_errors=True)

    def write_table(self, name: str, df: Any) -> None:
        """Write the Spark DataFrame ``df`` as the new content of table ``name``: a new
        folder first, then the catalog switches to it, then the old folder goes (``df``
        may read the table it replaces)."""
        relative = f"{TABLES_DIR}/{_folder(name)}"
        df.write.mode("errorifexists").parquet(str(self.warehouse.resolve() / relative))
        catalog = self._read_catalog()
        old = catalog["tables"].get(name)
        entry = {"path": relative, "schema": df.schema.json()}
        self._register(name, entry)
        catalog["tables"][name] = entry
        self._write_catalog(catalog)
        if old is not None:
            shutil.rmtree(self.warehouse / old["path"], ignore_errors=True)

    def drop_table(self, name: str) -> bool:
        catalog = self._read_catalog()
        old = catalog["tables"].pop(name, None)
        self._sql(sge.Drop(this=sg.table(name, quoted=True), kind="TABLE", exists=True))
        if old is None:
            return False
        self._write_catalog(catalog)
        shutil.rmtree(self.warehouse / old["path"], ignore_errors=True)
        return True

    def record_view(self, name: str, sql: str | None) -> None:
        catalog = self._read_catalog()
        if sql is None:
            catalog["views"].pop(name, None)
        else:
            catalog["views"][name] = sql
        self._write_catalog(catalog)

    def refresh(self, name: str) -> None:
        """After an INSERT: Spark re-lists the folder's files (the schema is unchanged)."""
        self.session.catalog.refreshTable(name)

    # -- Engine interface ------------------------------------------------------------
    def exists(self, name: str) -> bool:
        # One call to the catalog (tables and temporary views), not a SHOW TABLES query:
        # the pipeline asks this before most statements.
        return bool(self.session.catalog.tableExists(name))

    def list_tables(self, like: str | None = None) -> list[str]:
        return self.con.list_tables(like=like)

    def base_tables(self) -> list[str]:
        return sorted(self._read_catalog()["tables"])

    def replace_table(self, name: str, expr: ir.Table) -> None:
        self.con.create_table(name, obj=expr, overwrite=True)

    def scratch_table(self, name: str, expr: ir.Table) -> ir.Table:
        # no temporary tables: a warehouse table that the step drops when done
        self.con.create_table(name, obj=expr, overwrite=True)
        return self.table(name)

    def drop(self, name: str, cascade: bool = False) -> None:
        self.con.drop_table(name, force=True)

    def rename(self, old: str, new: str) -> None:
        catalog = self._read_catalog()
        entry = catalog["tables"].pop(old, None)
        if entry is None:
            raise EngineError(f"Cannot rename {old!r}: no such table in the Spark warehouse.")
        self._sql(sge.Drop(this=sg.table(old, quoted=True), kind="TABLE", exists=True))
        if new in catalog["tables"]:
            self.drop_table(new)
            catalog = self._read_catalog()
            catalog["tables"].pop(old, None)
        self._register(new, entry)
        catalog["tables"][new] = entry
        self._write_catalog(catalog)

    def sha256_hex(self, value: ir.StringValue) -> ir.StringValue:
        return _spark_sha2(value, 256)

    def json_text(self, doc: ir.JSONValue, key: str) -> ir.StringValue:
        # A map lookup takes the key as a plain value: no JSON path to parse or escape.
        return _spark_json_text(doc.cast("string"), ibis.literal(key, type="string"))

    def execute(self, statement: sge.Expression) -> list[tuple]:
        from passerelle.engines.spark_statements import run_statement

        return run_statement(self, statement)

    def _run(self, sql: str) -> list[tuple]:
        return [tuple(row) for row in self.session.sql(sql).collect()]

    @contextmanager
    def transaction(self) -> Iterator[None]:
        # No transactions on Parquet folders: each table switch is atomic on its own, and
        # every step of the pipeline can be run again after a failure.
        self.transaction_depth += 1
        try:
            yield
        finally:
            self.transaction_depth -= 1

    def add_missing_columns(self, table: str, schema: ibis.Schema) -> list[str]:
        from ibis.backends.pyspark.datatypes import PySparkType
        from pyspark.sql import functions as F

        existing = set(self.table(table).columns)
        missing = [c for c in schema.names if c not in existing]
        if missing:
            df = self.session.table(table)
            df = df.select("*", *[F.lit(None).cast(PySparkType.from_ibis(schema[c])).alias(c)
                                  for c in missing])
            self.write_table(table, df)
        return missing

    def drop_columns(self, table: str, columns: list[str] | tuple[str, ...]) -> None:
        df = self.session.table(table)
        self.write_table(table, df.drop(*columns))

    def append_arrow(self, table: str, batches: pa.RecordBatchReader) -> int:
        rows = 0
        chunk: list[pa.RecordBatch] = []
        size = 0
        for batch in batches:
            chunk.append(batch)
            size += batch.num_rows
            if size >= APPEND_CHUNK_ROWS:
                rows += self._append_chunk(table, pa.Table.from_batches(chunk, batches.schema))
                chunk, size = [], 0
        if chunk or not self.exists(table):
            rows += self._append_chunk(table, pa.Table.from_batches(chunk, batches.schema))
        return rows

    def _append_chunk(self, table: str, data: pa.Table) -> int:
        from ibis.backends.pyspark.datatypes import PySparkSchema

        schema = PySparkSchema.from_ibis(ibis.Schema.from_pyarrow(data.schema))
        df = self.session.createDataFrame(_arrow_for_spark(data), schema=schema)
        entry = self._read_catalog()["tables"].get(table)
        if entry is None:
            self.write_table(table, df)
            return data.num_rows
        target = _struct(entry)  # the table's schema, without asking Spark
        if [(f.name, f.dataType) for f in schema.fields] \
                != [(f.name, f.dataType) for f in target.fields]:
            from pyspark.sql import functions as F

            df = df.select(*[(F.col(f"`{f.name}`") if f.name in df.columns else F.lit(None))
                             .cast(f.dataType).alias(f.name) for f in target.fields])
        df.write.mode("append").parquet(str(self.warehouse.resolve() / entry["path"]))
        self.refresh(table)
        return data.num_rows

    def splink_api(self) -> Any:
        """Splink's Spark backend on this engine's session: lineage broken by writing
        Parquet (long plans otherwise fail on large jobs), repartitioned to the shuffle
        partitions, string similarity functions from the jar that ships with Splink."""
        from passerelle.engines.spark_splink import spark_api

        partitions = int(self.session.conf.get("spark.sql.shuffle.partitions"))
        return spark_api(self.session, break_lineage="persist" if self.connect_url else "parquet",
                         partitions=partitions, database=self.database)


class _Compiler(PySparkCompiler):
    """Ibis's Spark SQL compiler, with the operations it leaves undefined that Spark has."""

    def visit_TimestampFromYMDHMS(self, op: Any, *, year: Any, month: Any, day: Any,
                                  hours: Any, minutes: Any, seconds: Any, **_: Any) -> Any:
        func = "make_timestamp" if op.dtype.timezone is not None else "make_timestamp_ntz"
        return self.f[func](year, month, day, hours, minutes, seconds)

    def visit_GroupConcat(self, op: Any, *, arg: Any, sep: Any, where: Any,
                          order_by: Any) -> Any:
        # Ibis has no ordered group_concat on Spark: collect (key..., value) structs, sort
        # the array (structs compare field by field), keep the values.
        if not order_by:
            return super().visit_GroupConcat(op, arg=arg, sep=sep, where=where,
                                             order_by=order_by)
        if any(key.args.get("desc") for key in order_by):
            raise com.UnsupportedOperationError(
                "group_concat ordered by a descending key is not available on Spark")
        fields = []
        for i, key in enumerate(order_by):
            fields += [sge.convert(f"k{i}"), key.this]
        fields += [sge.convert("v"), arg]
        keep = arg.is_(sge.null()).not_()
        if where is not None:
            keep = sge.and_(where, keep)
        collected = self.f.collect_list(self.if_(keep, self.f.named_struct(*fields), NULL))
        values = self.f.transform(self.f.array_sort(collected), sge.Lambda(
            this=sge.Dot(this=sg.to_identifier("e"), expression=sg.to_identifier("v")),
            expressions=[sg.to_identifier("e")]))
        return self.if_(self.f.size(collected).eq(0), NULL, self.f.array_join(values, sep))

    def visit_Strip(self, op: Any, *, arg: Any) -> Any:
        # Ibis trims the characters of string.whitespace, written '\t\n\r\v\f' in the
        # SQL text; Spark reads '\v' and '\f' as the letters v and f, so "false" lost its
        # f and "vrai" its v. Java's \s is the same set as string.whitespace.
        return self.f.regexp_replace(arg, sge.convert(r"^\s+|\s+$"), sge.convert(""))

    def visit_RegexReplace(self, op: Any, *, arg: Any, pattern: Any, replacement: Any) -> Any:
        # Java's replacement strings name groups $1 where DuckDB and PostgreSQL write \1,
        # and read a bare $ or \ as special: a literal replacement is rewritten.
        value = op.replacement
        if isinstance(value, ops.Literal) and isinstance(value.value, str):
            replacement = sge.convert(_java_replacement(value.value))
        return self.f.regexp_replace(arg, pattern, replacement)

    def visit_ScalarUDF(self, op: Any, **kw: Any) -> Any:
        # Builtin functions that DuckDB and PostgreSQL share under one name, spelled the
        # Spark way (the capability modules declare them once, for those two).
        name = op.__func_name__ if op.__input_type__ == InputType.BUILTIN else None
        args = list(kw.values())
        if name == "timezone":
            zone, ts = args
            if op.args[1].dtype.timezone is None:  # naive wall-clock time in zone -> UTC
                return self.f.to_utc_timestamp(self.cast(ts, dt.Timestamp(timezone="UTC")),
                                               zone)
            # an instant -> the wall-clock time in zone, naive (the session zone is UTC)
            return self.cast(self.f.from_utc_timestamp(ts, zone), dt.timestamp)
        if name == "epoch_us":
            return self.f.unix_micros(self.cast(args[0], dt.Timestamp(timezone="UTC")))
        return super().visit_ScalarUDF(op, **kw)


class _IbisSpark(_PySparkBackend):
    """Ibis's PySpark backend, with tables kept as Parquet folders of the warehouse."""

    engine: SparkEngine
    compiler = _Compiler()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pending_drops: list[str] = []

    def create_table(self, name: str, /, obj: Any = None, *, schema: Any = None,
                     database: str | None = None, temp: bool | None = None,
                     overwrite: bool = False, format: str = "parquet",
                     partition_by: Any = None) -> ir.Table:
        from ibis.backends.pyspark.datatypes import PySparkSchema

        if not overwrite and name in self.list_tables():
            raise EngineError(f"The table {name!r} already exists in the Spark warehouse.")
        if obj is not None:
            table = obj if isinstance(obj, ir.Expr) else ibis.memtable(obj)
            self._run_pre_execute_hooks(table)
            df = self._session.sql(self.compile(table))
        elif schema is not None:
            df = self._session.createDataFrame(
                [], schema=PySparkSchema.from_ibis(ibis.schema(schema)))
        else:
            raise EngineError("A table needs rows or a schema.")
        self.engine.write_table(name, df)
        return self.table(name)

    def drop_table(self, name: str, /, *, database: str | None = None,
                   force: bool = False) -> None:
        if not self.engine.drop_table(name) and not force:
            raise EngineError(f"No table {name!r} in the Spark warehouse.")

    def create_view(self, name: str, /, obj: ir.Table, *, database: str | None = None,
                    overwrite: bool = False) -> ir.Table:
        sql = self.compile(obj)
        self._register_in_memory_tables(obj)
        if not overwrite and name in self.list_tables():
            raise EngineError(f"The view {name!r} already exists in the Spark warehouse.")
        self._session.sql(sql).createOrReplaceTempView(name)
        self.engine.record_view(name, sql)
        return self.table(name)

    def drop_view(self, name: str, /, *, database: str | None = None,
                  force: bool = False) -> None:
        self._session.catalog.dropTempView(name)
        self.engine.record_view(name, None)

    def list_tables(self, *, like: str | None = None,
                    database: str | None = None) -> list[str]:
        # Ibis asks Spark for the current database first: it is always the engine's.
        if database is not None:
            return super().list_tables(like=like, database=database)
        db = sg.to_identifier(self.engine.database, quoted=True).sql(dialect="spark")
        tables = [row.tableName for row in self._session.sql(f"SHOW TABLES IN {db}").collect()]
        return self._filter_with_like(tables, like)

    def rename_table(self, old_name: str, new_name: str) -> None:
        self.engine.rename(old_name, new_name)

    def insert(self, name: str, /, obj: Any, *, database: str | None = None,
               overwrite: bool = False) -> None:
        if overwrite:
            self.create_table(name, obj, overwrite=True)
            return
        super().insert(name, obj)
        self.engine.refresh(name)

    def _register_in_memory_table(self, op: Any) -> None:
        # Arrow straight to Spark (PySpark 4 takes it; no pandas round trip, exact types)
        from ibis.backends.pyspark.datatypes import PySparkSchema

        self.drop_pending_memtables()
        data = op.data.to_pyarrow(op.schema)
        df = self._session.createDataFrame(_arrow_for_spark(data),
                                           schema=PySparkSchema.from_ibis(op.schema))
        df.createOrReplaceTempView(op.name)

    def _finalize_memtable(self, name: str) -> None:
        # Called from the garbage collector: under Spark Connect a drop from there can
        # deadlock or remove a table a query still reads. Dropped at the next safe point.
        self._pending_drops.append(name)

    def drop_pending_memtables(self) -> None:
        pending, self._pending_drops = self._pending_drops, []
        for name in pending:
            try:
                self._session.catalog.dropTempView(name)
            except Exception:
                continue

    def to_pyarrow(self, expr: ir.Expr, /, *, params: Any = None, limit: Any = None,
                   **kwargs: Any) -> pa.Table:
        from ibis.formats.pyarrow import PyArrowData

        self._run_pre_execute_hooks(expr)
        table_expr = expr.as_table()
        sql = self.compile(table_expr, params=params, limit=limit, **kwargs)
        arrow = self._session.sql(sql).toArrow()
        table = PyArrowData.convert_table(arrow, table_expr.schema())
        return expr.__pyarrow_result__(table)


def _java_replacement(text: str) -> str:
    """A regexp_replace replacement as DuckDB/PostgreSQL read it (``\\1`` a group, ``\\\\``
    a backslash, anything else literal), spelled for Java (``$1``, ``\\$``, ``\\\\``)."""
    out, i = [], 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text) and text[i + 1].isdigit():
            out.append("$" + text[i + 1])
            i += 2
            continue
        if ch == "\\" and i + 1 < len(text) and text[i + 1] == "\\":
            out.append("\\\\")
            i += 2
            continue
        out.append("\\" + ch if ch in "$\\" else ch)
        i += 1
    return "".join(out)


def _arrow_for_spark(data: pa.Table) -> pa.Table:
    """Spark reads Arrow timestamps as UTC instants: zone-less ones are tagged UTC."""
    columns = []
    for field, column in zip(data.schema, data.columns, strict=True):
        if pa.types.is_timestamp(field.type) and field.type.tz is None:
            column = column.cast(pa.timestamp(field.type.unit, tz="UTC"))
        columns.append(column)
    return pa.table(columns, names=data.schema.names)


def _struct(entry: dict[str, Any]) -> Any:
    """The Spark schema a catalog entry records."""
    from pyspark.sql.types import StructType

    return StructType.fromJson(json.loads(entry["schema"]))


def _folder(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:12]}"


def _splink_jar() -> str | None:
    try:
        from splink.backends.spark import similarity_jar_location
    except ImportError:
        return None
    return similarity_jar_location()


@ibis.udf.scalar.builtin(name="sha2")
def _spark_sha2(value: str, bits: int) -> str: ...


_TEXT_MAP = dt.Map(dt.string, dt.string)


@ibis.udf.scalar.builtin(name="from_json")
def _spark_from_json(doc: str, schema: str) -> _TEXT_MAP: ...


@ibis.udf.scalar.builtin(name="try_element_at")
def _spark_element_at(values: _TEXT_MAP, key: str) -> str: ...


def _spark_json_text(doc: ir.StringValue, key: ir.StringValue) -> ir.StringValue:
    # from_json into map<string,string> keeps a nested value as its JSON text
    return _spark_element_at(_spark_from_json(doc, "map<string,string>"), key)
