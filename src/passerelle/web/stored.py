"""The pages' heavy figures, read from where the run stored them (:mod:`passerelle.figures`).

A page reads its figure in milliseconds. When the figure is missing (a window or an
experiment no run computed yet) or was computed on older data, a ``figures`` job is queued
(once: a queued or running one for the same figure is reused) and the page shows its
progress bar; a figure from older data is shown meanwhile, saying as of when.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import Request

from passerelle.figures import store
from passerelle.governance import jobs as queue
from passerelle.web.auth import PageUser, app_db
from passerelle.web.lock import locked


@dataclass
class Figure:
    stored: store.Stored | None  # None: not computed yet
    job: dict[str, Any] | None  # the job computing it afresh, when one is needed

    @property
    def value(self) -> Any:
        """The figure (raises the error it ended on); None while there is none."""
        return self.stored.get() if self.stored is not None else None


def figure(request: Request, user: PageUser, key: str) -> Figure:
    """The stored figure ``key``, and the job recomputing it when it is missing or stale."""
    project = request.app.state.web_project
    found = locked(lambda: store.read(project.engine, key))
    if found is not None and found.current:
        return Figure(found, None)
    return Figure(found, _job_for(request, user, key))


def _job_for(request: Request, user: PageUser, key: str) -> dict[str, Any]:
    db = app_db(request)
    for job in queue.recent(db, 50):
        if job["kind"] == "figures" and job["status"] in queue.ACTIVE and (
                job["params"].get("keys") in (None, [key]) or key in job["params"]["keys"]):
            return job
    job_id = queue.enqueue(db, "figures", {"keys": [key]}, user.principal.author)
    worker = getattr(request.app.state, "worker", None)
    if worker is not None:
        worker.wake()
    return queue.get(db, job_id)
