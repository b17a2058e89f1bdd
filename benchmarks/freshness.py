"""Freshness: from an event accepted by the collector to the person's changed decision, and
to the audience change delivered by webhook (the issue's target: under 60 s).

    python benchmarks/freshness.py                    # 2,000-person demo, 5 trials
    python benchmarks/freshness.py --project DIR      # a demo folder (copied, never written)
    python benchmarks/freshness.py --redis --trials 10

Setup (not measured): the demo with the offers of benchmarks/decide.py, plus a collector
source ``web_live`` (a write key), a segment over events ``wishlisters`` (did ``Wishlist
Added`` in the last day) with an e-mail audience, a placement ``fresh_banner`` (no holdout,
no cap) whose offer ``wishlist`` is for that segment, and a webhook destination pointing at
an HTTP receiver of this process. One event is collected and `passerelle run` builds
everything. Then `passerelle serve` runs in its own process (collector, loader, API) and,
for each trial, a person of the e-mail audience who never added to a wishlist:

1. ``POST /v1/track`` (``Wishlist Added``, the person's e-shop customer id, HTTP Basic
   write key): the clock starts when the collector answers 200;
2. ``GET /v1/decide?placement=fresh_banner`` every 100 ms until the first message is the
   offer ``wishlist``: **to decision** (the loader commits the event, the server's
   freshener stages it, refreshes the segment and the serving store of the people touched);
3. the audience change by webhook: nothing sends an audience by itself (an export is a
   job, a CLI command or a page's button), so the benchmark queues an export job
   (``POST /api/jobs``, kind ``export``) as soon as the decision changed, again after each
   that did not carry the person, until the receiver got a batch with the person among
   ``entered``: **to webhook** (what a scheduler exporting right after each refresh
   would give; one exporting every N seconds adds up to N).

Reported: median and max of both over the trials against the 60 s target, the server's
refresh figures (``/v1/health`` ``freshness``) and its peak memory. Reports go to
benchmarks/results/.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import http.server
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from _common import save_report
from decide import SRC, _peak_mb, _port, _start, _stop, prepare

TARGET_S = 60.0
KEY = "wk_bench_freshness"
SECRET_ENV = "BENCH_FRESHNESS_SECRET"
SEGMENT, AUDIENCE, OFFER = "wishlisters", "wishlisters_email", "wishlist"
SERVER = '''
import sys
import passerelle
from passerelle.api.app import serve
serve(passerelle.open(sys.argv[1]), port=int(sys.argv[2]), loader=True)
'''


def files(hook_port: int) -> dict[str, str]:
    return {
        "sources/web_live.yml": f"""\
            entity: events
            description: Events sent to the collector
            owner: Digital analytics
            customer_source: eshop_customers
            connector:
              type: collector
              write_keys: ["{KEY}"]
              spool: {{type: file, path: spool}}
            columns:
              message_id: messageId
              type: type
              event: event
              user_id: userId
              anonymous_id: anonymousId
              email: email
              timestamp: timestamp
              properties: properties
              context: context
            """,
        f"segments/{SEGMENT}.yml": f"""\
            description: Added a product to their wishlist today
            owner: E-commerce
            where:
              did: {{event: Wishlist Added, at_least: 1, in_last_days: 1}}
            audiences:
              - name: {AUDIENCE}
                channel: email
                holdout_percent: 0
            """,
        "placements/fresh_banner.yml": """\
            description: Banner for the freshness benchmark
            channels: [web]
            holdout_percent: 0
            max_messages: 1
            default:
              content: {title: Our new collection}
            """,
        f"offers/{OFFER}.yml": f"""\
            description: For people who just added to their wishlist
            owner: E-commerce
            placements: [fresh_banner]
            priority: 100
            consent: none
            eligibility: {{segment: {SEGMENT}}}
            content: {{title: Your wishlist is waiting}}
            """,
        "destinations/receiver.yml": f"""\
            type: webhook
            url: http://127.0.0.1:{hook_port}/hook
            secret: ${{{SECRET_ENV}}}
            max_attempts: 2
            """,
    }


class Receiver(http.server.ThreadingHTTPServer):
    """The webhook receiver: when each person first arrived among ``entered``."""

    def __init__(self, port: int) -> None:
        self.entered: dict[str, float] = {}
        self.batches = 0
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", port), _Hook)


class _Hook(http.server.BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        now = time.perf_counter()
        with self.server.lock:
            self.server.batches += 1
            for member in body.get("entered", []):
                self.server.entered.setdefault(member["person_id"], now)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def _basic() -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{KEY}:".encode()).decode()}


def _poll(what, timeout: float, every: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = what()
        if got:
            return got
        time.sleep(every)
    return None


def setup(root: Path, hook_port: int, trials: int, redis_prefix: str | None) -> dict:
    """Demo, offers, the freshness files, a first collected event, `passerelle run`;
    returns the token and the trial people (person id, e-shop customer id)."""
    prep = prepare(root, 2000, redis_prefix)
    for name, text in files(hook_port).items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    port = _port()
    server = _start(["-c", SERVER, str(root), str(port)], port)
    try:
        url = f"http://127.0.0.1:{port}"
        r = httpx.post(f"{url}/v1/track", headers=_basic(), json={
            "type": "track", "event": "Page Viewed", "userId": "1",
            "messageId": f"setup-{uuid.uuid4()}"})
        r.raise_for_status()
        if not _poll(lambda: httpx.get(f"{url}/v1/health").json()["backlog"]
                     == {"web_live": 0}, 120):
            raise SystemExit("the first event was not loaded")

        def idle() -> bool:  # the refresh after that load done: stopping waits for nothing
            f = httpx.get(f"{url}/v1/health", timeout=60).json().get("freshness", {})
            return not (f.get("pending") or f.get("running"))

        _poll(idle, 600, 0.5)
    finally:
        _stop(server)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""\
        import passerelle
        with passerelle.open({str(root)!r}) as p:
            r = p.run()
            assert r.ok, [e.reason for e in r.errors]
        """)], env={**os.environ, "PYTHONPATH": str(SRC)}, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"passerelle run failed:\n{proc.stderr[:3000]}")
    print(f"  passerelle run with the collector source: {time.perf_counter() - t0:.0f}s",
          flush=True)
    sys.path.insert(0, str(SRC))
    import passerelle
    from passerelle.governance.db import open_app_db
    from passerelle.governance.tokens import create_token

    with passerelle.open(root) as project:
        e = project.engine
        members = e.table("audience_members")
        pm = e.table("person_map")
        done = e.table("segment_membership")
        done = done.filter(done.segment == SEGMENT)
        treated = members.filter((members.audience == "best_customers_email")
                                 & (members.group == "treated"))
        shop = pm.filter(pm.source == "eshop_customers")
        people = treated.join(shop, "person_id").anti_join(done, "person_id")
        people = people.select("person_id", "record_id").distinct().order_by("person_id")
        chosen = e.to_arrow(people.limit(trials)).to_pylist()
        db = open_app_db(project)
        _, token = create_token(db, ["api:write"], None, ("cli", "benchmark"),
                                name="freshness")
        db.close()
    if len(chosen) < trials:
        raise SystemExit(f"only {len(chosen)} people for {trials} trials")
    return {"token": token, "people": chosen, "refresh_s": prep["refresh_s"]}


def trial(url: str, token: str, person: dict, receiver: Receiver) -> dict:
    bearer = {"Authorization": f"Bearer {token}"}
    pid = person["person_id"]
    # a decision waits for the warehouse while a refresh holds it (the warehouse store)
    with httpx.Client(base_url=url, timeout=300) as client:
        r = client.post("/v1/track", headers=_basic(), json={
            "type": "track", "event": "Wishlist Added", "userId": person["record_id"],
            "messageId": f"fresh-{uuid.uuid4()}", "properties": {"sku": "BENCH-1"}})
        r.raise_for_status()
        t0 = time.perf_counter()

        def changed() -> float | None:
            d = client.get("/v1/decide", headers=bearer, params={
                "person": pid, "placement": "fresh_banner", "channel": "web"}).json()
            first = d["messages"][0]["offer"] if d.get("messages") else None
            return time.perf_counter() if first == OFFER else None

        decided = _poll(changed, TARGET_S * 3)
        exports = 0

        def delivered() -> float | None:
            nonlocal exports
            if pid in receiver.entered:
                return receiver.entered[pid]
            job = client.post("/api/jobs", headers=bearer, json={
                "kind": "export", "params": {"audience": AUDIENCE,
                                             "destination": "receiver"}}).json()
            exports += 1
            _poll(lambda: client.get(f"/api/jobs/{job['job_id']}", headers=bearer).json()
                  ["status"] in ("succeeded", "failed", "cancelled"), 120, 0.05)
            return receiver.entered.get(pid)

        hooked = _poll(delivered, TARGET_S * 3, 0.0) if decided else None
        health = client.get("/v1/health").json().get("freshness", {})
    return {"person_id": pid,
            "decision_s": round(decided - t0, 3) if decided else None,
            "webhook_s": round(hooked - t0, 3) if hooked else None,
            "exports": exports, "refresh": health.get("last")}


def _summary(values: list[float | None]) -> dict:
    got = [v for v in values if v is not None]
    return {"median_s": round(statistics.median(got), 3) if got else None,
            "max_s": round(max(got), 3) if got else None,
            "missed": len(values) - len(got),
            "within_target": bool(got) and len(got) == len(values)
            and max(got) < TARGET_S}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, help="a demo folder (copied first)")
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--redis", action="store_true", help="serve from the machine's Redis")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-fresh-"))
    root = tmp / "demo"
    prefix = f"bench:fresh:{os.getpid()}:" if args.redis else None
    os.environ[SECRET_ENV] = uuid.uuid4().hex  # the server reads it from its environment
    print(f"freshness benchmark: {args.trials} trials, "
          f"{'Redis' if args.redis else 'warehouse'} store", flush=True)
    hook_port = _port()
    receiver = Receiver(hook_port)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    try:
        if args.project is not None:
            shutil.copytree(args.project, root, ignore=shutil.ignore_patterns(
                ".passerelle", "spool"))
        ready = setup(root, hook_port, args.trials, prefix)
        port = _port()
        server = _start(["-c", SERVER, str(root), str(port)], port)
        try:
            url = f"http://127.0.0.1:{port}"
            results = []
            for person in ready["people"]:
                results.append(trial(url, ready["token"], person, receiver))
                r = results[-1]
                print(f"  {r['person_id']}: decision {r['decision_s']}s, webhook "
                      f"{r['webhook_s']}s ({r['exports']} export job(s))", flush=True)
            peak = _peak_mb(server.pid)
        finally:
            _stop(server)
        report = {"trials": args.trials, "store": "redis" if args.redis else "warehouse",
                  "target_s": TARGET_S, "results": results, "server_peak_mb": peak,
                  "to_decision": _summary([r["decision_s"] for r in results]),
                  "to_webhook": _summary([r["webhook_s"] for r in results]),
                  "webhook_batches": receiver.batches}
        for leg in ("to_decision", "to_webhook"):
            s = report[leg]
            print(f"  event accepted -> {leg[3:]}: median {s['median_s']}s, max "
                  f"{s['max_s']}s over {args.trials} trials (target {TARGET_S:.0f}s"
                  f"{', missed ' + str(s['missed']) if s['missed'] else ''})", flush=True)
        print(f"  API server peak memory: {peak} MB", flush=True)
        print(f"report: {save_report('freshness', report)}")
    finally:
        receiver.shutdown()
        if prefix is not None:
            import redis

            r = redis.Redis.from_url("redis://127.0.0.1:6379/0")
            keys = list(r.scan_iter(match=f"{prefix}*", count=10_000))
            for i in range(0, len(keys), 10_000):
                r.delete(*keys[i:i + 10_000])
        with contextlib.suppress(OSError):
            shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
