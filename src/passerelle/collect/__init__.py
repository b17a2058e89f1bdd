"""The Segment-Spec compatible event collector: HTTP API, write-ahead spool, bulk loader,
tracking plan.

Public API (everything else in this package is internal)::

    create_app(project_root, sources, loader=True, open_engine=None) -> FastAPI
    serve(project, host="127.0.0.1", port=8080, loader=True) -> None   # blocks
    drain(engine, project_root, source, run_id="collector") -> DrainResult
    list_violations(engine, source=None) -> list[dict]
    RAW_COLUMNS, DEFAULT_MAPPING     # raw_<source> columns; the events mapping that fits them

Tables: ``raw_<source>`` (RAW_COLUMNS + lineage), ``event_violations``,
``_identity_alias_log`` and its view ``identity_aliases`` (source, anonymous_id, user_id,
previous_id, first_seen, last_seen). See docs/collect.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from passerelle.collect.app import create_app
from passerelle.collect.loader import (
    ALIASES_VIEW,
    DEFAULT_MAPPING,
    RAW_COLUMNS,
    DrainResult,
    drain,
)
from passerelle.collect.plan import VIOLATIONS_TABLE, list_violations

if TYPE_CHECKING:
    from passerelle.core import Project


def serve(project: Project, host: str = "127.0.0.1", port: int = 8080, loader: bool = True,
          log_level: str = "warning") -> None:
    """Run the collector until SIGINT/SIGTERM (then the spool is sealed and loaded)."""
    import functools

    import uvicorn

    from passerelle.engines import open_engine

    opener = functools.partial(open_engine, project.config.engine, project.root)
    # nothing else in this process opens the warehouse: the loader gets a process of its own
    app = create_app(project.root, project.sources, loader=loader, open_engine=opener,
                     loader_process=True)
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False,
                timeout_graceful_shutdown=10)


__all__ = ["ALIASES_VIEW", "DEFAULT_MAPPING", "RAW_COLUMNS", "VIOLATIONS_TABLE", "DrainResult",
           "create_app", "drain", "list_violations", "serve"]
