"""Shared fixtures: real engines (DuckDB file, PostgreSQL server), never mocks.

PostgreSQL and MariaDB are expected at 127.0.0.1 (see README); when one is unreachable the
tests that need it fail with a clear message rather than being skipped.
"""

from __future__ import annotations

import dataclasses
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from passerelle.engines.base import Engine
from passerelle.engines.duckdb import DuckDBEngine
from passerelle.engines.postgres import PostgresEngine

PG = dict(host="127.0.0.1", port=5432, user="postgres", database="postgres")
MARIADB = dict(host="127.0.0.1", port=3306, user="root", password="")


def postgres_engine() -> PostgresEngine:
    """A PostgreSQL engine on a fresh schema; the caller drops it."""
    return PostgresEngine(**PG, schema=f"pt_{uuid.uuid4().hex[:10]}")


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """Each test using this runs on DuckDB and on PostgreSQL."""
    if request.param == "duckdb":
        eng: Engine = DuckDBEngine(tmp_path / "warehouse.duckdb")
        yield eng
        eng.close()
    else:
        pg = postgres_engine()
        yield pg
        pg.drop_schema()
        pg.close()


@pytest.fixture
def duckdb_engine(tmp_path: Path) -> Iterator[DuckDBEngine]:
    eng = DuckDBEngine(tmp_path / "warehouse.duckdb")
    yield eng
    eng.close()


@pytest.fixture
def mariadb_database() -> Iterator[str]:
    """A fresh MariaDB database name on the local server; dropped afterwards."""
    import pymysql

    name = f"pt_{uuid.uuid4().hex[:10]}"
    con = pymysql.connect(**MARIADB, autocommit=True)
    with con.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}`")
    try:
        yield name
    finally:
        with con.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        con.close()


@pytest.fixture(scope="session")
def shared_demo(tmp_path_factory: pytest.TempPathFactory):
    """The 300-person demo, generated and run once for the whole session (a demo run is the
    costliest thing a test can do). Tests only read it; one that writes (a run, an export, a
    pin) works on :func:`copy_demo`."""
    from passerelle.demo.run import run_demo

    outcome = run_demo(tmp_path_factory.mktemp("shared") / "demo", size=300, seed=7)
    assert outcome.result.ok, [e.reason for e in outcome.result.errors]
    return outcome


def copy_demo(outcome, target: Path):
    """A copy of a demo project to write to (copying its warehouse file costs milliseconds,
    running the pipeline again seconds); the truth beside it is shared, read only."""
    shutil.copytree(outcome.project_dir, target)
    return dataclasses.replace(outcome, project_dir=target)


@pytest.fixture(scope="module")
def demo_copy(shared_demo, tmp_path_factory: pytest.TempPathFactory):
    """A module's own copy of the shared demo, for tests that write to it."""
    return copy_demo(shared_demo, tmp_path_factory.mktemp("demo-copy") / "demo")


@pytest.fixture(scope="session")
def web_tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny web project (run once, a marketer and an IT admin), shared by the tests that
    only sign in and read its pages; a test that changes it builds its own
    (:func:`web_helpers.web_project`)."""
    from web_helpers import web_project

    return web_project(tmp_path_factory.mktemp("web-tiny") / "proj")
