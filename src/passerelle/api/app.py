"""`passerelle serve`: one ASGI app with the collector (/v1) and the REST API (/api)."""

from __future__ import annotations

from fastapi import FastAPI

from passerelle.api import errors
from passerelle.api.hosts import HostCheck, allowed_hosts, check_bind_address
from passerelle.api.routes import build_router
from passerelle.core import Project
from passerelle.web import install as install_web


def create_server(project: Project, *, loader: bool = True, loader_interval: float = 0.5,
                  host: str = "127.0.0.1") -> FastAPI:
    """The server app; it answers only to the loopback names, ``host`` (the bind address)
    and the names of ``server: allowed_hosts`` in passerelle.yml."""
    from passerelle.collect import create_app
    from passerelle.engines import open_engine

    def opener():
        return open_engine(project.config.engine, project.root)

    app = create_app(project.root, project.sources, loader=loader, open_engine=opener,
                     loader_interval=loader_interval)
    app.title = "Passerelle"
    app.description = ("Segment-Spec compatible collector (/v1) and the REST API (/api) "
                       "of a Passerelle project.")
    errors.install(app)
    app.include_router(build_router(project))
    install_web(app, project)  # the pages, their static files, the API docs page
    app.add_middleware(HostCheck, hosts=allowed_hosts(
        host, project.config.server.allowed_hosts))
    return app


def serve(project: Project, host: str = "127.0.0.1", port: int = 8080,
          loader: bool = True) -> None:
    import uvicorn

    check_bind_address(host)
    uvicorn.run(create_server(project, loader=loader, host=host), host=host, port=port,
                log_level="warning", access_log=False, timeout_graceful_shutdown=10)
