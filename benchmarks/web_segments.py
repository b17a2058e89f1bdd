"""Web pages of the segment builder and the campaigns, timed over HTTP from another process.

`passerelle serve` runs the project in its own process; this script signs in as a user and
asks each page ``--repeat`` times: the segments list, a new builder, the builder's live
preview (three groups: a field, an event with a window, a purchase excluded; overlap with
a saved segment; a breakdown by city), "why is this person in or out", the campaigns page,
the experiments page with the sample-size calculator and one experiment's read-out.
Reported: median and 95th percentile per page, and their ratio to the sign-in page (no
warehouse work) timed in the same run. Target (issue 17): under 300 ms a page at 1M
profiles.

    python benchmarks/web_segments.py --project path/to/demo     # a demo already run
    python benchmarks/web_segments.py --size 1000000              # makes the demo first
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import save_report

SRC = Path(__file__).resolve().parents[1] / "src"
EMAIL, PASSWORD = "bench-marketer@example.fr", "correct horse battery staple"
FORM = {"top": "all", "g0_match": "all", "g0_r0_kind": "field", "g0_r0_name": "country",
        "g0_r0_op": "=", "g0_r0_value": "FR",
        "g1_match": "all", "g1_r0_kind": "did", "g1_r0_event": "Product Viewed",
        "g1_r0_at_least": "1", "g1_r0_days": "30",
        "g2_match": "all", "g2_r0_kind": "bought", "g2_r0_not": "1", "g2_r0_days": "30",
        "overlap_0": "best_customers", "breakdown": "city"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _add_user(root: Path) -> None:
    import passerelle
    from passerelle.governance.db import open_app_db
    from passerelle.governance.errors import UserExists
    from passerelle.governance.users import add_user

    with passerelle.open(root) as project, open_app_db(project) as db, \
            contextlib.suppress(UserExists):  # a second run on the same project
        add_user(db, EMAIL, "marketer", PASSWORD, ("cli", "benchmark"))


def _timed(call, repeat: int) -> dict[str, float]:
    call()  # warm: the first call compiles templates and opens tables
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        response = call()
        times.append(time.perf_counter() - t0)
        if response.status_code != 200:
            raise SystemExit(f"{response.request.url} answered {response.status_code}")
    times.sort()
    return {"median_ms": statistics.median(times) * 1000,
            "p95_ms": times[min(len(times) - 1, int(len(times) * 0.95))] * 1000}


def main() -> None:
    import httpx

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, help="a demo project already run")
    parser.add_argument("--size", type=int, default=1_000_000, help="demo size to make")
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    root = args.project
    if root is None:
        from passerelle.demo.run import run_demo

        root = Path(__file__).parent / ".data" / f"web-demo-{args.size}"
        if not (root / "passerelle.yml").exists():
            run_demo(root, size=args.size, seed=7)
    root = root.resolve()
    _add_user(root)
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-c", "from passerelle.cli import main; main()", "serve",
         "--project", str(root), "--port", str(port), "--no-loader"],
        env={**os.environ, "PYTHONPATH": str(SRC)}, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        client = httpx.Client(base_url=base, timeout=120)
        deadline = time.monotonic() + 120
        while True:
            try:
                client.get("/v1/health")
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("the server did not start") from None
                time.sleep(0.1)
        login = client.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', login.text).group(1)
        client.post("/login", data={"csrf_token": token, "email": EMAIL,
                                    "password": PASSWORD, "next": "/"})
        page = client.get("/segments/new")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        hx = {"hx-request": "true"}
        preview = client.post("/segments/preview", data={"csrf_token": csrf, **FORM},
                              headers=hx)
        person = re.search(r'href="/customers/([^"]+)"', preview.text)
        experiments = client.get("/experiments").text
        experiment = re.search(r'href="/experiments/([^"]+)"', experiments)
        fresh = httpx.Client(base_url=base, timeout=120)
        pages = {
            "baseline: sign-in page": lambda: fresh.get("/login"),
            "segments list": lambda: client.get("/segments"),
            "new builder": lambda: client.get("/segments/new"),
            "live preview (3 groups, overlap, breakdown)": lambda: client.post(
                "/segments/preview", data={"csrf_token": csrf, **FORM}, headers=hx),
            "why in or out": lambda: client.post(
                "/segments/why", data={"csrf_token": csrf, **FORM,
                                       "person_id": person.group(1) if person else "x"},
                headers=hx),
            "campaigns": lambda: client.get("/campaigns"),
            "experiments + sample size": lambda: client.get(
                "/experiments?baseline=5&mde=10"),
        }
        if experiment:
            pages["experiment read-out"] = lambda: client.get(
                f"/experiments/{experiment.group(1)}")
        results = {}
        for name, call in pages.items():
            results[name] = _timed(call, args.repeat)
        base_ms = results["baseline: sign-in page"]["median_ms"]
        for name, r in results.items():
            r["ratio_to_baseline"] = r["median_ms"] / base_ms
            print(f"  {name}: median {r['median_ms']:.0f} ms, p95 {r['p95_ms']:.0f} ms "
                  f"({r['ratio_to_baseline']:.1f}x the sign-in page)", flush=True)
        path = save_report("web_segments", {"project": str(root), "repeat": args.repeat,
                                            "pages": results})
        print(f"report: {path}")
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
