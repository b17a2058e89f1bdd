"""/api/jobs: queue work on the warehouse (runs, refreshes, audience builds, exports) and
follow it. The server's worker (passerelle.jobs.worker) runs the jobs one at a time."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse

from passerelle.api import errors
from passerelle.errors import PasserelleError
from passerelle.governance import jobs as queue
from passerelle.governance.db import AppDB
from passerelle.jobs.kinds import JobRequest

# The permission each route needs, for the authorization layer to hook (issue 16): a job's
# kind decides what queuing it (or queuing it again) takes; reading jobs takes api:read.
KIND_PERMISSIONS: dict[str, str] = {
    "run": "pipeline:run", "segment_refresh": "segments:write",
    "audience_build": "segments:write", "export": "audiences:export"}
JOB_ROUTE_PERMISSIONS: dict[tuple[str, str], str] = {
    ("POST", "/api/jobs"): "by kind: KIND_PERMISSIONS",
    ("GET", "/api/jobs"): "api:read",
    ("GET", "/api/jobs/{job_id}"): "api:read",
    ("DELETE", "/api/jobs/{job_id}"): "by kind: KIND_PERMISSIONS",
    ("POST", "/api/jobs/{job_id}/requeue"): "by kind: KIND_PERMISSIONS",
}
JobId = Path(ge=1, le=2**31 - 1, description="The id POST /api/jobs answered")
Status = Literal["queued", "running", "succeeded", "failed", "cancelled", "interrupted"]
_RESPONSES = {**errors.RESPONSES, 409: {"model": errors.ErrorBody,
                                        "description": "The job is not in a state that allows "
                                                       "it"}}


def author(request: Request) -> str:
    """Who queues: the signed-in principal once the authorization layer sets it."""
    principal = getattr(request.state, "principal", None)
    return str(getattr(principal, "name", None) or "api")


def build_jobs_router(db: AppDB, wake: Callable[[], None] = lambda: None) -> APIRouter:
    router = APIRouter(prefix="/api/jobs", tags=["jobs"], responses=_RESPONSES)

    @router.post("", status_code=202, summary="Queue a run, a segment refresh, an audience "
                                             "build or an export")
    def create(body: JobRequest, request: Request) -> dict[str, Any]:  # type: ignore[valid-type]
        job_id = queue.enqueue(db, body.kind, body.params.model_dump(), author(request))
        wake()
        return {"job_id": job_id, "status": "queued"}

    @router.get("", summary="The most recent jobs, newest first")
    def recent(limit: int = Query(20, ge=1, le=500),
               status: Status | None = None) -> list[dict[str, Any]]:
        return queue.recent(db, limit, status)

    @router.get("/{job_id}", summary="A job's status, progress, result and error")
    def get(job_id: int = JobId) -> dict[str, Any]:
        return queue.get(db, job_id)

    @router.delete("/{job_id}", summary="Cancel a job still in the queue")
    def cancel(job_id: int = JobId) -> Any:
        try:
            return queue.cancel(db, job_id)
        except queue.JobNotCancellable as exc:
            return _conflict(exc)

    @router.post("/{job_id}/requeue", status_code=202,
                 summary="Queue again an interrupted, failed or cancelled job")
    def requeue(request: Request, job_id: int = JobId) -> Any:
        try:
            new_id = queue.requeue(db, job_id, author(request))
        except queue.JobNotRequeueable as exc:
            return _conflict(exc)
        wake()
        return {"job_id": new_id, "status": "queued"}

    return router


def _conflict(exc: PasserelleError) -> JSONResponse:
    return JSONResponse(errors.error_body("conflict", exc.reason, exc.instruction),
                        status_code=409)
