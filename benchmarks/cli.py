"""Command-line benchmark: how long a person waits for each everyday command.

    python benchmarks/cli.py [--size 2000] [--repeat 5] [--project DIR]

Builds the demo (``--size`` people, once, kept in benchmarks/.data/) unless ``--project``
names one, then times each command as a user runs it: a new process each time, from start
to exit. Baseline in the same run: ``python -c pass`` (the interpreter's own start-up), so
a figure can be read on a busy machine as a ratio. Each command runs ``--repeat`` times;
the median is reported with the fastest and slowest, the median CPU time (user + system:
what the command costs, less sensitive than wall time to other work on the machine) and
the peak memory of the process. Targets (issue 15): ``--help`` under 0.3 s, read-only
commands under 1 s. The first run of each command is not counted: it warms the file cache
and lets a command keep the SQL it compiles (``.passerelle/compiled-sql.json``), as a
user's second command would find it.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import save_report

DATA = Path(__file__).parent / ".data"
HELP_TARGET_S, READ_TARGET_S = 0.3, 1.0
CLI = [sys.executable, "-c", "from passerelle.cli import main; main()"]


def timed(args: list[str], cwd: Path) -> tuple[float, float, float]:
    """(seconds, peak MB, CPU seconds) of one run of ``args`` in a fresh process."""
    started = time.perf_counter()
    proc = subprocess.Popen(args, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "COLUMNS": "100"})
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({proc.returncode}):\n"
                         f"{proc.stderr.read().decode()[-2000:] if proc.stderr else ''}")
    return seconds, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime


def demo_project(size: int) -> Path:
    project = DATA / f"cli-demo-{size}" / "project"
    if not (project / "warehouse.duckdb").exists():
        print(f"building the demo ({size:,} people) in {project.parent} ...", flush=True)
        subprocess.run([*CLI, "demo", str(project), "--size", str(size)], check=True,
                       stdout=subprocess.DEVNULL, cwd=DATA)
    return project


def some_email(project: Path) -> str:
    with (project / "data" / "crm_contacts.csv").open(encoding="utf-8") as f:
        return next(r["email"] for r in csv.DictReader(f) if r["email"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--project", type=Path, help="An existing project (default: the demo)")
    args = parser.parse_args()
    DATA.mkdir(exist_ok=True)
    project = (args.project or demo_project(args.size)).resolve()
    segment = sorted((project / "segments").glob("*.yml"))[0].stem
    cli = CLI
    commands: dict[str, tuple[list[str], float | None]] = {
        "python -c pass (baseline)": ([sys.executable, "-c", "pass"], None),
        "--help": ([*cli, "--help"], HELP_TARGET_S),
        "validate --offline": ([*cli, "validate", "--offline"], READ_TARGET_S),
        "validate": ([*cli, "validate"], READ_TARGET_S),
        "status": ([*cli, "status"], READ_TARGET_S),
        f"segment count {segment}": ([*cli, "segment", "count", segment], READ_TARGET_S),
        "profile <e-mail>": ([*cli, "profile", some_email(project)], READ_TARGET_S),
        "glossary": ([*cli, "glossary"], READ_TARGET_S),
        "checks": ([*cli, "checks"], READ_TARGET_S),
        "quarantine": ([*cli, "quarantine"], READ_TARGET_S),
        "campaigns": ([*cli, "campaigns"], READ_TARGET_S),
        "experiments list": ([*cli, "experiments", "list"], READ_TARGET_S),
        "segment status": ([*cli, "segment", "status"], READ_TARGET_S),
        "audience status": ([*cli, "audience", "status"], READ_TARGET_S),
    }
    rows = []
    for name, (command, target) in commands.items():
        timed(command, project)  # warm the file cache: the first run of a command reads .pyc
        runs = [timed(command, project) for _ in range(args.repeat)]
        seconds = [s for s, _, _ in runs]
        rows.append({"command": name, "median_s": statistics.median(seconds),
                     "min_s": min(seconds), "max_s": max(seconds),
                     "cpu_s": statistics.median(c for _, _, c in runs),
                     "peak_mb": max(m for _, m, _ in runs), "target_s": target})
    base, base_cpu = rows[0]["median_s"], rows[0]["cpu_s"]
    load = os.getloadavg()
    print(f"\nload average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} on {os.cpu_count()} cores")
    print(f"{'command':32} {'median':>8} {'min-max':>13} {'x python':>9} {'CPU':>7} "
          f"{'x python':>9} {'peak MB':>8}  target")
    for r in rows:
        r["ratio"], r["cpu_ratio"] = r["median_s"] / base, r["cpu_s"] / base_cpu
        verdict = "" if r["target_s"] is None else (
            f"{'met' if r['median_s'] <= r['target_s'] else 'MISSED'} (< {r['target_s']} s)")
        print(f"{r['command'][:32]:32} {r['median_s']:7.2f}s {r['min_s']:5.2f}-{r['max_s']:5.2f}s "
              f"{r['ratio']:8.1f}x {r['cpu_s']:6.2f}s {r['cpu_ratio']:8.1f}x {r['peak_mb']:8.0f}"
              f"  {verdict}")
    path = save_report("cli", {"project": str(project), "repeat": args.repeat, "load": load,
                               "rows": rows})
    print(f"\nreport: {path}")


if __name__ == "__main__":
    main()
