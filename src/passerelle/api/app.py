"""`passerelle serve`: one ASGI app with the collector (/v1) and the REST API (/api)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import FastAPI

from passerelle.api import errors, openapi
from passerelle.api.admin import build_admin_router
from passerelle.api.auth import api_routes, check_every_route, declare_open
from passerelle.api.hosts import HostCheck, allowed_hosts, forwarding
from passerelle.api.jobs import build_jobs_router
from passerelle.api.personalize import build_personalize_router
from passerelle.api.routes import build_router
from passerelle.api.session import build_session_router
from passerelle.core import Project
from passerelle.web import install as install_web

SERVER_FILE = Path(".passerelle") / "server.json"


def create_server(project: Project, *, loader: bool = True, loader_interval: float = 0.5,
                  host: str = "127.0.0.1", worker: bool = True) -> FastAPI:
    """The server app; it answers only to the loopback names, ``host`` (the bind address)
    and the names of ``server: allowed_hosts`` in passerelle.yml. ``worker``: run the
    queued jobs (runs, refreshes, builds, exports) while the app runs."""
    from passerelle.collect import create_app
    from passerelle.collect.app import RateLimit
    from passerelle.engines import open_engine
    from passerelle.governance.db import open_app_db
    from passerelle.jobs.worker import WarehouseLock, Worker

    def opener():
        return open_engine(project.config.engine, project.root)

    db = open_app_db(project)
    server = project.config.server
    app = create_app(project.root, project.sources, loader=loader, open_engine=opener,
                     loader_interval=loader_interval, token_source=token_source(db, project),
                     rate_limit=RateLimit(server.collector_rate, server.collector_burst))
    app.title = "Passerelle"
    app.description = ("Segment-Spec compatible collector (/v1) and the REST API (/api) "
                       "of a Passerelle project.")
    errors.install(app)
    for method, path, _ in list(api_routes(app)):  # the collector's: write keys
        if path.startswith("/v1/"):  # (or collect:write tokens)
            declare_open(app, method, path, "public" if path == "/v1/health" else "write key")
    lock = WarehouseLock()
    app.state.app_db = db
    jobs = Worker(project, db, lock)
    app.state.worker = jobs
    # the decision and profile routes before the API's: the router tries routes in turn,
    # and these answer the most requests
    app.include_router(build_personalize_router(project, db, lock, app.state))
    app.include_router(build_router(project, lock))
    app.include_router(build_jobs_router(db, jobs.wake))
    app.include_router(build_session_router())
    app.include_router(build_admin_router(db))
    install_web(app, project)  # the pages, their static files, the API docs page
    check_every_route(app)  # no /api route without its requirement
    openapi.install(app)  # the schema says what each route needs (Swagger UI's Authorize)
    app.add_middleware(HostCheck, hosts=allowed_hosts(
        host, project.config.server.allowed_hosts))

    collector_lifespan = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with collector_lifespan(app):
            if worker:
                jobs.start()
            try:
                yield
            finally:
                freshener = getattr(app.state, "freshener", None)
                if freshener is not None:  # before the loader's last round: it says no more
                    await asyncio.get_running_loop().run_in_executor(None, freshener.stop)
                await asyncio.get_running_loop().run_in_executor(None, jobs.stop)
                db.close()
                if app.state.sso is not None:
                    app.state.sso.client.close()
                if jobs.idle:  # else a job still runs: it is marked interrupted on restart
                    with lock:  # closing checkpoints DuckDB: the next command opens it clean
                        project.close()

    app.router.lifespan_context = lifespan
    return app


def token_source(db, project: Project):
    """The collector source a collect:write API token writes to: the collector source named
    like the token, else the project's one collector source."""
    from passerelle.collect.app import collector_sources
    from passerelle.governance.errors import NotAuthenticated
    from passerelle.governance.tokens import principal_from_token

    names = [s.name for s in collector_sources(project.sources)]

    def source_of(secret: str) -> str:
        try:
            principal = principal_from_token(db, secret)
        except NotAuthenticated as exc:
            raise LookupError(exc.reason) from None
        if not principal.has_scope("collect:write"):
            raise LookupError(f"API token {principal.id} has no collect:write scope")
        if principal.display_name in names:
            return principal.display_name
        if len(names) == 1:
            return names[0]
        raise LookupError(f"API token {principal.id} is named '{principal.display_name}', "
                          f"not one of the collector sources ({', '.join(names)}): name the "
                          "token after the source it writes to")
    return source_of


def serve(project: Project, host: str = "127.0.0.1", port: int = 8080,
          loader: bool = True, workers: int = 1) -> None:
    """Run the server until stopped; while it runs, ``.passerelle/server.json`` tells the
    command line where it is, so commands go through it instead of opening the warehouse.
    ``workers`` above 1: the decision and profile API answered by that many processes on
    the port (:mod:`passerelle.api.workers`; needs the Redis decision store)."""
    import uvicorn

    from passerelle.api.workers import FromWorker, Workers, check_workers

    check_workers(project, workers)
    app = create_server(project, loader=loader, host=host)
    server_lifespan = app.router.lifespan_context
    config = uvicorn.Config(FromWorker(app) if workers > 1 else app, host=host, port=port,
                            log_level="warning", access_log=False,
                            timeout_graceful_shutdown=10, **forwarding(project))
    sockets = [config.bind_socket()]
    pool = Workers(project.root, workers, sockets[0], host) if workers > 1 else None
    if pool is not None:
        sockets.append(pool.private_socket())

    # in the lifespan, not around the server's run: uvicorn ends the process with the
    # signal that stopped it once it has shut down, so code after run() never runs
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with server_lifespan(app):
            marker = write_server_file(project.root, host, port)
            if pool is not None:
                pool.start()
            try:
                yield
            finally:
                if pool is not None:
                    await asyncio.get_running_loop().run_in_executor(None, pool.stop)
                remove_server_file(marker)

    app.router.lifespan_context = lifespan
    uvicorn.Server(config).run(sockets=sockets)


def write_server_file(root: Path, host: str, port: int) -> Path:
    path = Path(root) / SERVER_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    name = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    name = f"[{name}]" if ":" in name else name
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"url": f"http://{name}:{port}", "pid": os.getpid()}))
    tmp.replace(path)  # a command never reads half a file
    return path


def remove_server_file(path: Path) -> None:
    """Only this server's file: another server may have started since."""
    try:
        if json.loads(path.read_text()).get("pid") == os.getpid():
            path.unlink()
    except (OSError, ValueError):
        pass
