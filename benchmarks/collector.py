"""Collector benchmark: events/s, latency and end-to-end delay, against an empty-200 baseline.

    python benchmarks/collector.py [--seconds 10] [--connections 64]

Each server runs in its own process on loopback (uvicorn, one worker, access log off): the
collector with durability on (file spool, fsync per group commit, loader writing DuckDB),
a baseline FastAPI app with the same routes that answers ``{"success": true}`` without
reading the body, and a bare asyncio responder (no framework) that shows the load client's
own ceiling. The load comes from a separate process: an asyncio HTTP/1.1 client over
keep-alive connections (no third-party load tool is installed here) whose request bodies
are filled from a template by one ``%`` per request (every ``messageId`` unique), so the
client spends little CPU. Client and servers share the machine's cores: the CPU seconds of
each side are reported. Modes: (a) single events on ``/v1/track``, (b) ``/v1/batch`` with
100 events. After the batch run: the seconds the loader needed to drain what was accepted
(``drain_s``), hence the rate sustained with loading included. End-to-end delay: time from
the acknowledgement of one marker event until the loader committed it to ``raw_<source>``
(its spool segment released), measured on an idle server after the load.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
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
import uvloop

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


RAW = '''
import asyncio, sys, uvloop
OK = (b"HTTP/1.1 200 OK\\r\\ncontent-type: application/json\\r\\ncontent-length: 16\\r\\n\\r\\n"
      b'{"success":true}')
class Responder(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport, self.buf = transport, b""
    def data_received(self, data):
        self.buf += data
        while True:
            head_end = self.buf.find(b"\\r\\n\\r\\n")
            if head_end < 0:
                return
            length = 0
            for line in self.buf[:head_end].split(b"\\r\\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            end = head_end + 4 + length
            if len(self.buf) < end:
                return
            self.buf = self.buf[end:]
            self.transport.write(OK)
async def main():
    server = await asyncio.get_running_loop().create_server(Responder, "127.0.0.1",
                                                            int(sys.argv[1]))
    await server.serve_forever()
uvloop.run(main())
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


def _template(worker: int, count: int) -> bytes:
    """A request body whose ``%d`` slots take the message numbers (ids, users, SKUs vary)."""
    events = []
    for i in range(count):
        event = _event(i, worker)
        event["messageId"] = "MID"
        events.append(orjson.dumps(event).replace(b"MID", f"{worker}-%d".encode()))
    if count == 1:
        return events[0]
    return b'{"batch":[' + b",".join(events) + b"]}"


def _head(path: str, port: int) -> bytes:
    auth = base64.b64encode(f"{KEY}:".encode()).decode()
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Authorization: Basic {auth}\r\nContent-Type: application/json\r\n"
            "Content-Length: ").encode()


async def _connection(port: int, mode: str, worker: int, until: float, latencies: list,
                      statuses: dict) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    per = 1 if mode == "single" else 100
    template = _template(worker, per)
    head = _head("/v1/track" if mode == "single" else "/v1/batch", port)
    n = 0
    while time.perf_counter() < until:
        body = template % tuple(range(n, n + per))
        n += per
        t0 = time.perf_counter()
        writer.write(b"%s%d\r\n\r\n%s" % (head, len(body), body))
        answer = await reader.readuntil(b"\r\n\r\n")
        at = answer.lower().find(b"content-length:") + 15
        length = int(answer[at:answer.index(b"\r\n", at)])
        await reader.readexactly(length)
        latencies.append(time.perf_counter() - t0)
        status = int(answer[9:12])
        statuses[status] = statuses.get(status, 0) + 1
    writer.close()


def _load(port: int, mode: str, seconds: float, connections: int, offset: int,
          out: mp.Queue) -> None:
    async def main() -> tuple[list, dict, float]:
        latencies: list[float] = []
        statuses: dict[int, int] = {}
        started = time.perf_counter()
        until = started + seconds
        await asyncio.gather(*[_connection(port, mode, offset + c, until, latencies, statuses)
                               for c in range(connections)])
        return latencies, statuses, time.perf_counter() - started

    cpu0 = os.times()
    latencies, statuses, elapsed = uvloop.run(main())
    cpu1 = os.times()
    cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    out.put((latencies, statuses, elapsed, cpu))


def _cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) of a process and its children that were waited for,
    plus its live children (the collector's loader process)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    pids = [pid]
    with contextlib.suppress(OSError):
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(c) for c in children]
    for p in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += sum(int(f) for f in fields[11:15]) / tick
    return total


def _peak_mb(pid: int) -> dict[str, int]:
    """Peak resident memory (VmHWM) of a process and of each live child, in MB."""
    pids = [pid]
    with contextlib.suppress(OSError):
        pids += [int(c) for c in
                 Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    peaks: dict[str, int] = {}
    for p in pids:
        with contextlib.suppress(OSError):
            status = Path(f"/proc/{p}/status").read_text().splitlines()
            peak = next(int(line.split()[1]) // 1024 for line in status
                        if line.startswith("VmHWM:"))
            cmdline = Path(f"/proc/{p}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            name = "collector" if p == pid else (
                "loader" if "multiprocessing.spawn" in cmdline else "helper")
            peaks[f"{name} ({p})"] = peak
    return peaks


def drive(port: int, mode: str, seconds: float, connections: int, tag: int,
          server_pid: int) -> dict:
    """Load from a separate process; returns events/s, latency percentiles, CPU use."""
    queue: mp.Queue = mp.get_context("spawn").Queue()
    proc = mp.get_context("spawn").Process(target=_load, args=(port, mode, seconds, connections,
                                                               tag * 10_000, queue))
    proc.start()
    server_cpu = _cpu_seconds(server_pid)
    latencies, statuses, elapsed, client_cpu = queue.get()
    server_cpu = _cpu_seconds(server_pid) - server_cpu
    proc.join()
    latencies.sort()
    per = 1 if mode == "single" else 100
    ok = statuses.get(200, 0)

    def pct(p: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000, 2)

    after = _cpu_seconds(server_pid)

    def drain_cpu() -> float:  # what the server (and loader) spent since the load ended
        return _cpu_seconds(server_pid) - after

    return {"_drain_cpu": drain_cpu, "mode": mode, "requests": len(latencies),
            "statuses": statuses,
            "events_per_s": round(ok * per / elapsed), "requests_per_s": round(ok / elapsed),
            "p50_ms": pct(0.50), "p99_ms": pct(0.99), "seconds": round(elapsed, 2),
            "client_cpu_s": round(client_cpu, 1), "server_cpu_s": round(server_cpu, 1)}


def drained(spool: Path, timeout: float = 300) -> float:
    """Seconds until the loader emptied the spool (every accepted event committed)."""
    started = time.perf_counter()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(spool.glob("*.jsonl")) and not any(spool.glob("*.open")):
            return round(time.perf_counter() - started, 2)
        time.sleep(0.02)
    return float("nan")


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
    spool = project / "spool" / "web"
    report: dict = {"seconds": args.seconds, "connections": args.connections, "runs": []}
    servers: list[subprocess.Popen] = []
    try:
        raw_port, base_port, port = _port(), _port(), _port()
        servers.append(raw := _start(["-c", RAW, str(raw_port)], raw_port))
        servers.append(baseline := _start(["-c", BASELINE, str(base_port)], base_port))
        servers.append(collector := _start(["-m", "passerelle.collect", "--project",
                                            str(project), "--port", str(port)], port))
        tag = 0
        for mode in ("single", "batch"):
            for name, p, proc in (("client ceiling (bare asyncio)", raw_port, raw),
                                  ("baseline", base_port, baseline),
                                  ("collector", port, collector)):
                tag += 1
                result = {"server": name, **drive(p, mode, args.seconds, args.connections,
                                                  tag, proc.pid)}
                drain_cpu = result.pop("_drain_cpu")
                if name == "collector":
                    result["drain_s"] = drained(spool)
                    events = result["events_per_s"] * result["seconds"]
                    result["sustained_events_per_s"] = round(
                        events / (result["seconds"] + result["drain_s"]))
                    # CPU of the collector and its loader until every accepted event was
                    # committed: what the machine must give per event, however busy it is
                    cpu = result["server_cpu_s"] + drain_cpu()
                    result["server_cpu_incl_drain_s"] = round(cpu, 1)
                    result["cpu_us_per_event"] = round(cpu / max(1, events) * 1e6, 1)
                print(json.dumps(result), flush=True)
                report["runs"].append(result)
        runs = {(r["server"], r["mode"]): r for r in report["runs"]}
        for mode in ("single", "batch"):
            ratio = (runs[("baseline", mode)]["events_per_s"]
                     / max(1, runs[("collector", mode)]["events_per_s"]))
            report[f"{mode}_baseline_over_collector"] = round(ratio, 2)
            print(f"{mode}: baseline / collector = {ratio:.2f}x")
        report["end_to_end_s"] = end_to_end(port, spool)
        print(f"end-to-end delay (ack -> committed in raw_web): {report['end_to_end_s']} s")
        report["collector_peak_mb"] = _peak_mb(collector.pid)
        print(f"collector peak memory, MB: {report['collector_peak_mb']}")
        for proc in servers:
            proc.send_signal(signal.SIGTERM)
        collector.wait(60)
        import duckdb

        con = duckdb.connect(str(project / "warehouse.duckdb"), read_only=True)
        rows = con.execute("select count(*), count(distinct messageId) from raw_web").fetchone()
        acked = sum(r["statuses"].get(200, 0) * (1 if r["mode"] == "single" else 100)
                    for r in report["runs"] if r["server"] == "collector") + 1
        report["raw_rows"], report["raw_distinct"], report["acked_events"] = (*rows, acked)
        print(f"raw_web rows {rows[0]} (distinct {rows[1]}), acknowledged {acked}")
        print("saved", save_report("collector", report))
    finally:
        for proc in servers:
            if proc.poll() is None:
                proc.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
