"""`passerelle status` tells a finished run from one killed midway."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg
import pytest

import passerelle
from conftest import PG
from test_run_reload import project

PG_CONNECT = dict(host=PG["host"], port=PG["port"], user=PG["user"], dbname=PG["database"])


def start_run(root: Path) -> subprocess.Popen:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.Popen(
        [sys.executable, "-c", "from passerelle.cli import main; main()", "run", "-p",
         str(root)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)


@pytest.mark.postgres
def test_a_run_killed_midway_shows_as_interrupted(tmp_path):
    root = project(tmp_path, "auto")
    # a second source, a PostgreSQL table the test keeps locked: its load waits until the
    # kill, whatever the machine's speed (a sleep would race a fast run)
    schema = f"lock_{uuid.uuid4().hex[:10]}"
    admin = psycopg.connect(**PG_CONNECT, autocommit=True)
    admin.execute(f'CREATE SCHEMA "{schema}"')
    admin.execute(f'CREATE TABLE "{schema}".people (id text, email text)')
    (root / "sources" / "zz.yml").write_text(
        f"entity: customers\nconnector:\n  type: postgres\n  database: postgres\n"
        f"  table: {schema}.people\ncolumns:\n  customer_id: id\n  email: email\n")
    lock = psycopg.connect(**PG_CONNECT)
    try:
        lock.execute(f'LOCK TABLE "{schema}".people IN ACCESS EXCLUSIVE MODE')
        run = start_run(root)
        deadline = time.monotonic() + 120
        while run.poll() is None and time.monotonic() < deadline and not admin.execute(
                "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND query LIKE %s", (f"%{schema}%",)).fetchone():
            time.sleep(0.05)
        assert run.poll() is None, run.stderr.read()
        run.send_signal(signal.SIGKILL)
        run.wait()
    finally:
        lock.rollback()
        lock.close()
        admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        admin.close()
    (root / "sources" / "zz.yml").unlink()

    with passerelle.open(root) as proj:
        rows = proj.status()
    by_step = {(r["step"], r["target"] or ""): r for r in rows}
    run_row = next(r for r in rows if r["step"] == "run")
    assert run_row["status"] == "interrupted"
    assert "stopped before its end" in run_row["message"]
    assert by_step["load", "crm"]["status"] == "ok"
    assert by_step["load", "zz"]["status"] == "interrupted"  # the step it was in

    status = subprocess.run(
        [sys.executable, "-c", "from passerelle.cli import main; main()", "status", "-p",
         str(root)], capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"})
    assert status.returncode == 0 and status.stdout.count("interrupted") == 2

    with passerelle.open(root) as proj:  # the next run is clean and recorded as ok
        assert proj.run().ok
        latest = proj.status()[0]
        assert latest["step"] == "run" and latest["status"] == "ok"
        assert latest["run_id"] > run_row["run_id"]

