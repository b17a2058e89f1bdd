"""Decision and profile API benchmark: latency at a target rate against a baseline route.

    python benchmarks/decide.py                       # 2,000-person demo, 200 req/s, 10 s
    python benchmarks/decide.py --size 1000000 --rate 1000 --seconds 60 [--redis]
    python benchmarks/decide.py --project DIR ...     # an existing demo (offers are added)
    python benchmarks/decide.py --redis --workers 1,2 --everyone ...

A demo project is generated (`passerelle demo`), a placement and three offers are added
(a segment with e-mail consent and a cap, an inline condition, everyone), the decision store
is refreshed (in the warehouse, or in the machine's Redis with ``--redis``) and an API token
made. Then, each server in its own process on loopback (uvicorn, access log off; the
Passerelle server with ``--workers`` processes answering decisions, one by default), the
load from another process: an asyncio HTTP/1.1 client over keep-alive connections that
sends requests on a fixed schedule (``--rate`` per second, open loop: a request's latency
runs from the moment it was due, so a server that falls behind is not hidden by a client
that waits). Phases, in this order:

- ``baseline``: a FastAPI app with the same route signature returning a fixed JSON body
  (a sync route, as /v1/decide is) and nothing else;
- ``decide``: ``GET /v1/decide?person=...&placement=home_banner&channel=web&device=...``
  with a bearer token, people drawn from the store's identifiers (5 % unknown);
- ``profiles``: ``GET /v1/profiles/<id>`` for known people.

Each phase is preceded by 2 s of the same load, not measured (connections, token check,
the store's first opening).

Reported: p50, p99 and max latency, error rate (any status but 200), achieved rate, and
p99 against the baseline's; peak resident memory of the API server (VmHWM); then the time
of batch decisions for the demo's e-mail audience (``decide_batch``, in a process of its
own, with its peak memory; ``--everyone``: an audience of everyone with an e-mail
consent), and the incremental update of the serving store for 100 people whose events just
changed (the last leg of an event's way to a changed decision). Reports go to
benchmarks/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import run_phase, save_report

SRC = Path(__file__).resolve().parents[1] / "src"
AUDIENCE = "best_customers_email"
EVERYONE = "bench_everyone_email"
EVERYONE_SEGMENT = """\
description: Everyone (decide benchmark)
owner: benchmark
where: {field: person_id, op: not_null}
audiences:
  - {name: bench_everyone_email, channel: email, holdout_percent: 0}
"""

BASELINE = '''
import sys, uvicorn
from fastapi import FastAPI
app = FastAPI()
BODY = {"decision_id": "00000000-0000-0000-0000-000000000000", "placement": "home_banner",
        "person_id": "P1", "group": "treated", "default": False,
        "messages": [{"offer": "everyone", "content": {"title": "Free delivery"},
                      "reason": {"rule": "priority"}, "rank": 1, "probability": 1.0}]}
@app.get("/v1/decide")
def decide(person: str, placement: str, channel: str | None = None):
    return BODY
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning",
            access_log=False)
'''

SERVER = '''
import sys
import passerelle
from passerelle.api.app import serve
serve(passerelle.open(sys.argv[1]), port=int(sys.argv[2]), loader=False,
      workers=int(sys.argv[3]))
'''

FILES = {
    "placements/home_banner.yml": """\
        description: Banner at the top of the home page
        channels: [web, app, email]
        context:
          device: {type: text, values: [mobile, desktop]}
        holdout_percent: 10
        max_messages: 2
        caps:
          - {at_most: 50, per: 1d}
        default:
          content: {title: Our new collection, url: https://shop.example.fr/new}
        """,
    "offers/best_customers.yml": """\
        description: A thank-you for the best customers
        owner: CRM team
        placements: [home_banner]
        priority: 50
        consent: email
        eligibility: {segment: best_customers}
        fields: [first_name]
        traits: [favourite_category]
        content:
          title: "{{ first_name|default('Hello', true) }}, new {{ favourite_category }} for you"
          url: https://shop.example.fr/vip
        caps:
          - {at_most: 20, per: 1d}
        """,
    "offers/favourite.yml": """\
        description: The person's favourite category, on mobile
        owner: E-commerce
        placements: [home_banner]
        priority: 20
        consent: none
        eligibility: {where: {trait: favourite_category, op: not_null}}
        context: [{context: device, op: "=", value: mobile}]
        traits: [favourite_category]
        content:
          title: "Our {{ favourite_category }} selection"
        """,
    "offers/everyone.yml": """\
        description: Free delivery for everyone
        owner: E-commerce
        placements: [home_banner]
        priority: 0
        consent: none
        content: {title: Free delivery, url: https://shop.example.fr/delivery}
        """,
}


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(args: list[str], port: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.Popen([sys.executable, *args], env=env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.2)
    raise SystemExit("server did not start")


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _family(pid: int) -> list[int]:
    """The server and its decision workers (its children)."""
    with contextlib.suppress(OSError):
        return [pid, *map(int, Path(f"/proc/{pid}/task/{pid}/children").read_text().split())]
    return [pid]


def _peak_mb(pid: int) -> int:
    """Peak resident memory (VmHWM), summed over the server's processes."""
    total = 0
    for p in _family(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1]) // 1024
    return total or -1


def _cpu_s(pid: int) -> float:
    """CPU seconds (user and system, every thread) the server's processes used so far."""
    total = 0
    for p in _family(pid):
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def measured(pid: int, port: int, paths: list[str], token: str, rate: float,
             connections: int) -> dict:
    """:func:`drive`, with the server's CPU time a request (steadier than latency on a
    machine shared with other work: what the server itself spends)."""
    cpu = _cpu_s(pid)
    out = drive(port, paths, token, rate, connections)
    out["server_cpu_ms_per_request"] = round(
        (_cpu_s(pid) - cpu) * 1000 / max(1, out["requests"]), 3)
    return out


def _line(name: str, r: dict) -> None:
    print(f"  {name:22s} {r['rate_per_s']:5d} req/s  p50 {r['p50_ms']:7.2f} ms  "
          f"p99 {r['p99_ms']:7.2f} ms  max {r['max_ms']:8.2f} ms  "
          f"errors {r['error_rate']:.2%}  server CPU {r['server_cpu_ms_per_request']:.2f} "
          "ms/req" + (f"  p99 x{r['p99_vs_baseline']} baseline"
                      if "p99_vs_baseline" in r else ""), flush=True)


def prepare(root: Path, size: int, redis_prefix: str | None, everyone: bool = False
            ) -> dict:
    """Demo (unless ``root`` is one already), offers, store, token, request targets;
    ``everyone``: the segment of everyone and its e-mail audience, built."""
    sys.path.insert(0, str(SRC))
    import passerelle
    from passerelle.governance.db import open_app_db
    from passerelle.governance.tokens import create_token
    from passerelle.personalize import refresh_decision_store
    from passerelle.personalize.tables import IDS

    if not (root / "passerelle.yml").exists():
        from passerelle.demo.run import run_demo

        t0 = time.perf_counter()
        outcome = run_demo(root, size=size, seed=11)
        if not outcome.result.ok:
            raise SystemExit(f"demo run failed: {outcome.result.errors}")
        print(f"  demo of {size:,} people: {time.perf_counter() - t0:.0f}s", flush=True)
    for name, text in FILES.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    if redis_prefix is not None:
        config = (root / "passerelle.yml").read_text()
        if "personalisation:" not in config:
            (root / "passerelle.yml").write_text(
                config + "\npersonalisation:\n  redis_url: redis://127.0.0.1:6379/0\n"
                f"  redis_prefix: \"{redis_prefix}\"\n")
    if everyone:
        (root / "segments" / "bench_everyone.yml").write_text(EVERYONE_SEGMENT)
    with passerelle.open(root) as project:
        if everyone:
            from passerelle.segments import service

            t0 = time.perf_counter()
            service.refresh(project, ["bench_everyone"])
            print(f"  segment and audience of everyone: {time.perf_counter() - t0:.0f}s",
                  flush=True)
        t0 = time.perf_counter()
        summary = refresh_decision_store(project)
        refresh_s = time.perf_counter() - t0
        ids = project.engine.table(IDS)
        sample = project.engine.to_arrow(ids.order_by(ids.id.hash()).limit(5000))
        targets = sample.to_pylist()
        db = open_app_db(project)
        _, secret = create_token(db, ["profiles:read"], None, ("cli", "benchmark"),
                                 name="benchmark")
        db.close()
    print(f"  decision store: {summary.people:,} people, {summary.ids:,} identifiers, "
          f"{refresh_s:.1f}s{' (+ Redis)' if summary.redis else ''}", flush=True)
    return {"token": secret, "targets": targets, "refresh_s": round(refresh_s, 2),
            "people": summary.people, "eligible": summary.eligible}


def _paths(kind: str, targets: list[dict], n: int) -> list[str]:
    from urllib.parse import quote

    rnd = random.Random(7)
    out = []
    for i in range(n):
        who = targets[i % len(targets)]["id"]
        device = "mobile" if i % 2 else "desktop"
        if kind == "profiles":
            out.append(f"/v1/profiles/{quote(who, safe='')}")
            continue
        if rnd.random() < 0.05:
            who = f"unknown-{i}@example.org"
        out.append(f"/v1/decide?person={quote(who, safe='')}&placement=home_banner"
                   f"&channel=web&device={device}")
    return out


async def _run(port: int, paths: list[str], token: str, rate: float, connections: int,
               ) -> tuple[list[float], dict[int, int], float]:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    head = (f"Host: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n"
            "Accept: application/json\r\n\r\n")
    start = time.perf_counter() + 0.2

    async def connection(first: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for k in range(first, len(paths), connections):
            due = start + k / rate
            wait = due - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(f"GET {paths[k]} HTTP/1.1\r\n{head}".encode())
            answer = await reader.readuntil(b"\r\n\r\n")
            low = answer.lower()
            at = low.find(b"content-length:") + 15
            await reader.readexactly(int(answer[at:answer.index(b"\r\n", at)]))
            latencies.append(time.perf_counter() - due)
            status = int(answer[9:12])
            statuses[status] = statuses.get(status, 0) + 1
        writer.close()

    await asyncio.gather(*[connection(c) for c in range(connections)])
    return latencies, statuses, time.perf_counter() - start


def _load(port: int, paths: list[str], token: str, rate: float, connections: int,
          out: mp.Queue) -> None:
    import uvloop

    cpu0 = os.times()
    latencies, statuses, elapsed = uvloop.run(_run(port, paths, token, rate, connections))
    cpu1 = os.times()
    out.put((latencies, statuses, elapsed,
             (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)))


def drive(port: int, paths: list[str], token: str, rate: float, connections: int) -> dict:
    """The load from a separate process; latency percentiles, errors, achieved rate."""
    ctx = mp.get_context("spawn")
    queue: mp.Queue = ctx.Queue()
    proc = ctx.Process(target=_load, args=(port, paths, token, rate, connections, queue))
    proc.start()
    latencies, statuses, elapsed, client_cpu = queue.get()
    proc.join()
    latencies.sort()

    def pct(p: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000, 2)

    errors = sum(n for s, n in statuses.items() if s != 200)
    return {"requests": len(latencies), "statuses": statuses,
            "rate_per_s": round(len(latencies) / elapsed), "p50_ms": pct(0.50),
            "p99_ms": pct(0.99), "max_ms": round(latencies[-1] * 1000, 2),
            "error_rate": round(errors / max(1, len(latencies)), 5),
            "client_cpu_s": round(client_cpu, 2)}


def batch(root: Path, audience: str) -> dict:
    phase = run_phase("batch decisions", textwrap.dedent(f"""\
        summary = decide_batch(project, "home_banner", "{audience}", {{"channel": "email"}})
        DETAIL = {{"decided": summary.people, "holdout": summary.holdout,
                  "default": summary.default, "offers": summary.offers}}
        project.close()
        """), setup=textwrap.dedent(f"""\
        import sys
        sys.path.insert(0, {str(SRC)!r})
        import passerelle
        from passerelle.personalize.batch import decide_batch
        project = passerelle.open({str(root)!r})
        """))
    return {"seconds": round(phase.seconds, 2), "peak_mb": round(phase.peak_mb),
            **phase.detail}


def touched(root: Path, people: int = 100) -> dict:
    """The last leg of freshness: the serving store of ``people`` people whose events just
    changed (logged as arrivals, as the event-driven refresh does), updated for them only
    (warehouse and Redis when configured)."""
    phase = run_phase("incremental store update", textwrap.dedent("""\
        n = refresh_touched(project, since)
        DETAIL = {"people": n}
        project.close()
        """), setup=textwrap.dedent(f"""\
        import sys
        sys.path.insert(0, {str(SRC)!r})
        from datetime import UTC, datetime
        import pyarrow as pa
        import passerelle
        from passerelle.personalize.incremental import refresh_touched
        from passerelle.personalize.tables import PEOPLE
        from passerelle.segments.activity import ARRIVALS, ensure_tracking
        project = passerelle.open({str(root)!r})
        engine = project.engine
        since = datetime.now(UTC).replace(tzinfo=None)
        who = engine.to_arrow(engine.table(PEOPLE).select("person_id").limit({people}))
        ensure_tracking(engine)
        ids = who["person_id"].to_pylist()
        engine.append_arrow(ARRIVALS, pa.table({{
            "person_id": ids, "event": ["Product Viewed"] * len(ids),
            "arrived_at": pa.array([since] * len(ids), pa.timestamp("us"))}}).to_reader())
        """))
    return {"seconds": round(phase.seconds, 2), "peak_mb": round(phase.peak_mb),
            **phase.detail}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2000, help="people in the demo")
    parser.add_argument("--project", type=Path, help="an existing demo folder to use")
    parser.add_argument("--rate", type=float, default=200, help="requests per second")
    parser.add_argument("--seconds", type=float, default=10, help="of each phase")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--redis", action="store_true", help="serve from the machine's Redis")
    parser.add_argument("--workers", default="1",
                        help="processes answering decisions (passerelle serve --workers; "
                             "above 1 needs --redis); several, comma-separated (1,2): "
                             "one server after the other, at the same rate")
    parser.add_argument("--everyone", action="store_true",
                        help="batch decisions for an audience of everyone with an e-mail "
                             "consent (a segment the benchmark adds), not the best "
                             "customers'")
    parser.add_argument("--keep", action="store_true", help="keep the generated demo")
    args = parser.parse_args()
    counts = [int(c) for c in args.workers.split(",")]
    audience = EVERYONE if args.everyone else AUDIENCE

    tmp = Path(tempfile.mkdtemp(prefix="bench-decide-"))
    root = (args.project or tmp / "demo").resolve()
    # a prefix of this run's own: another run on the machine keeps its keys
    prefix = f"bench:decide:{os.getpid()}:" if args.redis else None
    print(f"decide benchmark: {args.rate:.0f} req/s for {args.seconds:.0f}s a phase, "
          f"{'Redis' if args.redis else 'warehouse'} store", flush=True)
    try:
        prep = prepare(root, args.size, prefix, args.everyone)
        n = int(args.rate * args.seconds)
        warm = int(args.rate * 2)  # 2 s of the same load first, not measured
        report: dict = {"size": prep["people"], "rate": args.rate, "seconds": args.seconds,
                        "connections": args.connections, "workers": counts,
                        "store": "redis" if args.redis else "warehouse",
                        "refresh_s": prep["refresh_s"], "eligible": prep["eligible"]}
        port = _port()
        base = _start(["-c", BASELINE, str(port)], port)
        try:
            paths = _paths("decide", prep["targets"], n)
            drive(port, paths[:warm], prep["token"], args.rate, args.connections)
            report["baseline"] = measured(base.pid, port, paths, prep["token"], args.rate,
                                          args.connections)
        finally:
            _stop(base)
        for workers in counts:  # each server in turn, at the same rate
            port = _port()
            server = _start(["-c", SERVER, str(root), str(port), str(workers)], port)
            while len(_family(server.pid)) < workers:  # the decision workers started,
                time.sleep(0.2)
            time.sleep(5)  # and listen (imports, Redis): the warm-up load reaches each
            mine: dict = report.setdefault("servers", {}).setdefault(str(workers), {})
            try:
                for kind in ("decide", "profiles"):
                    paths = _paths(kind, prep["targets"], n)
                    drive(port, paths[:warm], prep["token"], args.rate, args.connections)
                    mine[kind] = measured(server.pid, port, paths, prep["token"], args.rate,
                                          args.connections)
                    mine[kind]["p99_vs_baseline"] = round(
                        mine[kind]["p99_ms"] / max(report["baseline"]["p99_ms"], 1e-3), 2)
                mine["server_peak_mb"] = _peak_mb(server.pid)
            finally:
                _stop(server)
        # the first server's figures where reports have always had them
        first = report["servers"][str(counts[0])]
        report.update(decide=first["decide"], profiles=first["profiles"],
                      server_peak_mb=first["server_peak_mb"])
        report["batch"] = batch(root, audience)
        report["touched"] = touched(root)
        _line("baseline", report["baseline"])
        for workers, mine in report["servers"].items():
            for kind in ("decide", "profiles"):
                _line(f"{kind} ({workers} process{'es' if workers != '1' else ''})",
                      mine[kind])
            print(f"  API server peak memory ({workers}): {mine['server_peak_mb']} MB "
                  "(its processes together)", flush=True)
        b = report["batch"]
        print(f"  batch decisions for {audience}: {b['decided']:,} people in "
              f"{b['seconds']:.1f}s, peak {b['peak_mb']} MB", flush=True)
        t = report["touched"]
        print(f"  decision store updated for {t['people']} touched people in "
              f"{t['seconds']:.2f}s, peak {t['peak_mb']} MB", flush=True)
        print(f"report: {save_report('decide', report)}")
        print(json.dumps({k: report[k] for k in ("baseline", "decide", "profiles")}))
    finally:
        if prefix is not None:
            import redis

            r = redis.Redis.from_url("redis://127.0.0.1:6379/0")
            keys = list(r.scan_iter(match=f"{prefix}*", count=10_000))
            for i in range(0, len(keys), 10_000):
                r.delete(*keys[i:i + 10_000])
        if not args.keep and args.project is None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
