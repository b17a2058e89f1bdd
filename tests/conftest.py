"""Shared fixtures: real engines (DuckDB file, PostgreSQL server), never mocks.

PostgreSQL and MariaDB are expected at 127.0.0.1 (see README); when one is unreachable the
tests that need it fail with a clear message rather than being skipped.
"""

from __future__ import annotations

import dataclasses
import fcntl
import os
import pickle
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from passerelle.engines.base import Engine
from passerelle.engines.duckdb import DuckDBEngine
from passerelle.engines.postgres import PostgresEngine
from suite_order import costliest_first, read_table

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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The costliest files first, so that pytest-xdist never ends the run with one long file
    on one worker (see tests/suite_order.py)."""
    items[:] = costliest_first(items, read_table())


def built_once(tmp_path_factory: pytest.TempPathFactory, name: str, build):
    """``build(folder)``'s result, built by one process of the test run and copied for each
    that asks: the pytest-xdist workers share the folder above their own temporary folders and
    take turns on a lock, the first one builds, the others wait, then each copies the built
    folder (a DuckDB file is opened by one process at a time) and gets the result as the
    builder returned it (pickled; paths in it name the builder's folder). Without workers it
    builds in place."""
    mine = tmp_path_factory.mktemp(name)
    if "PYTEST_XDIST_WORKER" not in os.environ:
        return mine, build(mine)
    shared = tmp_path_factory.getbasetemp().parent / f"built-{name}"
    with open(f"{shared}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = shared / "result.pickle"
        if not done.exists():
            shutil.rmtree(shared, ignore_errors=True)  # a build that failed half-way
            shared.mkdir()
            result = build(shared / "built")
            done.write_bytes(pickle.dumps(result))
    shutil.copytree(shared / "built", mine, dirs_exist_ok=True)
    return mine, pickle.loads(done.read_bytes())


@pytest.fixture(scope="session")
def shared_demo(tmp_path_factory: pytest.TempPathFactory):
    """The 300-person demo, generated and run once for the whole test run (a demo run is the
    costliest thing a test can do; both xdist workers get a copy of one build). Tests only read
    it; one that writes (a run, an export, a pin) works on :func:`copy_demo`."""
    from passerelle.demo.run import run_demo

    def build(folder: Path):
        return run_demo(folder / "demo", size=300, seed=7)

    folder, outcome = built_once(tmp_path_factory, "shared-demo", build)
    assert outcome.result.ok, [e.reason for e in outcome.result.errors]
    return dataclasses.replace(outcome, project_dir=folder / "demo", truth_dir=folder / "truth")


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
