"""Web pages benchmark: how long a signed-in person waits for each page.

    python benchmarks/web.py [--size 2000] [--repeat 20] [--project DIR]

Builds the demo (``--size`` people, once, kept in benchmarks/.data/, shared with
benchmarks/cli.py) unless ``--project`` names one, starts ``passerelle serve`` on it in
another process, signs in as an IT administrator (every page is open to that role) and
drives each page over HTTP with httpx, one request at a time, as a browser would. Baseline
in the same run: ``/v1/health`` (the server's cheapest route), so a figure can be read on a
busy machine as a ratio. Each page is fetched once to warm it, then ``--repeat`` times; p50
and p95 are reported, and the server's peak memory (VmHWM) at the end.
Target (issue 17): each page under 300 ms.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from _common import save_report
from cli import CLI, DATA, demo_project

TARGET_S = 0.3
EMAIL, PASSWORD = "bench-admin@example.fr", "a benchmark password that is long"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def add_admin(project: Path) -> None:
    """The benchmark's user (kept from one run to the next)."""
    done = subprocess.run([*CLI, "users", "add", EMAIL, "--role", "it_admin",
                           "--password-stdin", "--project", str(project)],
                          input=PASSWORD + "\n", capture_output=True, text=True)
    if done.returncode != 0 and "already exists" not in done.stdout + done.stderr:
        raise SystemExit(f"could not add the benchmark user:\n{done.stdout}{done.stderr}")


def start_server(project: Path, port: int) -> subprocess.Popen:
    proc = subprocess.Popen([*CLI, "serve", "--project", str(project), "--port", str(port),
                             "--no-loader"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server stopped:\n{proc.stdout.read().decode()[-3000:]}")
        try:
            httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=0.5)
            return proc
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("the server did not start within 120 s")


def peak_mb(pid: int) -> float:
    """The process's peak resident memory so far (Linux: VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def sign_in(client: httpx.Client) -> None:
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    done = client.post("/login", data={"csrf_token": token, "email": EMAIL,
                                       "password": PASSWORD, "next": "/"})
    if done.status_code != 303:
        raise SystemExit(f"sign-in failed ({done.status_code})")


def pages(client: httpx.Client, project: Path) -> dict[str, str]:
    """Every page of the app, with a real customer and a real trait of the demo."""
    import csv

    with (project / "data" / "crm_contacts.csv").open(encoding="utf-8") as f:
        row = next(r for r in csv.DictReader(f) if r.get("last_name") and r.get("first_name"))
    query = f"{row['last_name']} {row['first_name']}"
    found = client.get("/customers", params={"q": query}).text
    person = re.search(r'href="/customers/(P[0-9a-f]+)"', found)
    glossary = client.get("/glossary").text
    trait = re.search(r'href="/glossary/lineage/(trait/[a-z0-9_]+)"', glossary)
    out = {"/v1/health (baseline)": "/v1/health", "home": "/", "glossary": "/glossary",
           "customer search": f"/customers?q={query}",
           "profile": f"/customers/{person.group(1)}" if person else None,
           "lineage graph": f"/glossary/lineage/{trait.group(1)}" if trait else None,
           "glossary proposals": "/glossary/proposals",
           "data health": "/health", "jobs and runs": "/health/jobs",
           "check history": "/health/checks", "tracking plan": "/health/violations",
           "identity preview form": "/health/identity",
           "admin users": "/admin/users", "admin roles": "/admin/roles",
           "admin tokens": "/admin/tokens", "admin consent": "/admin/consent",
           "audit log": "/admin/audit"}
    # The campaigns page, then each section it loads after it (HTMX) when it has some, and
    # one experiment's read-out.
    campaigns = client.get("/campaigns").text
    out["campaigns"] = "/campaigns"
    for section in re.findall(r'hx-get="(/campaigns/sections/[a-z]+)\?', campaigns):
        out[f"campaigns {section.rsplit('/', 1)[1]}"] = section
    experiment = re.search(r'href="/experiments/([^"]+)"', client.get("/experiments").text)
    out["experiment read-out"] = f"/experiments/{experiment.group(1)}" if experiment else None
    return {name: path for name, path in out.items() if path is not None}


WAITING = 'id="job-bar"'  # a page whose figures are being computed by a job shows its bar


def measure(client: httpx.Client, path: str, repeat: int) -> tuple[float, list[float], int]:
    """The first request's time (it compiles the template), then ``repeat`` requests'
    times, and how many of the answers showed a job's progress bar instead of the figures
    (a figure the run did not store, or one of older data: the page queued its job)."""
    started = time.perf_counter()
    r = client.get(path, timeout=900)
    first = time.perf_counter() - started
    if r.status_code != 200:
        raise SystemExit(f"{path} answered {r.status_code}")
    times, waiting = [], int(WAITING in r.text)
    for _ in range(repeat):
        started = time.perf_counter()
        r = client.get(path)
        times.append(time.perf_counter() - started)
        if r.status_code != 200:
            raise SystemExit(f"{path} answered {r.status_code}")
        waiting += WAITING in r.text
    return first, times, waiting


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--project", type=Path, help="An existing project (default: the demo)")
    args = parser.parse_args()
    DATA.mkdir(exist_ok=True)
    project = (args.project or demo_project(args.size)).resolve()
    add_admin(project)
    port = free_port()
    server = start_server(project, port)
    rows = []
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            sign_in(client)
            for name, path in pages(client, project).items():
                first, times, waiting = measure(client, path, args.repeat)
                cuts = statistics.quantiles(times, n=20, method="inclusive")
                rows.append({"page": name, "path": path, "p50_s": statistics.median(times),
                             "p95_s": cuts[18], "max_s": max(times), "first_s": first,
                             "answers_waiting_for_a_job": waiting})
        server_peak = peak_mb(server.pid)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.kill(server.pid, signal.SIGKILL)
            server.wait()
    base = rows[0]["p50_s"]
    print(f"\n{'page':24} {'first':>9} {'p50':>8} {'p95':>8} {'x baseline':>11}  target"
          "  (answers showing a job's progress bar, not the figures)")
    for r in rows:
        r["ratio"] = r["p50_s"] / base
        verdict = "" if r is rows[0] else (
            f"{'met' if r['p95_s'] <= TARGET_S else 'MISSED'} (p95 < {TARGET_S * 1000:.0f} ms)")
        print(f"{r['page'][:24]:24} {r['first_s']:8.1f}s {r['p50_s'] * 1000:6.1f}ms "
              f"{r['p95_s'] * 1000:6.1f}ms "
              f"{r['ratio']:10.1f}x  {verdict}"
              + (f"  [{r['answers_waiting_for_a_job']} waiting]"
                 if r["answers_waiting_for_a_job"] else ""))
    print(f"\nserver peak memory: {server_peak:.0f} MB")
    path = save_report("web", {"project": str(project), "size": args.size,
                               "repeat": args.repeat, "server_peak_mb": server_peak,
                               "rows": rows})
    print(f"report: {path}")


if __name__ == "__main__":
    main()
