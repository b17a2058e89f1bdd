"""The loader process beside the collector: waking it never blocks the collector, even
when the loader died, and a dead loader is reported instead of silently growing the
spool."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import threading
import time
from pathlib import Path

from collect_helpers import write_project
from passerelle.collect.app import collector_sources
from passerelle.collect.loader import LoaderProcess
from passerelle.core import open_project
from passerelle.engines import open_engine


def _holds(pid: int, path: Path) -> bool:
    """Whether the process has the file open (Linux: its /proc fd links)."""
    fds = Path(f"/proc/{pid}/fd")
    with contextlib.suppress(FileNotFoundError):  # a descriptor closed while listed
        return any(os.readlink(fd) == str(path) for fd in fds.iterdir())
    return True


def test_a_killed_loader_never_blocks_the_collector_and_is_reported(tmp_path):
    project = write_project(tmp_path / "proj")
    with open_project(project) as proj:
        config, sources = proj.config.engine, collector_sources(proj.sources)
    # a segment a previous collector sealed: the loader's first round loads and releases it,
    # then the loader sleeps on its wake-up, which is when it must be killed
    left = project / "spool" / "web_tracking" / "20240101T000000000000-1-000001.jsonl"
    left.parent.mkdir(parents=True)
    left.write_text(json.dumps({"m": "m-1", "t": 1704067200000, "r": 1704067200000,
                                "e": {"type": "track", "event": "Signed Up", "userId": "u1"}})
                    + "\n")
    loader = LoaderProcess(functools.partial(open_engine, config, project), project, sources,
                           interval=0.05)
    loader.start()
    try:
        deadline = time.monotonic() + 60
        while left.exists() or _holds(loader._proc.pid, project / "warehouse.duckdb"):
            assert loader._proc.is_alive(), loader.last_error
            assert time.monotonic() < deadline, "the loader's first round never ended"
            time.sleep(0.02)
        assert loader.last_error is None
        os.kill(loader._proc.pid, signal.SIGKILL)
        loader._proc.join(10)
        woken = threading.Event()

        def wake_many() -> None:
            for _ in range(1000):  # what a busy collector does after each spool write
                loader.wake()
            woken.set()

        threading.Thread(target=wake_many, daemon=True).start()
        assert woken.wait(5), "waking a dead loader blocked the collector"
        assert "the loader process exited (code -9)" in loader.last_error
    finally:
        loader.stop(timeout=10)
