"""The loader process beside the collector: waking it never blocks the collector, even
when the loader died, and a dead loader is reported instead of silently growing the
spool."""

from __future__ import annotations

import functools
import os
import signal
import threading
import time

from collect_helpers import write_project
from passerelle.collect.app import collector_sources
from passerelle.collect.loader import LoaderProcess
from passerelle.core import open_project
from passerelle.engines import open_engine


def test_a_killed_loader_never_blocks_the_collector_and_is_reported(tmp_path):
    project = write_project(tmp_path / "proj")
    with open_project(project) as proj:
        config, sources = proj.config.engine, collector_sources(proj.sources)
    loader = LoaderProcess(functools.partial(open_engine, config, project), project, sources,
                           interval=0.05)
    loader.start()
    try:
        time.sleep(1.0)  # the loader's first round, then it sleeps on its wake-up
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
