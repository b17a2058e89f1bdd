"""A PostgreSQL warehouse that refuses or drops its connections ends the run quickly as an
outside-system error (exit 2) naming the server; the next run is clean. Real server, real
kills: only the sessions of this test's engine (its application_name) are ended."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

import passerelle
from conftest import PG
from passerelle.errors import EngineError, ExitCode
from passerelle.project.starter import init_project
from passerelle.reporter import SilentReporter

pytestmark = pytest.mark.postgres


def kill_sessions(application_name: str) -> int:
    with psycopg.connect(host=PG["host"], port=PG["port"], user=PG["user"],
                         dbname=PG["database"], autocommit=True) as admin:
        rows = admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                             "WHERE application_name = %s", [application_name]).fetchall()
    return len(rows)


class KillAt(SilentReporter):
    """Ends the engine's sessions from another connection when step ``at`` starts."""

    def __init__(self, at: str, application_name: str) -> None:
        super().__init__()
        self.at, self.application_name = at, application_name
        self.killed_at: float | None = None
        self.killed = 0

    @contextmanager
    def step(self, name, total=None):
        if name == self.at and self.killed_at is None:
            self.killed = kill_sessions(self.application_name)
            self.killed_at = time.monotonic()
        with super().step(name, total) as progress:
            yield progress


def pg_project(root: Path, port: int = PG["port"]) -> tuple[Path, str]:
    init_project(root)
    schema = f"pt_{uuid.uuid4().hex[:10]}"
    config = root / "passerelle.yml"
    config.write_text(config.read_text().replace(
        "  type: duckdb\n  path: warehouse.duckdb\n",
        f"  type: postgres\n  host: 127.0.0.1\n  port: {port}\n  schema: {schema}\n"))
    return root, schema


def drop_schema(schema: str) -> None:
    with psycopg.connect(host=PG["host"], port=PG["port"], user=PG["user"],
                         dbname=PG["database"], autocommit=True) as admin:
        admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.mark.parametrize("at", ["Staging contacts", "Identity: deterministic keys"])
def test_sessions_killed_mid_run_end_it_as_an_outside_error(tmp_path, at):
    root, schema = pg_project(tmp_path / "p")
    try:
        reporter = KillAt(at, f"passerelle/{schema}")
        with passerelle.open(root, reporter=reporter) as proj, \
                pytest.raises(EngineError) as caught:
            proj.run()
        stopped = time.monotonic()
        assert reporter.killed >= 1, "the engine's sessions carry its application_name"
        assert stopped - reporter.killed_at < 30
        assert caught.value.exit_code == ExitCode.EXTERNAL_ERROR
        assert f"127.0.0.1:{PG['port']}/postgres" in caught.value.reason
        assert "administrator command" in caught.value.reason

        with passerelle.open(root) as proj:  # the server is fine: the re-run is clean
            again = proj.run()
            assert again.ok, [e.reason for e in again.errors]
            assert proj.engine.count("stg_contacts") == 3
            runs = proj.status()
            # the server was still there: the failure was recorded on a new connection
            assert [r["status"] for r in runs if r["step"] == "run"][:2] == ["ok", "failed"]
            assert "running" not in {r["status"] for r in runs}
    finally:
        drop_schema(schema)


def test_splink_connection_lost_is_an_engine_error(tmp_path):
    """Splink's own SQLAlchemy connection: same settings, same translation."""
    from passerelle.identity.probabilistic import _postgres_api

    root, schema = pg_project(tmp_path / "p")
    try:
        with passerelle.open(root) as proj:
            api = _postgres_api(proj.engine)
            assert kill_sessions(f"passerelle/{schema}") >= 1
            started = time.monotonic()
            with pytest.raises(Exception) as caught:
                api._log_and_run_sql_execution("SELECT 1", "t", "t")
            assert time.monotonic() - started < 30
            error = proj.engine.connection_error(caught.value)
            assert error is not None and f"127.0.0.1:{PG['port']}/postgres" in error.reason
            api._engine.dispose()
    finally:
        drop_schema(schema)


def test_refused_connection_exits_2_naming_the_server(tmp_path):
    root, _ = pg_project(tmp_path / "p", port=1)
    result = subprocess.run(
        [sys.executable, "-c", "from passerelle.cli import main; main()", "run", "-p",
         str(root)], capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"})
    assert result.returncode == 2, result.stderr
    assert "127.0.0.1:1/postgres" in result.stderr and "Traceback" not in result.stderr
    assert "bug in Passerelle" not in result.stderr
