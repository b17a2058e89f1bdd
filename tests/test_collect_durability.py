"""Kill -9 under load, restart: every acknowledged event is staged exactly once.

Runs against each spool: local files, NATS JetStream (127.0.0.1:4222) and Redis Streams
(127.0.0.1:6379), with a real collector process and real HTTP clients.
"""

from __future__ import annotations

import threading
import time
import uuid

import httpx
import pytest
import redis

from collect_helpers import SLOW, Server, auth, write_project
from passerelle.core import open_project

SPOOLS = {
    "file": lambda tag: {"type": "file", "path": "spool"},
    "nats": lambda tag: {"type": "nats", "url": "nats://127.0.0.1:4222",
                         "stream": f"PTEST_{tag}"},
    "redis": lambda tag: {"type": "redis", "url": "redis://127.0.0.1:6379/0",
                          "stream": f"ptest:{tag}"},
}


def _cleanup(kind: str, tag: str) -> None:
    if kind == "redis":
        redis.Redis().delete(f"ptest:{tag}:web_tracking")
    elif kind == "nats":
        import asyncio

        import nats

        async def drop() -> None:
            nc = await nats.connect("nats://127.0.0.1:4222")
            try:
                await nc.jetstream().delete_stream(f"PTEST_{tag}")
            finally:
                await nc.close()

        asyncio.run(drop())


def _blast(url: str, acked: list[str], stop: threading.Event, worker: int) -> None:
    """Send batches of 50 until told to stop or the server dies; keep the acked ids."""
    with httpx.Client(timeout=5) as http:
        n = 0
        while not stop.is_set():
            ids = [f"w{worker}-{n + i}" for i in range(50)]
            n += 50
            batch = [{"type": "track", "event": "Clicked", "userId": f"u{worker}",
                      "messageId": m, "properties": {"i": i}} for i, m in enumerate(ids)]
            try:
                r = http.post(url + "/v1/batch", json={"batch": batch}, headers=auth())
            except httpx.TransportError:
                return  # killed mid-request: not acknowledged
            if r.status_code == 200:
                acked.extend(ids)


@pytest.mark.parametrize("kind", list(SPOOLS))
def test_kill_9_loses_and_duplicates_nothing(tmp_path, kind):
    tag = uuid.uuid4().hex[:10]
    project = write_project(tmp_path / "proj", spool=SPOOLS[kind](tag))
    acked: list[str] = []
    try:
        server = Server(project).start()
        stop = threading.Event()
        workers = [threading.Thread(target=_blast, args=(server.url, acked, stop, w))
                   for w in range(4)]
        for w in workers:
            w.start()
        deadline = time.monotonic() + SLOW
        while len(acked) < 3000 and time.monotonic() < deadline:
            time.sleep(0.05)
        server.kill()  # SIGKILL while the workers are still sending
        stop.set()
        for w in workers:
            w.join()
        assert len(acked) >= 3000
        if kind == "file":  # the kill left work behind: an open segment at least
            left = list((project / "spool" / "web_tracking").glob("*.open"))
            assert left, "the server died with nothing in flight: the test proves nothing"

        server = Server(project).start()  # recovers the spool; its loader drains it
        server.stop()
        with open_project(project) as proj:
            result = proj.run(source="web_tracking")
            assert result.errors == []
            engine = proj.engine
            stg = engine.table("stg_web_tracking")
            staged = set(engine.to_arrow(stg.select("message_id")).column(0).to_pylist())
            assert set(acked) <= staged  # nothing acknowledged is lost
            assert engine.count("stg_web_tracking") == len(staged)
            raw = engine.table("raw_web_tracking")
            dupes = raw.group_by("messageId").aggregate(n=raw.count()).filter(lambda t: t.n > 1)
            assert engine.to_arrow(dupes).num_rows == 0  # and raw holds each event once
    finally:
        _cleanup(kind, tag)
