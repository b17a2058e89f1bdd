"""Reverse ETL into real PostgreSQL and MariaDB tables: create, replace, upsert, refusals."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import psycopg
import pymysql
import pytest

from activation_helpers import build_audience, build_profiles
from conftest import MARIADB, PG
from passerelle.activation import (
    DestinationError,
    exports_of_person,
    list_exports,
    parse_destination,
    write_table,
)
from passerelle.engines.base import Engine

pytestmark = pytest.mark.filterwarnings("ignore:fetch_record_batch")
T0, T1 = datetime(2026, 11, 1, 8), datetime(2026, 11, 2, 8)


@pytest.fixture
def pg_schema() -> Iterator[str]:
    name = f"rt_{uuid.uuid4().hex[:10]}"
    yield name
    with psycopg.connect(**_pg(), autocommit=True) as con:
        con.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


def _pg() -> dict[str, Any]:
    return dict(host=PG["host"], port=PG["port"], user=PG["user"], dbname=PG["database"])


def _pg_rows(schema: str, table: str) -> list[tuple]:
    with psycopg.connect(**_pg()) as con:
        return con.execute(f'SELECT person_id, email, first_name, city, audience FROM '
                           f'"{schema}"."{table}" ORDER BY person_id').fetchall()


def _my_rows(database: str, table: str) -> list[tuple]:
    con = pymysql.connect(**MARIADB, database=database)
    try:
        with con.cursor() as cur:
            cur.execute(f"SELECT person_id, email, first_name, city, audience FROM `{table}` "
                        "ORDER BY person_id")
            return [tuple(r) for r in cur.fetchall()]
    finally:
        con.close()


def _dest(kind: str, where: str, mode: str = "replace") -> Any:
    if kind == "postgres":
        connection = {"host": PG["host"], "port": PG["port"], "user": PG["user"],
                      "database": PG["database"], "schema": where}
    else:
        connection = {"host": MARIADB["host"], "port": MARIADB["port"],
                      "user": MARIADB["user"], "database": where}
    return parse_destination({"type": kind, "connection": connection, "table": "crm_vip",
                              "mode": mode, "attributes": {"city": "city"}})


@pytest.fixture(params=["postgres", pytest.param("mysql", marks=pytest.mark.mariadb)])
def target(request: pytest.FixtureRequest, pg_schema: str,
           mariadb_database: str) -> tuple[str, str]:
    return (request.param, pg_schema if request.param == "postgres" else mariadb_database)


def _rows(kind: str, where: str) -> list[tuple]:
    return _pg_rows(where, "crm_vip") if kind == "postgres" else _my_rows(where, "crm_vip")


def test_create_replace_then_upsert(duckdb_engine: Engine, target: tuple[str, str]) -> None:
    kind, where = target
    build_profiles(duckdb_engine)
    build_audience(duckdb_engine, "vip", ["p1", "p2", "p3"], ["p4"], "r1", T0)
    first = write_table(duckdb_engine, "vip", _dest(kind, where), name="crm", user="it")
    assert (first.status, first.people, first.kind) == ("delivered", 3, kind)
    assert _rows(kind, where) == [
        ("p1", "eloise@example.fr", "Éloïse", "Paris", "vip"),
        ("p2", "jean@example.fr", "Jean", "Lyon", "vip"),
        ("p3", "zoe@example.fr", "Zoé", "Brest", "vip")]  # p4 (holdout) never written

    # replace: the table holds exactly the new build
    build_audience(duckdb_engine, "vip", ["p2", "p6"], ["p4"], "r2", T1,
                   emails={"p2": "jean.m@example.fr"})
    write_table(duckdb_engine, "vip", _dest(kind, where), name="crm")
    assert _rows(kind, where) == [("p2", "jean.m@example.fr", "Jean", "Lyon", "vip"),
                                  ("p6", "paul@example.fr", "Paul", "Nice", "vip")]

    # upsert: members inserted or updated, other rows kept
    build_audience(duckdb_engine, "vip", ["p1", "p2"], [], "r3", datetime(2026, 11, 3))
    result = write_table(duckdb_engine, "vip", _dest(kind, where, "upsert"), name="crm")
    assert result.people == 2
    assert _rows(kind, where) == [("p1", "eloise@example.fr", "Éloïse", "Paris", "vip"),
                                  ("p2", "jean@example.fr", "Jean", "Lyon", "vip"),
                                  ("p6", "paul@example.fr", "Paul", "Nice", "vip")]
    log = list_exports(duckdb_engine)
    assert [e["status"] for e in log] == ["delivered"] * 3
    assert log[-1]["target"].startswith(f"{kind}://") and "crm_vip" in log[-1]["target"]
    assert len(exports_of_person(duckdb_engine, "p6")) == 1
    assert len(exports_of_person(duckdb_engine, "p2")) == 3


def test_wrong_columns_are_refused_by_name(duckdb_engine: Engine,
                                           target: tuple[str, str]) -> None:
    kind, where = target
    build_profiles(duckdb_engine)
    build_audience(duckdb_engine, "vip", ["p1"], [], "r1", T0)
    ddl = "CREATE TABLE {t} (person_id VARCHAR(64) PRIMARY KEY, mail TEXT, phone TEXT, " \
          "first_name TEXT, keep_me TEXT)"
    if kind == "postgres":
        with psycopg.connect(**_pg(), autocommit=True) as con:
            con.execute(f'CREATE SCHEMA "{where}"')
            con.execute(ddl.format(t=f'"{where}"."crm_vip"'))
            con.execute(f"""INSERT INTO "{where}"."crm_vip" VALUES ('x', 'a', 'b', 'c', 'd')""")
    else:
        con = pymysql.connect(**MARIADB, database=where, autocommit=True)
        with con.cursor() as cur:
            cur.execute(ddl.format(t="crm_vip"))
            cur.execute("INSERT INTO crm_vip VALUES ('x', 'a', 'b', 'c', 'd')")
        con.close()
    with pytest.raises(DestinationError) as info:
        write_table(duckdb_engine, "vip", _dest(kind, where), name="crm")
    assert "lacks the columns email, last_name, city, audience, synced_at" in info.value.reason
    assert "mail" in info.value.reason  # what the table has, to compare
    [log] = list_exports(duckdb_engine)
    assert (log["status"], log["people"]) == ("failed", 0)
    if kind == "postgres":  # nothing was touched
        with psycopg.connect(**_pg()) as c:
            assert c.execute(f'SELECT count(*) FROM "{where}"."crm_vip"').fetchone() == (1,)


def test_upsert_needs_a_key(duckdb_engine: Engine, mariadb_database: str) -> None:
    build_profiles(duckdb_engine)
    build_audience(duckdb_engine, "vip", ["p1"], [], "r1", T0)
    con = pymysql.connect(**MARIADB, database=mariadb_database, autocommit=True)
    with con.cursor() as cur:
        cur.execute("CREATE TABLE crm_vip (person_id VARCHAR(64), email TEXT, phone TEXT, "
                    "first_name TEXT, last_name TEXT, city TEXT, audience TEXT, "
                    "synced_at DATETIME)")
    con.close()
    with pytest.raises(DestinationError, match="no primary key or unique index on person_id"):
        write_table(duckdb_engine, "vip", _dest("mysql", mariadb_database, "upsert"))
    # replace needs no key
    assert write_table(duckdb_engine, "vip", _dest("mysql", mariadb_database)).people == 1


def test_a_failed_write_leaves_the_table_as_it_was(duckdb_engine: Engine,
                                                   target: tuple[str, str]) -> None:
    from passerelle.activation import DeliveryError

    kind, where = target
    build_profiles(duckdb_engine)
    build_audience(duckdb_engine, "vip", ["p1", "p2"], [], "r1", T0)
    write_table(duckdb_engine, "vip", _dest(kind, where))
    # IT adds a mandatory column Passerelle does not fill: the next write must fail whole
    alter = "ALTER TABLE {t} ADD COLUMN owner TEXT NOT NULL DEFAULT 'x'"
    drop_default = "ALTER TABLE {t} ALTER COLUMN owner DROP DEFAULT"
    if kind == "postgres":
        with psycopg.connect(**_pg(), autocommit=True) as con:
            con.execute(alter.format(t=f'"{where}"."crm_vip"'))
            con.execute(drop_default.format(t=f'"{where}"."crm_vip"'))
    else:
        con = pymysql.connect(**MARIADB, database=where, autocommit=True)
        with con.cursor() as cur:
            cur.execute("SET SESSION sql_mode = 'STRICT_ALL_TABLES'")
            cur.execute(alter.format(t="crm_vip"))
            cur.execute(drop_default.format(t="crm_vip"))
        con.close()
    build_audience(duckdb_engine, "vip", ["p6"], [], "r2", T1)
    with pytest.raises(DeliveryError, match="rolled back"):
        write_table(duckdb_engine, "vip", _dest(kind, where))
    assert [r[0] for r in _rows(kind, where)] == ["p1", "p2"]
