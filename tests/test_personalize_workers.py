"""`passerelle serve --workers N`: decision workers sharing the server's port with the
primary (real uvicorn processes, real Redis), every route answered whichever process took
the connection; refused without the Redis store."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import redis

import passerelle
from passerelle.governance.db import open_app_db
from passerelle.governance.tokens import create_token
from passerelle.personalize import refresh_decision_store as refresh
from personalize_helpers import make_project, write
from segments_helpers import NOW

REDIS = "redis://127.0.0.1:6379/0"
SRC = Path(__file__).resolve().parents[1] / "src"
SERVER = """
import sys
import passerelle
from passerelle.api.app import serve
serve(passerelle.open(sys.argv[1]), port=int(sys.argv[2]), loader=False, workers=2)
"""


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _children(pid: int) -> list[int]:
    """Of every thread of ``pid`` (a worker started again is its supervising thread's)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found += [int(p) for p in (task / "children").read_text().split()]
        except FileNotFoundError:  # a thread that just ended
            continue
    return sorted(found)


def _cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


@pytest.fixture
def redis_project(tmp_path):
    prefix = f"test:{uuid.uuid4().hex[:10]}:"
    root = tmp_path / "shop"
    proj = make_project(root)
    proj.close()
    write(root, {"passerelle.yml": f"name: shop\ntimezone: Europe/Paris\npersonalisation:\n"
                                   f"  redis_url: {REDIS}\n  redis_prefix: \"{prefix}\"\n"})
    with passerelle.open(root) as proj:
        assert refresh(proj, now=NOW).redis
        db = open_app_db(proj)
        _, secret = create_token(db, ["profiles:read"], timedelta(days=1), ("cli", "test"))
        db.close()
    yield root, secret
    r = redis.Redis.from_url(REDIS)
    keys = list(r.scan_iter(match=f"{prefix}*"))
    if keys:
        r.delete(*keys)


def test_two_processes_answer_every_route_on_one_port(redis_project):
    secret, port, proc, worker = _started(redis_project)
    try:
        time.sleep(3)  # the worker imports and listens
        before = _cpu_ticks(worker)
        bearer = {"Authorization": f"Bearer {secret}"}
        base = f"http://127.0.0.1:{port}"
        seen = {"decide": 0, "profile": 0, "health": 0, "api": 0}
        for _ in range(40):  # a new connection each: the kernel spreads them over both
            with httpx.Client(base_url=base, headers=bearer, timeout=30) as c:
                r = c.get("/v1/decide", params={"person": "alice@example.fr",
                                                "placement": "home_banner", "channel": "web",
                                                "device": "mobile"})
                assert r.status_code == 200, r.text
                assert [m["offer"] for m in r.json()["messages"]] == ["shoes", "paris_store"]
                seen["decide"] += 1
                r = c.get("/v1/profiles/P1", params={"include": "traits"})
                assert r.status_code == 200 and r.json()["traits"]["favourite_category"] \
                    == "shoes"
                seen["profile"] += 1
            with httpx.Client(base_url=base, timeout=30) as c:  # forwarded by a worker
                r = c.get("/v1/health")
                assert r.status_code == 200 and r.json()["decisions"]["store"] == "redis"
                seen["health"] += 1
            with httpx.Client(base_url=base, timeout=30) as c:
                r = c.get("/api/segments")  # no token: the primary's 401, whoever forwards
                assert r.status_code == 401, r.text
                assert r.json()["code"] == "not_authenticated"
                seen["api"] += 1
            with httpx.Client(base_url=base, timeout=30, headers={"Host": "evil.example"}
                              ) as c:
                assert c.get("/v1/decide").status_code == 400  # the host check, everywhere
        assert _cpu_ticks(worker) > before  # the worker took connections
        assert seen == {"decide": 40, "profile": 40, "health": 40, "api": 40}
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    assert proc.returncode in (0, -signal.SIGTERM)
    assert not Path(f"/proc/{worker}").exists() or \
        "Z" in Path(f"/proc/{worker}/stat").read_text().rsplit(")", 1)[1].split()[0]


def test_a_worker_that_dies_is_started_again(redis_project):
    secret, port, proc, first = _started(redis_project)
    try:
        os.kill(first, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while not [c for c in _children(proc.pid) if c != first]:
            assert proc.poll() is None, "the server stopped with its worker"
            assert time.monotonic() < deadline, "no worker was started again"
            time.sleep(0.2)
        (second,) = [c for c in _children(proc.pid) if c != first]
        time.sleep(4)  # it imports and listens
        before = _cpu_ticks(second)
        bearer = {"Authorization": f"Bearer {secret}"}
        for _ in range(40):  # new connections: the kernel gives some to the new worker
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=bearer,
                              timeout=30) as c:
                r = c.get("/v1/decide", params={"person": "P1", "placement": "home_banner",
                                                "channel": "web", "device": "mobile"})
                assert r.status_code == 200, r.text
        assert _cpu_ticks(second) > before  # the new worker answers
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    assert proc.returncode in (0, -signal.SIGTERM)


def _started(redis_project: tuple[Path, str]) -> tuple[str, int, subprocess.Popen, int]:
    """The token's secret, the port, the server and its one decision worker's pid."""
    root, secret = redis_project
    port = _port()
    proc = _serve(root, port)
    (worker,) = _children(proc.pid)
    return secret, port, proc, worker


def _serve(root: Path, port: int) -> subprocess.Popen:
    """The server with one decision worker, once both are up."""
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(root), str(port)],
                            env={**os.environ, "PYTHONPATH": str(SRC)})
    deadline = time.monotonic() + 90
    while not (_alive(port) and _children(proc.pid)):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            raise AssertionError("the server and its worker did not start")
        time.sleep(0.2)
    return proc


def _alive(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


def test_workers_need_the_redis_store(tmp_path):
    root = tmp_path / "shop"
    make_project(root).close()
    out = subprocess.run([sys.executable, "-c", "from passerelle.cli import main; main()",
                          "serve", "-p", str(root), "--workers", "2", "--port", str(_port())],
                         env={**os.environ, "PYTHONPATH": str(SRC)}, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 1
    assert "needs the decision store in Redis" in out.stdout + out.stderr
    assert "Traceback" not in out.stderr
