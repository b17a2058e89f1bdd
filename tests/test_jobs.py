"""The jobs queue: one worker per job however many claim at once (SQLite and PostgreSQL),
cancel, interrupted jobs found on start and queued again, the CLI's stored credentials."""

from __future__ import annotations

import json
import os
import threading
import time

import pytest
from typer.testing import CliRunner

from governance_helpers import BACKENDS, app_db_url  # noqa: F401
from passerelle.cli import app
from passerelle.cli.remote import server_of, store_token, token_for
from passerelle.governance import jobs
from passerelle.governance.db import connect
from passerelle.runlog import process_tag


@BACKENDS
def test_claim_is_exclusive_with_two_workers(app_db_url):  # noqa: F811
    setup = connect(app_db_url)
    queued = {jobs.enqueue(setup, "run", {"n": i}, "test") for i in range(40)}
    workers = [connect(app_db_url, migrate=False) for _ in range(2)]  # two connections
    claimed: list[list[int]] = [[], []]
    start = threading.Barrier(2)

    def work(i: int) -> None:
        start.wait()
        while True:
            job = jobs.claim(workers[i], worker=f"worker {i}")
            if job is None:  # None may also mean "the oldest was just taken": look again
                if not jobs.recent(workers[i], 1, "queued"):
                    return
                continue
            claimed[i].append(job["job_id"])
            time.sleep(0.002)  # as a worker busy with its job: the other claims meanwhile

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    everything = claimed[0] + claimed[1]
    assert sorted(everything) == sorted(queued)  # each job once, none left behind
    assert claimed[0] and claimed[1]  # both workers took part
    assert {j["status"] for j in jobs.recent(setup, 100)} == {"running"}
    for db in (setup, *workers):
        db.close()


@BACKENDS
def test_cancel_interrupt_and_requeue(app_db_url):  # noqa: F811
    db = connect(app_db_url)
    first = jobs.enqueue(db, "audience_build", {"audience": "vip"}, "alice")
    second = jobs.enqueue(db, "run", {"full": True}, "alice")
    assert jobs.cancel(db, second)["status"] == "cancelled"
    with pytest.raises(jobs.JobNotCancellable):
        jobs.cancel(db, second)
    assert jobs.claim(db, worker="process 999999999 on nowhere started at tick 1")
    jobs.progress(db, first, step="Loading crm", message="hello")
    jobs.progress(db, first, fraction=0.5)
    with pytest.raises(jobs.JobNotCancellable, match="running"):
        jobs.cancel(db, first)
    live = jobs.enqueue(db, "run", {}, "bob")
    assert jobs.claim(db)["job_id"] == live  # this process: alive
    # another machine's worker cannot be checked: it counts as alive while it beats
    assert jobs.mark_interrupted(db) == []
    view = jobs.get(db, first)
    assert view["progress"] == {"step": "Loading crm", "fraction": 0.5, "messages": ["hello"]}
    dead = process_tag().replace(f"process {os.getpid()} ", "process 999999999 ")
    with db.session() as session:
        session.get(jobs.Job, first).worker = dead
    assert jobs.mark_interrupted(db) == [first]
    interrupted = jobs.get(db, first)
    assert interrupted["status"] == "interrupted" and interrupted["exit_code"] == 2
    assert "stopped while the job ran" in interrupted["error"]["reason"]
    assert jobs.get(db, live)["status"] == "running"
    again = jobs.requeue(db, first, "alice")
    assert (jobs.get(db, again)["params"], jobs.get(db, again)["requeued_from"]) == (
        {"audience": "vip"}, first)
    with pytest.raises(jobs.JobNotRequeueable):
        jobs.requeue(db, live, "alice")
    jobs.finish(db, live, {"ok": True})
    assert jobs.get(db, live)["status"] == "succeeded"
    jobs.fail(db, again, ValueError("boom"))
    failed = jobs.get(db, again)
    assert (failed["status"], failed["exit_code"]) == ("failed", 3)
    assert "bug in Passerelle" in failed["error"]["instruction"]
    db.close()


def test_login_token_is_stored_for_its_server_owner_only(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("PASSERELLE_TOKEN", raising=False)
    result = CliRunner().invoke(app, ["login", "--url", "http://127.0.0.1:9999/",
                                      "--token", "psl_abc"])
    assert result.exit_code == 0, result.output
    store_token("http://other:1", "psl_other")
    path = tmp_path / "config" / "passerelle" / "credentials.json"
    assert path.stat().st_mode & 0o777 == 0o600
    assert json.loads(path.read_text()) == {"http://127.0.0.1:9999": "psl_abc",
                                            "http://other:1": "psl_other"}
    assert token_for("http://127.0.0.1:9999") == "psl_abc"
    monkeypatch.setenv("PASSERELLE_TOKEN", "psl_env")
    assert token_for("http://127.0.0.1:9999") == "psl_env"  # the environment first


def test_a_stale_server_file_is_ignored(tmp_path):
    (tmp_path / ".passerelle").mkdir()
    marker = tmp_path / ".passerelle" / "server.json"
    marker.write_text(json.dumps({"url": "http://127.0.0.1:1", "pid": 999_999_999}))
    assert server_of(tmp_path) is None  # its process is gone: a killed server
    marker.write_text(json.dumps({"url": "http://127.0.0.1:1", "pid": os.getpid()}))
    assert server_of(tmp_path) == {"url": "http://127.0.0.1:1", "pid": os.getpid()}
