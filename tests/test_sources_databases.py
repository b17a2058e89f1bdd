"""Database sources (PostgreSQL, MariaDB) loaded into raw tables on DuckDB and PostgreSQL.

Source tables are created for real on the local servers, in a fresh schema / database.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal

import psycopg
import pymysql
import pytest

from conftest import MARIADB, PG
from passerelle.errors import ConnectorError
from passerelle.project.models import SourceConfig
from passerelle.reporter import SilentReporter
from passerelle.sources import (
    LOADS_TABLE,
    check_connection,
    databases,
    load_source,
    source_columns,
)

pytestmark = pytest.mark.postgres


def make_source(connector: dict, key: str | None = None, name: str = "shop") -> SourceConfig:
    return SourceConfig.model_validate({
        "name": name, "entity": "orders", "connector": connector,
        "columns": {"order_id": "id"}, "incremental": {"key": key},
    })


@pytest.fixture
def pg_source() -> Iterator[tuple[psycopg.Connection, str]]:
    """A fresh schema on the local PostgreSQL holding a table ``orders``; dropped after."""
    schema = f"src_{uuid.uuid4().hex[:10]}"
    con = psycopg.connect(host=PG["host"], port=PG["port"], user=PG["user"],
                          dbname=PG["database"], autocommit=True)
    con.execute(f'CREATE SCHEMA "{schema}"')
    con.execute(f'''CREATE TABLE "{schema}".orders (
        id integer PRIMARY KEY, "Montant TTC" numeric(10, 2), props jsonb, tags text[],
        ordered_on date, updated_at timestamptz, note text, ref uuid)''')
    yield con, schema
    con.execute(f'DROP SCHEMA "{schema}" CASCADE')
    con.close()


def insert_pg(con: psycopg.Connection, schema: str, ids: range) -> None:
    with con.cursor() as cur:
        cur.executemany(
            f'INSERT INTO "{schema}".orders VALUES (%s, %s, %s, %s, %s, %s, %s, %s)',
            [(i, Decimal(i) + Decimal("0.50"), json.dumps({"n": i, "nested": {"ok": True}}),
              ["a", f"t{i}"], dt.date(2024, 1, i), dt.datetime(2024, 1, i, 10, tzinfo=dt.UTC),
              None if i % 2 else f"note {i}", uuid.UUID(int=i)) for i in ids],
        )


def pg_connector(schema: str, **overrides) -> dict:
    return {"type": "postgres", "host": PG["host"], "port": PG["port"], "user": PG["user"],
            "database": PG["database"], "table": f"{schema}.orders", **overrides}


def raw_rows(engine, table: str = "raw_shop") -> list[dict]:
    return engine.to_arrow(engine.table(table).order_by("id")).to_pylist()


def test_postgres_incremental_by_key(engine, pg_source, tmp_path):
    con, schema = pg_source
    insert_pg(con, schema, range(1, 4))
    source = make_source(pg_connector(schema), key="id")
    first = load_source(engine, tmp_path, source, "run1", SilentReporter())
    assert (first.units_loaded, first.rows_loaded) == (1, 3)
    rows = raw_rows(engine)
    assert [r["id"] for r in rows] == [1, 2, 3]
    assert rows[0]["Montant TTC"] == Decimal("1.50")  # native decimal, French column name
    assert json.loads(rows[0]["props"]) == {"n": 1, "nested": {"ok": True}}
    assert json.loads(rows[1]["tags"]) == ["a", "t2"]
    assert rows[0]["ordered_on"] == dt.date(2024, 1, 1)
    assert rows[1]["note"] == "note 2" and rows[0]["note"] is None
    assert rows[0]["ref"] == str(uuid.UUID(int=1))
    assert rows[0]["updated_at"].replace(tzinfo=None) == dt.datetime(2024, 1, 1, 10)
    assert {r["_source_file"] for r in rows} == {f"postgres:{schema}.orders"}
    assert [r["_source_row"] for r in rows] == [1, 2, 3]

    insert_pg(con, schema, range(4, 6))
    second = load_source(engine, tmp_path, source, "run2", SilentReporter())
    assert (second.units_loaded, second.rows_loaded) == (1, 2)
    assert [r["id"] for r in raw_rows(engine)] == [1, 2, 3, 4, 5]
    marks = engine.to_arrow(engine.table(LOADS_TABLE).order_by("load_id")
                            .select("high_water_mark", "rows", "fingerprint")).to_pylist()
    assert marks == [{"high_water_mark": "3", "rows": 3, "fingerprint": None},
                     {"high_water_mark": "5", "rows": 2, "fingerprint": None}]

    third = load_source(engine, tmp_path, source, "run3", SilentReporter())
    assert (third.units_loaded, third.units_skipped, third.rows_loaded) == (0, 1, 0)
    assert engine.count("raw_shop") == 5


def test_postgres_incremental_by_timestamp(duckdb_engine, pg_source, tmp_path):
    con, schema = pg_source
    insert_pg(con, schema, range(1, 3))
    source = make_source(pg_connector(schema), key="updated_at")
    load_source(duckdb_engine, tmp_path, source, "run1", SilentReporter())
    insert_pg(con, schema, range(3, 4))
    second = load_source(duckdb_engine, tmp_path, source, "run2", SilentReporter())
    assert second.rows_loaded == 1
    assert [r["id"] for r in raw_rows(duckdb_engine)] == [1, 2, 3]


def test_postgres_snapshot_mode(engine, pg_source, tmp_path):
    con, schema = pg_source
    insert_pg(con, schema, range(1, 4))
    source = make_source(pg_connector(schema))
    load_source(engine, tmp_path, source, "run1", SilentReporter())
    con.execute(f'DELETE FROM "{schema}".orders WHERE id = 2')
    insert_pg(con, schema, range(7, 8))
    result = load_source(engine, tmp_path, source, "run2", SilentReporter())
    assert (result.units_loaded, result.rows_loaded) == (1, 3)
    assert [r["id"] for r in raw_rows(engine)] == [1, 3, 7]
    assert engine.count(LOADS_TABLE) == 2  # the ledger keeps the history


def test_postgres_columns_and_connection_checks(duckdb_engine, pg_source, tmp_path):
    _, schema = pg_source
    source = make_source(pg_connector(schema))
    check_connection(source)
    assert source_columns(None, source) == [
        "id", "Montant TTC", "props", "tags", "ordered_on", "updated_at", "note", "ref"]
    with pytest.raises(ConnectorError, match=r"Table .*\.missing not found"):
        source_columns(None, make_source(pg_connector(schema, table=f"{schema}.missing")))
    with pytest.raises(ConnectorError, match=r"incremental key 'nope' is not a column"):
        load_source(duckdb_engine, tmp_path, make_source(pg_connector(schema), key="nope"),
                    "run1", SilentReporter())


def test_refused_connection_is_a_clear_error(duckdb_engine, tmp_path):
    source = make_source(pg_connector("public", port=1))
    with pytest.raises(ConnectorError, match=r"Cannot connect to PostgreSQL at 127\.0\.0\.1:1") \
            as info:
        load_source(duckdb_engine, tmp_path, source, "run1", SilentReporter())
    assert "Check that the server runs" in info.value.instruction
    my = make_source({"type": "mysql", "host": "127.0.0.1", "port": 1, "user": "root",
                      "database": "x", "table": "t"})
    with pytest.raises(ConnectorError, match=r"Cannot connect to MySQL/MariaDB at 127\.0\.0\.1:1"):
        check_connection(my)


class KillingReporter(SilentReporter):
    """After the first batch, terminate the source's connection from outside."""

    def __init__(self, tag: str) -> None:
        super().__init__()
        self.tag = tag

    @contextmanager
    def step(self, name, total=None):
        tag = self.tag

        class Progress:
            def advance(self, amount=1):
                with psycopg.connect(host=PG["host"], user=PG["user"], dbname=PG["database"],
                                     autocommit=True) as admin:
                    admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                  "WHERE application_name = %s", (tag,))

        yield Progress()


def test_connection_lost_mid_load_keeps_nothing_and_rerun_works(engine, pg_source, tmp_path,
                                                                 monkeypatch):
    con, schema = pg_source
    insert_pg(con, schema, range(1, 8))
    monkeypatch.setattr(databases, "BATCH_ROWS", 2)
    source = make_source(pg_connector(schema), key="id")
    run_id = f"lost-{uuid.uuid4().hex[:8]}"
    with pytest.raises(ConnectorError, match=r"Reading .*orders from postgres at 127\.0\.0\.1"):
        load_source(engine, tmp_path, source, run_id, KillingReporter(f"passerelle {run_id}"))
    assert not engine.exists("raw_shop") or engine.count("raw_shop") == 0
    assert engine.count(LOADS_TABLE) == 0
    result = load_source(engine, tmp_path, source, "run2", SilentReporter())
    assert result.rows_loaded == 7
    assert [r["id"] for r in raw_rows(engine)] == list(range(1, 8))


@pytest.mark.mariadb
def test_mariadb_incremental(engine, mariadb_database, tmp_path):
    con = pymysql.connect(**MARIADB, database=mariadb_database, autocommit=True)
    with con.cursor() as cur:
        cur.execute("""CREATE TABLE commandes (
            id INT PRIMARY KEY, client VARCHAR(50), montant DECIMAL(10, 2), payee TINYINT(1),
            cree_le DATETIME, details JSON, duree TIME)""")
        rows = [(i, f"Hélène {i}", Decimal(i) + Decimal("0.25"), i % 2,
                 dt.datetime(2024, 2, i, 8, 30), json.dumps({"n": i}), "01:02:03")
                for i in range(1, 4)]
        cur.executemany("INSERT INTO commandes VALUES (%s, %s, %s, %s, %s, %s, %s)", rows)
    connector = {"type": "mysql", "host": MARIADB["host"], "port": MARIADB["port"],
                 "user": MARIADB["user"], "database": mariadb_database, "table": "commandes"}
    source = make_source(connector, key="cree_le")
    first = load_source(engine, tmp_path, source, "run1", SilentReporter())
    assert first.rows_loaded == 3
    loaded = raw_rows(engine)
    assert loaded[0]["client"] == "Hélène 1" and loaded[0]["montant"] == Decimal("1.25")
    assert loaded[0]["cree_le"] == dt.datetime(2024, 2, 1, 8, 30)
    assert json.loads(loaded[0]["details"]) == {"n": 1}
    assert loaded[0]["duree"] == "01:02:03"
    with con.cursor() as cur:
        cur.execute("INSERT INTO commandes VALUES (4, 'Zoé', 9.99, 1, '2024-02-10 09:00:00', "
                    "'{}', '00:00:01')")
    second = load_source(engine, tmp_path, source, "run2", SilentReporter())
    assert second.rows_loaded == 1
    assert [r["id"] for r in raw_rows(engine)] == [1, 2, 3, 4]
    third = load_source(engine, tmp_path, source, "run3", SilentReporter())
    assert (third.rows_loaded, third.units_skipped) == (0, 1)
    assert source_columns(None, source) == [
        "id", "client", "montant", "payee", "cree_le", "details", "duree"]
    con.close()


def test_changed_incremental_key_or_reload_reads_the_table_again(duckdb_engine, pg_source,
                                                                  tmp_path):
    con, schema = pg_source
    insert_pg(con, schema, range(1, 4))
    load_source(duckdb_engine, tmp_path, make_source(pg_connector(schema), key="id"), "run1",
                SilentReporter())
    # the high-water mark of `id` means nothing for `updated_at`: everything is read again
    by_time = make_source(pg_connector(schema), key="updated_at")
    changed = load_source(duckdb_engine, tmp_path, by_time, "run2", SilentReporter())
    assert changed.rows_loaded == 3
    assert "incremental_key 'id' -> 'updated_at'" in " ".join(changed.messages)
    assert [r["id"] for r in raw_rows(duckdb_engine)] == [1, 2, 3]  # replaced, not doubled
    assert load_source(duckdb_engine, tmp_path, by_time, "run3", SilentReporter()).rows_loaded \
        == 0
    again = load_source(duckdb_engine, tmp_path, by_time, "run4", SilentReporter(), reload=True)
    assert again.rows_loaded == 3 and "--reload" in " ".join(again.messages)
    assert [r["id"] for r in raw_rows(duckdb_engine)] == [1, 2, 3]
