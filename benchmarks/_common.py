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


def run_phase(name: str, code: str, cwd: Path | None = None, setup: str = "") -> Phase:
    """Run ``code`` in a fresh Python process so its peak memory is its own.

    ``setup`` runs first and is not timed (imports: a second-long query must not be
    measured with the interpreter's start-up). The code must set ``DETAIL``, a JSON-able
    dict of details of the phase.
    """
    wrapper = (
        "import json, resource, sys, time\n"
        f"{setup}\n"
        "t0 = time.perf_counter()\n"
        f"{code}\n"
        "elapsed = time.perf_counter() - t0\n"
        "peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024\n"
        "print(json.dumps({'seconds': elapsed, 'peak_mb': peak, 'detail': DETAIL}))\n"
    )
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", wrapper], cwd=cwd, capture_output=True,
                          text=True)
    if proc.returncode != 0:
        raise SystemExit(f"phase {name} failed:\n{proc.stderr[-4000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"  {name}: {out['seconds']:.1f}s, peak {out['peak_mb']:.0f} MB "
          f"(wall {time.perf_counter() - started:.1f}s)", flush=True)
    return Phase(name, out["seconds"], out["peak_mb"], out["detail"])


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
