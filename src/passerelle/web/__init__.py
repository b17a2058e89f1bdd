"""The web app: server-rendered pages (Jinja2 + HTMX) for marketers and IT.

Every script, stylesheet and chart library is served from ``static/`` inside the package:
nothing comes from a CDN, the API documentation page included. docs/web.md is the guide.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from passerelle.core import Project

STATIC = Path(__file__).parent / "static"


def install(app: FastAPI, project: Project) -> None:
    """Mount the pages, their static files and the local API docs on the server app."""
    from fastapi.staticfiles import StaticFiles

    from passerelle.web import (
        admin_pages,
        apidocs,
        campaign_pages,
        glossary_pages,
        health_pages,
        pages,
        segment_pages,
        sso_pages,
    )

    # The pages read the warehouse on a connection of their own (the API's routes keep
    # theirs): one DuckDB connection must not serve two threads at once.
    app.state.web_project = Project(project.definition)
    apidocs.install(app)
    pages.install(app)
    sso_pages.install(app, project)  # "Sign in with <provider>", when passerelle.yml says
    segment_pages.install(app, project)  # segment builder, audiences, export jobs
    campaign_pages.install(app)  # campaign results, experiments
    admin_pages.install(app)
    glossary_pages.install(app)
    health_pages.install(app)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
