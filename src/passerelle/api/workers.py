"""`passerelle serve --workers N`: the decision and profile API answered by N processes
that share the server's port (docs/personalisation.md, "Several workers").

One process cannot decide much beyond a thousand requests a second (HTTP parsing, the
route, JSON: about a millisecond of CPU each), so with a Redis decision store the server
pre-forks: the primary (the whole server: collector and its loader, jobs, the web app, the
warehouse) binds the port, then starts ``N - 1`` decision workers, fresh processes (spawned,
not forked: every connection, to Redis and to the application database, is each process's
own) given the listening socket. The kernel hands each new connection to one of the N
processes. A worker answers ``/v1/decide`` and ``/v1/profiles/<id>`` from Redis itself and
forwards every other request, unchanged, to the primary over a Unix socket only this server's
user can open, so every route works whichever process took the connection. DuckDB lets one
process open the warehouse: the workers never open it, which is why they need the Redis
store (the warehouse store is read in the primary only). The primary watches its workers:
one that dies is started again (:class:`Workers`); meanwhile the kernel hands new
connections to the processes still listening.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from passerelle.errors import PasserelleError

# a forwarded request's client address and scheme, as the worker saw them (after its own
# check of forwarded headers against server: trusted_proxies); believed from the Unix
# socket only
CLIENT, SCHEME = b"x-passerelle-client", b"x-passerelle-scheme"
_HOP = {b"connection", b"keep-alive", b"transfer-encoding", b"te", b"upgrade",
        b"proxy-connection", CLIENT, SCHEME}
DECIDE, PROFILES = "/v1/decide", "/v1/profiles/"  # what a worker answers itself
# supervision: how often workers are checked, the age under which one that ended "died
# young" (its restart then waits, the wait doubling each time up to MAX_DELAY)
CHECK_EVERY, YOUNG, MIN_DELAY, MAX_DELAY = 0.5, 10.0, 1.0, 30.0
log = logging.getLogger("passerelle.workers")


def check_workers(project: Any, workers: int) -> None:
    """Refuse ``--workers`` a server cannot honour, before anything starts."""
    if workers < 1:
        raise PasserelleError(f"--workers must be 1 or more, not {workers}.")
    if workers > 1 and not project.config.personalisation.redis:
        raise PasserelleError(
            f"--workers {workers} needs the decision store in Redis: the workers read it "
            "there (the warehouse is opened by one process).",
            "Add `personalisation: {redis_url: redis://127.0.0.1:6379/0}` to passerelle.yml "
            "and run `passerelle run`, or serve with one worker.")


class FromWorker:
    """Primary side: a request that came through the Unix socket (no client address) is a
    worker's; its client and scheme are the ones the worker saw. Over TCP these headers
    are dropped: nobody else can set them."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            mine = {k: v for k, v in scope["headers"] if k in (CLIENT, SCHEME)}
            if mine:
                scope["headers"] = [(k, v) for k, v in scope["headers"]
                                    if k not in (CLIENT, SCHEME)]
                if scope.get("client") is None:  # the Unix socket
                    host, _, port = mine.get(CLIENT, b"").decode("latin1").rpartition(":")
                    if host:
                        scope["client"] = (host, int(port or 0))
                    if mine.get(SCHEME) in (b"http", b"https"):
                        scope["scheme"] = mine[SCHEME].decode()
        await self.app(scope, receive, send)


class Forward:
    """Worker side: requests for the routes a worker serves go to ``app``; any other is
    sent as it came to the primary over ``uds`` and its answer streamed back."""

    def __init__(self, app: Any, uds: str) -> None:
        import httpx

        self.app = app
        self.client = httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(uds=uds),
                                        timeout=httpx.Timeout(None, connect=10.0))

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path == DECIDE or path.startswith(PROFILES):
            await self.app(scope, receive, send)
            return
        body = bytearray()
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        client = scope.get("client") or ("", 0)
        headers = [(k, v) for k, v in scope["headers"] if k not in _HOP]
        headers += [(CLIENT, f"{client[0]}:{client[1]}".encode("latin1")),
                    (SCHEME, scope.get("scheme", "http").encode())]
        target = scope.get("raw_path") or scope["path"].encode()
        if scope.get("query_string"):
            target += b"?" + scope["query_string"]
        request = self.client.build_request(scope["method"], "http://primary"
                                            + target.decode("latin1"),
                                            headers=headers, content=bytes(body))
        try:
            answer = await self.client.send(request, stream=True)
        except Exception as exc:  # the primary is away (restarting, stopped)
            from fastapi.responses import JSONResponse

            from passerelle.api.errors import error_body

            await JSONResponse(error_body(
                "primary_unavailable", f"The server's primary process did not answer: "
                f"{type(exc).__name__}", "Try again in a moment."), status_code=503)(
                scope, receive, send)
            return
        try:
            await send({"type": "http.response.start", "status": answer.status_code,
                        "headers": [(k, v) for k, v in answer.headers.raw
                                    if k.lower() not in _HOP]})
            async for chunk in answer.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            await answer.aclose()


def worker_app(project: Any, uds: str, host: str) -> Any:
    """A decision worker's app: the personalisation routes over the Redis store, anything
    else forwarded to the primary."""
    from fastapi import FastAPI

    from passerelle.api import errors
    from passerelle.api.hosts import HostCheck, allowed_hosts
    from passerelle.api.personalize import build_personalize_router
    from passerelle.governance.db import open_app_db

    db = open_app_db(project, migrate=False)  # the primary brought it up to date

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await forward.client.aclose()
            db.close()

    app = FastAPI(lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None)
    app.state.app_db = db  # token checks and audit entries, as in the primary
    errors.install(app)
    app.include_router(build_personalize_router(project, db, threading.Lock(),
                                                warehouse=False))
    forward = Forward(app, uds)
    return HostCheck(forward, allowed_hosts(host, project.config.server.allowed_hosts))


class Workers:
    """The primary's decision workers: started once it serves, stopped with it. A worker
    that dies (killed, out of memory, a crash) is started again by a supervising thread:
    at once if it had run a while, else after a delay doubling up to :data:`MAX_DELAY`
    (a worker that cannot start must not spin)."""

    def __init__(self, root: Path, count: int, listening: socket.socket, host: str) -> None:
        self.root, self.count, self.listening, self.host = root, count, listening, host
        self.folder = tempfile.mkdtemp(prefix="passerelle-")  # 0700: this user only
        self.uds = os.path.join(self.folder, "primary.sock")  # short: a path's limit is 108
        self.procs: list[subprocess.Popen] = []
        self.restarts = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None
        self._started: list[float] = []  # monotonic start of each worker
        self._delay: list[float] = []  # before restarting each, should it die young
        self._due: list[float | None] = []  # when a dead one is started again

    def private_socket(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(self.uds)
        os.chmod(self.uds, 0o600)
        sock.listen(2048)
        return sock

    def _spawn(self) -> subprocess.Popen:
        fd = self.listening.fileno()
        return subprocess.Popen(
            [sys.executable, "-m", "passerelle.api.workers", str(self.root), str(fd),
             self.uds, self.host, str(os.getpid())], pass_fds=[fd])

    def start(self) -> None:
        with self._lock:
            for _ in range(self.count - 1):
                self.procs.append(self._spawn())
                self._started.append(time.monotonic())
                self._delay.append(MIN_DELAY)
                self._due.append(None)
        self._watcher = threading.Thread(target=self._supervise, daemon=True,
                                         name="passerelle-workers")
        self._watcher.start()

    def _supervise(self) -> None:
        while not self._stopping.wait(CHECK_EVERY):
            with self._lock:
                if self._stopping.is_set():
                    return
                for i, proc in enumerate(self.procs):
                    if proc.poll() is None:
                        continue
                    now = time.monotonic()
                    if self._due[i] is None:  # just found dead
                        lived = now - self._started[i]
                        young = lived < YOUNG
                        self._due[i] = now + (self._delay[i] if young else 0.0)
                        self._delay[i] = min(self._delay[i] * 2, MAX_DELAY) if young \
                            else MIN_DELAY
                        log.warning("decision worker %s ended (exit %s after %.0fs): "
                                    "starting another%s", proc.pid, proc.returncode, lived,
                                    f" in {self._due[i] - now:.0f}s" if young else "")
                    if now >= (self._due[i] or 0.0):
                        try:
                            self.procs[i] = self._spawn()
                        except OSError as exc:  # tried again later, as if it died young
                            log.error("starting a decision worker failed: %s", exc)
                            self._due[i] = now + self._delay[i]
                            continue
                        self._started[i], self._due[i] = now, None
                        self.restarts += 1

    def stop(self) -> None:
        self._stopping.set()
        if self._watcher is not None:
            self._watcher.join(CHECK_EVERY * 4)
        with self._lock:
            for proc in self.procs:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
            for proc in self.procs:
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        with contextlib.suppress(OSError):
            os.unlink(self.uds)
            os.rmdir(self.folder)


def _watch_parent(parent: int) -> None:
    """A worker whose primary died stops (it would serve decisions and fail the rest)."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os.kill(os.getpid(), signal.SIGTERM)


def main(argv: list[str]) -> None:
    """``python -m passerelle.api.workers ROOT FD UDS HOST PARENT``: one decision worker
    on the listening socket ``FD`` it was given."""
    import uvicorn

    import passerelle
    from passerelle.api.hosts import forwarding

    root, fd, uds, host, parent = argv
    threading.Thread(target=_watch_parent, args=(int(parent),), daemon=True).start()
    project = passerelle.open(root)
    sock = socket.socket(fileno=int(fd))
    config = uvicorn.Config(worker_app(project, uds, host), log_level="warning",
                            access_log=False, timeout_graceful_shutdown=10,
                            **forwarding(project))
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main(sys.argv[1:])
