"""Shared by the collector tests: a project folder, a real server subprocess, queries."""

from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import yaml

from passerelle.collect import DEFAULT_MAPPING

KEY = "wk_test_123"
SRC = Path(__file__).resolve().parents[1] / "src"


def write_project(root: Path, spool: dict | None = None, plan: dict | None = None,
                  extra_connector: dict | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "passerelle.yml").write_text(yaml.safe_dump({"name": "collect_test"}))
    (root / "sources").mkdir(exist_ok=True)
    connector = {"type": "collector", "write_keys": [KEY],
                 "spool": spool or {"type": "file", "path": "spool"}}
    if plan is not None:
        (root / "tracking-plan.yml").write_text(yaml.safe_dump(plan, sort_keys=False))
        connector["tracking_plan"] = "tracking-plan.yml"
    connector.update(extra_connector or {})
    source = {"name": "web_tracking", "entity": "events", "connector": connector,
              "columns": dict(DEFAULT_MAPPING)}
    (root / "sources" / "web_tracking.yml").write_text(yaml.safe_dump(source, sort_keys=False))
    return root


# How long a wait for the server (its last loader round, a drained spool) may take before it
# fails: the loops end as soon as the state is reached, so a generous bound costs nothing when
# the server is well, and a loaded machine (two test workers beside other work) does not fail.
SLOW = 120.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def auth(key: str = KEY) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


class Server:
    """``python -m passerelle.collect`` in its own process (``cli``: ``passerelle serve``, the
    collector and the REST API)."""

    def __init__(self, project: Path, loader: bool = True, cli: bool = False) -> None:
        self.project, self.loader, self.cli = project, loader, cli
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> Server:
        command = (["-c", "from passerelle.cli import main; main()", "serve"] if self.cli
                   else ["-m", "passerelle.collect"])
        args = [sys.executable, *command, "--project", str(self.project),
                "--port", str(self.port)]
        if not self.loader:
            args.append("--no-loader")
        env = {**os.environ, "PYTHONPATH": str(SRC)}
        self.proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + SLOW  # a loaded machine takes its time importing
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(self.proc.stdout.read().decode())
            try:
                httpx.get(self.url + "/v1/health", timeout=0.5)
                return self
            except httpx.TransportError:
                time.sleep(0.05)
        raise RuntimeError("the collector did not start")

    def stop(self) -> str:
        """SIGTERM: graceful (seal the spool, last loader round)."""
        if self.proc is None:
            return ""
        self.proc.send_signal(signal.SIGTERM)
        out = self.proc.communicate(timeout=SLOW)[0].decode()
        self.proc = None
        return out

    def kill(self) -> None:
        if self.proc is not None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
            self.proc = None


@contextmanager
def running(project: Path, loader: bool = True):
    server = Server(project, loader).start()
    try:
        yield server
    finally:
        if server.proc is not None:
            server.stop()


def wait_loaded(project: Path, n: int, timeout: float = SLOW) -> None:
    """Wait until the server's loader emptied the file spool of ``n``-ish events."""
    spool = project / "spool" / "web_tracking"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if spool.exists() and not list(spool.glob("*.jsonl")) and not list(
                spool.glob("*.open")):
            return
        time.sleep(0.1)
    raise AssertionError(f"spool not drained: {list(spool.iterdir())}")
