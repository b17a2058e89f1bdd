"""Splink on the pipeline's own engine: its backend for DuckDB or PostgreSQL, and a
session (a Linker) whose tables are dropped afterwards."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from passerelle.engines.base import Engine
from passerelle.errors import PasserelleError
from passerelle.identity import splink_settings as ss
from passerelle.identity.splink_input import TF_TABLE, term_frequencies
from passerelle.reporter import Reporter


def _duckdb_api(engine: Engine) -> Any:
    from splink.backends.duckdb import DuckDBAPI

    return DuckDBAPI(connection=engine.con.con)


def _postgres_api(engine: Engine) -> Any:
    import sqlalchemy as sa
    import sqlglot as sg
    import sqlglot.expressions as sge
    from splink.backends.postgres import PostgresAPI
    from splink.internals.input_column import InputColumn
    from splink.internals.misc import to_pyarrow_if_list_tuple_or_dict
    from splink.internals.postgres.dataframe import PostgresDataFrame

    class SchemaDataFrame(PostgresDataFrame):
        """Columns of the table in this project's schema only: Splink's own lookup reads
        every schema, so a second project in the same database (a table of the same name
        in another schema) doubled every column and blocking failed ("column reference is
        ambiguous")."""

        @property
        def columns(self) -> list[InputColumn]:
            query = sg.select("column_name").from_(sg.table("columns", db="information_schema"))
            query = query.where(sg.column("table_name").eq(sge.convert(self.physical_name)))
            query = query.where(sg.column("table_schema").eq(sge.convert(self._db_schema)))
            query = query.order_by("ordinal_position")
            rows = self.db_api._execute_sql_against_backend(query.sql("postgres")).all()
            return [InputColumn(r[0], sqlglot_dialect_str="postgres") for r in rows]

    class OfflinePostgresAPI(PostgresAPI):
        """Splink's PostgreSQL backend, without DuckDB's ``postgres`` extension: Splink
        writes the small tables it makes in Python (u counts, term frequencies) by
        downloading that extension, which fails on a machine without internet access (and
        its fallback misses that error). Written through SQLAlchemy instead. Its tables'
        columns are read in this project's schema only (:class:`SchemaDataFrame`)."""

        def _table_registration(self, input: Any, table_name: str) -> None:
            table = to_pyarrow_if_list_tuple_or_dict(input)
            frame = table.to_pandas() if hasattr(table, "to_pandas") else table
            frame.to_sql(table_name, con=self._engine, index=False, if_exists="replace",
                         schema=self._db_schema)

        def table_to_splink_dataframe(self, templated_name: str,
                                      physical_name: str) -> SchemaDataFrame:
            return SchemaDataFrame(templated_name, physical_name, self)

    params = engine.params  # type: ignore[attr-defined]
    schema = engine.schema  # type: ignore[attr-defined]
    options = engine.session_options(f"{schema},public")  # type: ignore[attr-defined]
    url = sa.URL.create("postgresql+psycopg", username=params["user"],
                        password=params["password"], host=params["host"],
                        port=params["port"], database=params["dbname"])
    sa_engine = sa.create_engine(
        url, poolclass=sa.pool.StaticPool,
        connect_args={"options": options,
                      **engine.connect_args()})  # type: ignore[attr-defined]
    with sa_engine.begin() as con:
        try:
            con.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS fuzzystrmatch SCHEMA public")
        except sa.exc.DBAPIError as exc:
            raise PasserelleError(
                f"PostgreSQL refused the fuzzystrmatch extension Splink needs: {exc.orig}",
                "Ask a database administrator to run `CREATE EXTENSION fuzzystrmatch` "
                "in this database.") from exc
        con.exec_driver_sql(ss.POSTGRES_JARO_WINKLER)
    return OfflinePostgresAPI(engine=sa_engine, schema=schema)


def _engine_api(engine: Engine) -> Any:
    return engine.splink_api()  # type: ignore[attr-defined]  # the engine makes its own


SPLINK_BACKENDS = {"duckdb": _duckdb_api, "postgres": _postgres_api, "spark": _engine_api}


def _db_api(engine: Engine) -> Any:
    try:
        return SPLINK_BACKENDS[engine.name](engine)
    except KeyError:
        raise PasserelleError(
            f"Probabilistic matching is not available on the {engine.name} engine yet.",
            "Set `probabilistic: {enabled: false}` in identity.yml.") from None


_NOT_OBSERVED = re.compile(
    r"Level (?P<level>.+) on comparison (?P<comparison>\S+) not observed in dataset, "
    r"unable to train (?P<which>[mu]) value")
_PREFIX = re.compile(r"^(warning)\s*:\s*", re.I)


def translate(message: str) -> str:
    """What one of Splink's warnings means for the person running Passerelle."""
    message = _PREFIX.sub("", " ".join(message.split()))
    found = _NOT_OBSERVED.search(message)
    if found is None:
        return f"Splink: {message}"
    level, comparison = found["level"], found["comparison"]
    if found["which"] == "m":
        return (f"No likely match in the training sample had \"{level}\" on {comparison}: "
                "that level weighs nothing (neither for nor against) until a retraining "
                "sees one.")
    return (f"No random pair in the training sample had \"{level}\" on {comparison}: "
            "that level counts as very strong evidence (its u is set to 1 / max_pairs).")


class _ToReporter(logging.Handler):
    """Splink's warnings (a level never observed in training...) go to the reporter, said
    in the project's terms (:func:`translate`), each once."""

    def __init__(self, reporter: Reporter | None) -> None:
        super().__init__(logging.WARNING)
        self.reporter = reporter
        self.sent: set[str] = set()

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        # sampling notes are about Splink's own speed-ups, not about the model
        if self.reporter is None or message.startswith("[EM sampling]"):
            return
        text = translate(message)
        if text not in self.sent:
            self.sent.add(text)
            self.reporter.warning(text)


@contextmanager
def term_frequency_tables(engine: Engine, fields: Sequence[str],
                          among: str) -> Iterator[dict[str, str]]:
    """The term-frequency table of each of ``fields`` over ``among``'s records, written
    once for every Splink session of a run (training, scoring, the pairs within a
    signature) and dropped afterwards: field -> table name."""
    tables = {field: TF_TABLE + field for field in fields}
    try:
        for field, name in tables.items():
            engine.replace_table(name, term_frequencies(engine.table(among), field))
        yield tables
    finally:
        for name in tables.values():
            engine.drop(name)


def rescale_for_model(engine: Engine, tf_tables: dict[str, str], model: dict,
                      among: str) -> None:
    """Rewrite the tables of :func:`term_frequency_tables` whose values depend on the
    trained ``model`` (``relative_frequency_fields``; training does not read them)."""
    for field in ss.relative_frequency_fields(model):
        if field in tf_tables:
            engine.replace_table(tf_tables[field],
                                 term_frequencies(engine.table(among), field, model))


@contextmanager
def _splink_session(engine: Engine, input_table: str, settings: Any,
                    reporter: Reporter | None = None, tf_among: str | None = None,
                    tf_tables: dict[str, str] | None = None) -> Iterator[Any]:
    """A Linker on ``input_table``; every ``__splink__`` table is dropped afterwards.

    ``tf_among``: the table whose records give the term frequencies (every customer
    record), instead of Splink's default (its input, the representatives): the same
    frequencies with or without the pre-pass, and in an incremental run. ``tf_tables``:
    those tables already written (:func:`term_frequency_tables`), kept afterwards."""
    from splink import Linker

    splink_logger = logging.getLogger("splink")
    handler = _ToReporter(reporter)
    saved = splink_logger.level, splink_logger.propagate
    splink_logger.setLevel(logging.WARNING)
    splink_logger.propagate = False
    splink_logger.addHandler(handler)
    db_api = _db_api(engine)
    made: list[str] = []
    try:
        linker = Linker(db_api.register(input_table), settings, log_level=None)
        if tf_among is not None or tf_tables is not None:
            for column in linker._settings_obj._term_frequency_columns:
                field = column.unquote().name
                if tf_tables is not None and field in tf_tables:
                    name = tf_tables[field]
                else:
                    name = TF_TABLE + field
                    made.append(name)
                    engine.replace_table(name, term_frequencies(
                        engine.table(tf_among or input_table), field,
                        settings if isinstance(settings, dict) else None))
                linker.table_management.register_term_frequency_lookup(
                    db_api.register(name), field)
        yield linker
    finally:
        for name in made:
            engine.drop(name)
        splink_logger.removeHandler(handler)
        splink_logger.setLevel(saved[0])
        splink_logger.propagate = saved[1]
        drop_splink_tables(engine)
        engine_sa = getattr(db_api, "_engine", None)
        if engine_sa is not None:
            engine_sa.dispose()


def drop_splink_tables(engine: Engine) -> None:
    for name in engine.list_tables():
        if name.startswith("__splink__"):
            engine.drop(name)

