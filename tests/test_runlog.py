"""`passerelle status` tells a finished run from one killed midway."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import passerelle
from test_run_reload import project


def start_run(root: Path) -> subprocess.Popen:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.Popen(
        [sys.executable, "-c", "from passerelle.cli import main; main()", "run", "-p",
         str(root)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)


def test_a_run_killed_midway_shows_as_interrupted(tmp_path):
    root = project(tmp_path, "auto")
    run = start_run(root)
    for line in run.stderr:
        if "✓ Loading crm" in line:
            break
    time.sleep(1)  # the load is recorded (milliseconds): staging (seconds) is running
    run.send_signal(signal.SIGKILL)
    run.wait()

    with passerelle.open(root) as proj:
        rows = proj.status()
    by_step = {r["step"]: r for r in rows}
    assert by_step["run"]["status"] == "interrupted"
    assert "stopped before its end" in by_step["run"]["message"]
    assert by_step["load"]["status"] == "ok"
    assert by_step["stage"]["status"] == "interrupted"  # the step it was in

    status = subprocess.run(
        [sys.executable, "-c", "from passerelle.cli import main; main()", "status", "-p",
         str(root)], capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"})
    assert status.returncode == 0 and status.stdout.count("interrupted") == 2

    with passerelle.open(root) as proj:  # the next run is clean and recorded as ok
        assert proj.run().ok
        latest = proj.status()[0]
        assert latest["step"] == "run" and latest["status"] == "ok"
        assert latest["run_id"] > by_step["run"]["run_id"]
