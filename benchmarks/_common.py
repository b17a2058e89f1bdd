"""Helpers shared by the benchmarks: isolated phases with their peak memory, and reports."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


@dataclass
class Phase:
    name: str
    seconds: float
    peak_mb: float
    detail: dict
    cpu_seconds: float = 0.0  # user + system CPU of the phase's process (a loaded machine
    # stretches wall time, far less the CPU work)


def run_phase(name: str, code: str, cwd: Path | None = None, setup: str = "") -> Phase:
    """Run ``code`` in a fresh Python process so its peak memory is its own.

    ``setup`` runs first and is not timed (imports: a second-long query must not be
    measured with the interpreter's start-up). The code must set ``DETAIL``, a JSON-able
    dict of details of the phase.
    """
    wrapper = (
        "import json, resource, sys, time\n"
        f"{setup}\n"
        "u0 = resource.getrusage(resource.RUSAGE_SELF)\n"
        "t0 = time.perf_counter()\n"
        f"{code}\n"
        "elapsed = time.perf_counter() - t0\n"
        "u1 = resource.getrusage(resource.RUSAGE_SELF)\n"
        "cpu = u1.ru_utime + u1.ru_stime - u0.ru_utime - u0.ru_stime\n"
        "peak = u1.ru_maxrss / 1024\n"
        "print(json.dumps({'seconds': elapsed, 'peak_mb': peak, 'cpu': cpu, "
        "'detail': DETAIL}))\n"
    )
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", wrapper], cwd=cwd, capture_output=True,
                          text=True)
    if proc.returncode != 0:
        raise SystemExit(f"phase {name} failed:\n{proc.stderr[-4000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"  {name}: {out['seconds']:.1f}s, CPU {out['cpu']:.1f}s, peak "
          f"{out['peak_mb']:.0f} MB (wall {time.perf_counter() - started:.1f}s)", flush=True)
    return Phase(name, out["seconds"], out["peak_mb"], out["detail"], out["cpu"])


def save_report(benchmark: str, report: dict) -> Path:
    RESULTS.mkdir(exist_ok=True)
    report = {"benchmark": benchmark, "when": datetime.now(UTC).isoformat(timespec="seconds"),
              "machine": {"python": platform.python_version(), "cpus": _cpus()}, **report}
    path = RESULTS / f"{benchmark}-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    path.write_text(json.dumps(report, indent=2, default=lambda o: asdict(o)) + "\n")
    return path


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0))


class TreeMemory:
    """Samples the resident memory of this process and all its descendants (a Spark
    engine's JVM is a child of the Python process) every ``interval`` seconds, so that a
    step's peak can be read from its start and end times. A database server's memory
    (PostgreSQL) is not in the tree: it is not counted."""

    def __init__(self, interval: float = 0.2) -> None:
        import os
        import threading

        self.interval = interval
        self.samples: list[tuple[float, float]] = []
        self._root = os.getpid()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> TreeMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.time(), self.tree_mb()))
            self._stop.wait(self.interval)

    def tree_mb(self) -> float:
        pids, todo = [], [self._root]
        while todo:
            pid = todo.pop()
            pids.append(pid)
            try:  # a task (a Spark worker) may end while it is listed or read
                todo += [int(p) for task in Path(f"/proc/{pid}/task").glob("*/children")
                         for p in task.read_text().split()]
            except OSError:
                continue
        total = 0
        for pid in pids:
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            for line in status.splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        return total / 1024

    def peak_mb(self, start: float | None = None, end: float | None = None) -> float:
        """The largest sample between two times (seconds since the epoch), or overall."""
        inside = [mb for t, mb in self.samples
                  if (start is None or t >= start) and (end is None or t <= end)]
        return max(inside, default=0.0)
