"""Collector benchmark: events/s, latency and end-to-end delay, against an empty-200 baseline.

    python benchmarks/collector.py [--seconds 10] [--connections 64]

Each server runs in its own process on loopback (uvicorn, one worker, access log off): the
collector with durability on (file spool, fsync per group commit, loader thread writing
DuckDB), and a baseline FastAPI app with the same routes that answers ``{"success": true}``
without reading the body. The load comes from a separate process: an asyncio HTTP/1.1
client over keep-alive connections (no third-party load tool is installed here). Modes:
(a) single events on ``/v1/track``, (b) ``/v1/batch`` with 100 events. End-to-end delay:
time from the acknowledgement of one marker event until the loader committed it to
``raw_<source>`` (its spool segment released), measured on an idle server after the load.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import multiprocessing as mp
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).parent))
from _common import save_report

KEY = "bench_key"
SRC = Path(__file__).resolve().parents[1] / "src"

BASELINE = '''
import sys, uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import Response
app = FastAPI()
OK = b'{"success":true}'
async def empty(request: Request) -> Response:
    return Response(OK, media_type="application/json")
for kind in ("track", "identify", "page", "screen", "group", "alias", "batch"):
    app.post(f"/v1/{kind}")(empty)
@app.get("/v1/health")
async def health():
    return {}
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning",
            access_log=False)
'''


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _project(root: Path) -> Path:
    import yaml

    (root / "sources").mkdir(parents=True)
    (root / "passerelle.yml").write_text("name: bench\n")
    sys.path.insert(0, str(SRC))
    from passerelle.collect import DEFAULT_MAPPING

    source = {"name": "web", "entity": "events",
              "connector": {"type": "collector", "write_keys": [KEY],
                            "spool": {"type": "file", "path": "spool"}},
              "columns": DEFAULT_MAPPING}
    (root / "sources" / "web.yml").write_text(yaml.safe_dump(source))
    return root


def _start(args: list[str], port: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.Popen([sys.executable, *args], env=env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.1)
    raise SystemExit("server did not start")


def _event(i: int, worker: int) -> dict:
    return {"type": "track", "event": "Product Viewed", "userId": f"user-{i % 5000}",
            "anonymousId": f"anon-{i % 9000}", "messageId": f"{worker}-{i}",
            "timestamp": "2026-01-01T10:00:00.000Z",
            "properties": {"sku": f"SKU-{i % 700}", "price": 19.9, "currency": "EUR"},
            "context": {"campaign": {"medium": "email", "name": "spring"},
                        "page": {"path": "/p/123", "url": "https://shop.example/p/123"},
                        "userAgent": "Mozilla/5.0 (X11; Linux x86_64)"}}


def _request(path: str, body: bytes, port: int) -> bytes:
    auth = base64.b64encode(f"{KEY}:".encode()).decode()
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Authorization: Basic {auth}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


async def _connection(port: int, mode: str, worker: int, until: float, latencies: list,
                      statuses: dict) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    n = 0
    while time.perf_counter() < until:
        if mode == "single":
            body = orjson.dumps(_event(n, worker))
            path, n = "/v1/track", n + 1
        else:
            body = orjson.dumps({"batch": [_event(n + i, worker) for i in range(100)]})
            path, n = "/v1/batch", n + 100
        t0 = time.perf_counter()
        writer.write(_request(path, body, port))
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        await reader.readexactly(length)
        latencies.append(time.perf_counter() - t0)
        status = int(head.split(b" ", 2)[1])
        statuses[status] = statuses.get(status, 0) + 1
    writer.close()


def _load(port: int, mode: str, seconds: float, connections: int, offset: int,
          out: mp.Queue) -> None:
    async def main() -> tuple[list, dict]:
        latencies: list[float] = []
        statuses: dict[int, int] = {}
        until = time.perf_counter() + seconds
        await asyncio.gather(*[_connection(port, mode, offset + c, until, latencies, statuses)
                               for c in range(connections)])
        return latencies, statuses

    latencies, statuses = asyncio.run(main())
    out.put((latencies, statuses))


def drive(port: int, mode: str, seconds: float, connections: int, tag: int) -> dict:
    """Load from a separate process; returns events/s and latency percentiles."""
    queue: mp.Queue = mp.get_context("spawn").Queue()
    proc = mp.get_context("spawn").Process(target=_load, args=(port, mode, seconds, connections,
                                                               tag * 10_000, queue))
    started = time.perf_counter()
    proc.start()
    latencies, statuses = queue.get()
    proc.join()
    elapsed = time.perf_counter() - started - 0.0
    latencies.sort()
    per = 1 if mode == "single" else 100
    ok = statuses.get(200, 0)

    def pct(p: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000, 2)

    return {"mode": mode, "requests": len(latencies), "statuses": statuses,
            "events_per_s": round(ok * per / seconds), "requests_per_s": round(ok / seconds),
            "p50_ms": pct(0.50), "p99_ms": pct(0.99), "wall_s": round(elapsed, 1)}


def end_to_end(port: int, spool: Path) -> float:
    """Seconds from the acknowledgement of one event until the loader committed it."""
    import httpx

    auth = {"Authorization": "Basic " + base64.b64encode(f"{KEY}:".encode()).decode()}
    deadline = time.monotonic() + 120
    while any(spool.glob("*.jsonl")) and time.monotonic() < deadline:
        time.sleep(0.05)  # let the backlog of the load drain first
    r = httpx.post(f"http://127.0.0.1:{port}/v1/track", headers=auth,
                   json={"userId": "marker", "event": "Marker"})
    acked = time.perf_counter()
    assert r.status_code == 200, r.text
    while time.monotonic() < deadline:
        if not any(spool.glob("*.jsonl")) and not any(spool.glob("*.open")):
            return round(time.perf_counter() - acked, 2)
        time.sleep(0.02)
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="passerelle-bench-collector-"))
    project = _project(work / "proj")
    report: dict = {"seconds": args.seconds, "connections": args.connections, "runs": []}
    try:
        base_port, port = _port(), _port()
        baseline = _start(["-c", BASELINE, str(base_port)], base_port)
        collector = _start(["-m", "passerelle.collect", "--project", str(project), "--port",
                            str(port)], port)
        tag = 0
        for mode in ("single", "batch"):
            for name, p in (("baseline", base_port), ("collector", port)):
                tag += 1
                result = {"server": name, **drive(p, mode, args.seconds, args.connections,
                                                  tag)}
                print(json.dumps(result), flush=True)
                report["runs"].append(result)
        report["end_to_end_s"] = end_to_end(port, project / "spool" / "web")
        print(f"end-to-end delay (ack -> committed in raw_web): {report['end_to_end_s']} s")
        baseline.send_signal(signal.SIGTERM)
        collector.send_signal(signal.SIGTERM)
        collector.wait(60)
        baseline.wait(30)
        import duckdb

        con = duckdb.connect(str(project / "warehouse.duckdb"), read_only=True)
        rows = con.execute("select count(*), count(distinct messageId) from raw_web").fetchone()
        acked = sum(r["statuses"].get(200, 0) * (1 if r["mode"] == "single" else 100)
                    for r in report["runs"] if r["server"] == "collector") + 1
        report["raw_rows"], report["raw_distinct"], report["acked_events"] = (*rows, acked)
        print(f"raw_web rows {rows[0]} (distinct {rows[1]}), acknowledged {acked}")
        print("saved", save_report("collector", report))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
