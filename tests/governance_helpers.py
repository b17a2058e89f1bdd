"""Application databases for the governance tests: a SQLite file, and a PostgreSQL schema
made for the test and dropped after it (the URL's search_path points at it)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from argon2 import PasswordHasher

from passerelle.governance import passwords
from passerelle.governance.db import AppDB, connect
from passerelle.governance.permissions import Roles

PG_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
PASSWORD = "correct horse battery"


def postgres_url(schema: str) -> str:
    return f"postgresql://postgres@127.0.0.1:5432/postgres?options=-csearch_path%3D{schema}"


@pytest.fixture
def app_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'app.db'}"
        return
    schema = f"pt_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_DSN, autocommit=True) as con:
        con.execute(f"CREATE SCHEMA {schema}")
    try:
        yield postgres_url(schema)
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as con:
            con.execute(f"DROP SCHEMA {schema} CASCADE")


BACKENDS = pytest.mark.parametrize(
    "app_db_url", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
    indirect=True)


@pytest.fixture
def app_db(app_db_url: str, fast_hashes: None) -> Iterator[AppDB]:
    db = connect(app_db_url, Roles({"support": ["pii:read", "privacy:handle"]}))
    yield db
    db.close()


@pytest.fixture
def fast_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argon2id with the smallest costs: the production costs take ~0.5 s a hash here.
    tests/test_governance_auth.py checks the production parameters separately."""
    monkeypatch.setattr(passwords, "_hasher",
                        PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
    passwords.dummy_hash.cache_clear()
    yield
    passwords.dummy_hash.cache_clear()
