"""One writer: with `passerelle serve` running, the command line sends its work to the server
(jobs) and reads through its API, so both work at once; a job killed with its server is
marked interrupted when the server starts again, and can be queued again."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import psycopg
import pytest

import passerelle
import passerelle.cli.remote
from api_helpers import admin_token, bearer, tiny_project
from collect_helpers import SRC, Server
from conftest import PG
from passerelle.segments import service as segments

PG_CONNECT = dict(host=PG["host"], port=PG["port"], user=PG["user"], dbname=PG["database"])


TOKEN: dict[Path, str] = {}  # the admin token of each test project: what the CLI sends


def cli(*args: str, root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(SRC), "COLUMNS": "200",
           "PASSERELLE_TOKEN": TOKEN.get(root, "")}
    return subprocess.run([sys.executable, "-c", "from passerelle.cli import main; main()",
                           *args, "-p", str(root)], capture_output=True, text=True, env=env,
                          timeout=300)


@pytest.fixture
def served(tmp_path):
    root = tmp_path / "p"
    project = tiny_project(root)
    TOKEN[root] = admin_token(project)
    project.close()
    server = Server(root, loader=False, cli=True).start()
    yield root, server
    if server.proc is not None:
        server.stop()


def test_cli_works_while_the_server_runs(served):
    root, server = served
    marker = root / ".passerelle" / "server.json"
    assert server.url in marker.read_text()
    count = cli("segment", "count", "in_france", root=root)  # was: "in use by another process"
    assert count.returncode == 0, count.stderr
    assert "in_france: 1 person" in count.stdout
    run = cli("run", "--full", root=root)
    assert run.returncode == 0, run.stderr
    assert "as job" in run.stderr and "crm" in run.stdout  # followed, then summarised
    profile = cli("profile", "crm:C1", "--json", "--mask", root=root)
    assert profile.returncode == 0 and "Dupont" in profile.stdout, profile.stderr
    # the readable layouts too: they crashed (NameError: proj) when the server answered
    for readable in (cli("profile", "crm:C1", "--mask", root=root), cli("status", root=root),
                     cli("metrics", "query", "revenue", root=root)):
        assert readable.returncode in (0, 1), readable.stderr
        assert "Internal error" not in readable.stderr, readable.stderr
    assert cli("status", root=root).returncode == 0
    missing = cli("audience", "build", "nobody", root=root)  # the job's error, its exit code
    assert missing.returncode == 1 and "nobody" in missing.stderr, missing.stderr
    server.stop()
    assert not marker.exists()  # a clean stop removes it: the CLI works directly again
    direct = cli("segment", "count", "in_france", root=root)
    assert direct.returncode == 0 and "as job" not in direct.stderr, direct.stderr


def test_two_writers_and_readers_at_once(served):
    root, server = served
    outcomes: dict[str, subprocess.CompletedProcess] = {}
    writers = [threading.Thread(target=lambda name=name, args=args: outcomes.__setitem__(
        name, cli(*args, root=root))) for name, args in (
        ("run", ("run", "--full")), ("refresh", ("segment", "refresh", "--full")))]
    for w in writers:
        w.start()
    answers = []
    with httpx.Client(base_url=server.url, timeout=60, headers=bearer(TOKEN[root])) as client:
        while any(w.is_alive() for w in writers):
            answers.append(client.get("/api/segments/in_france/count").status_code)
            answers.append(client.get("/api/persons", params={"q": "crm:C2"}).status_code)
        for w in writers:
            w.join()
        jobs = client.get("/api/jobs").json()
    assert all(o.returncode == 0 for o in outcomes.values()), {
        k: o.stderr for k, o in outcomes.items()}
    assert answers and set(answers) == {200}  # reads answered during the jobs
    assert {j["kind"]: j["status"] for j in jobs} == {"run": "succeeded",
                                                      "segment_refresh": "succeeded"}
    server.stop()
    with passerelle.open(root) as project:  # consistent: a run from scratch agrees
        assert project.status(1)[0]["status"] == "ok"
        assert segments.count(project, "in_france") == 1
        profiles = project.engine.table("profiles").count().to_pyarrow().as_py()
        assert profiles == 2


@pytest.mark.postgres
def test_a_job_killed_with_its_server_is_interrupted_then_requeued(served):
    root, server = served
    # a source on a PostgreSQL table the test keeps locked: the run waits in its load
    schema = f"lock_{uuid.uuid4().hex[:10]}"
    admin = psycopg.connect(**PG_CONNECT, autocommit=True)
    admin.execute(f'CREATE SCHEMA "{schema}"')
    admin.execute(f'CREATE TABLE "{schema}".people (id text, email text)')
    server.stop()
    (root / "sources" / "zz.yml").write_text(
        f"entity: customers\nconnector:\n  type: postgres\n  database: postgres\n"
        f"  table: {schema}.people\ncolumns:\n  customer_id: id\n  email: email\n")
    server.start()
    lock = psycopg.connect(**PG_CONNECT)
    try:
        lock.execute(f'LOCK TABLE "{schema}".people IN ACCESS EXCLUSIVE MODE')
        auth = bearer(TOKEN[root])
        job_id = httpx.post(server.url + "/api/jobs", json={"kind": "run"},
                            headers=auth).json()["job_id"]
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not admin.execute(
                "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND query LIKE %s", (f"%{schema}%",)).fetchone():
            time.sleep(0.05)
        job = httpx.get(f"{server.url}/api/jobs/{job_id}", headers=auth).json()
        assert job["status"] == "running" and job["progress"]["step"] == "Loading zz"
        server.kill()
    finally:
        lock.rollback()
        lock.close()
    try:
        assert passerelle.cli.remote.server_of(root) is None  # stale: its pid is gone
        server.start()
        job = httpx.get(f"{server.url}/api/jobs/{job_id}", headers=auth).json()
        assert job["status"] == "interrupted" and job["exit_code"] == 2
        again = httpx.post(f"{server.url}/api/jobs/{job_id}/requeue",
                           headers=auth).json()["job_id"]
        deadline = time.monotonic() + 120
        while (job := httpx.get(f"{server.url}/api/jobs/{again}",
                                headers=auth).json())["status"] in (
                "queued", "running") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert job["status"] == "succeeded", job["error"]
        assert job["requeued_from"] == job_id
    finally:
        server.stop()
        admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        admin.close()


def test_passerelle_login_signs_in_and_the_cli_uses_its_token(tmp_path):
    from passerelle.governance.db import open_app_db
    from passerelle.governance.users import add_user

    root = tmp_path / "p"
    project = tiny_project(root)
    with open_app_db(project) as db:
        add_user(db, "ana@example.fr", "analyst", "correct horse battery", ("cli", "tests"))
    project.close()
    server = Server(root, loader=False, cli=True).start()
    env = {**os.environ, "PYTHONPATH": str(SRC), "COLUMNS": "200",
           "XDG_CONFIG_HOME": str(tmp_path / "config"), "PASSERELLE_TOKEN": ""}
    try:
        refused = subprocess.run(  # no credential yet: the server's 401, and the way out
            [sys.executable, "-c", "from passerelle.cli import main; main()", "segment",
             "count", "in_france", "-p", str(root)], capture_output=True, text=True,
            env=env, timeout=300)
        assert refused.returncode == 1 and "passerelle login" in refused.stderr
        login = subprocess.run(
            [sys.executable, "-c", "from passerelle.cli import main; main()", "login", "-p",
             str(root)], input="ana@example.fr\ncorrect horse battery\n",
            capture_output=True, text=True, env=env, timeout=300)
        assert login.returncode == 0, login.stderr
        stored = (tmp_path / "config" / "passerelle" / "credentials.json").read_text()
        assert "psl_" in stored and "correct horse" not in stored
        count = subprocess.run(
            [sys.executable, "-c", "from passerelle.cli import main; main()", "segment",
             "count", "in_france", "-p", str(root)], capture_output=True, text=True,
            env=env, timeout=300)
        assert count.returncode == 0 and "in_france: 1 person" in count.stdout, count.stderr
        run = subprocess.run(  # an analyst may not run the pipeline: the server says so
            [sys.executable, "-c", "from passerelle.cli import main; main()", "run", "-p",
             str(root)], capture_output=True, text=True, env=env, timeout=300)
        assert run.returncode == 1 and "pipeline:run" in run.stderr, run.stderr
    finally:
        server.stop()
