"""/api/jobs: queue work on the warehouse (runs, refreshes, audience builds, exports) and
follow it. The server's worker (passerelle.jobs.worker) runs the jobs one at a time."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse

from passerelle.api import errors
from passerelle.api.auth import Requirement, caller, record, requires
from passerelle.api.auth import author as author_of
from passerelle.errors import PasserelleError
from passerelle.governance import jobs as queue
from passerelle.governance.db import AppDB
from passerelle.jobs.kinds import JobRequest

# A job's kind decides what queuing, cancelling or requeuing it takes (checked with the
# route's own requirement, see api/auth.py); reading jobs takes the api:read scope.
KIND_PERMISSIONS: dict[str, str] = {
    "run": "pipeline:run", "segment_refresh": "segments:write",
    "audience_build": "segments:write", "export": "audiences:export",
    "figures": "pipeline:run"}
JobId = Path(ge=1, le=2**31 - 1, description="The id POST /api/jobs answered")
Status = Literal["queued", "running", "succeeded", "failed", "cancelled", "interrupted"]
_RESPONSES = {**errors.RESPONSES, 409: {"model": errors.ErrorBody,
                                        "description": "The job is not in a state that allows "
                                                       "it"}}


def author(request: Request) -> str:
    """Who queues: the request's principal (``user:<id>`` or ``token:<id>``)."""
    return author_of(caller(request))


_BY_KIND = "and the permission of the job's kind"


def _kind_permission(request: Request, kind: str) -> None:
    """The permission of a job's kind (KIND_PERMISSIONS), checked like any requirement."""
    Requirement(None, (KIND_PERMISSIONS[kind],))(request)


def build_jobs_router(db: AppDB, wake: Callable[[], None] = lambda: None) -> APIRouter:
    router = APIRouter(prefix="/api/jobs", tags=["jobs"], responses=_RESPONSES)

    def existing_job_kind(request: Request, job_id: int = JobId) -> None:
        """DELETE and requeue: the permission of the kind of the job they touch."""
        _kind_permission(request, queue.get(db, job_id)["kind"])

    by_existing_kind = Depends(existing_job_kind)

    @router.post("", status_code=202, summary="Queue a run, a segment refresh, an audience "
                                             "build or an export",
                 dependencies=[requires("api:write", note=_BY_KIND)])
    def create(body: JobRequest, request: Request) -> dict[str, Any]:  # type: ignore[valid-type]
        _kind_permission(request, body.kind)
        params = body.params.model_dump()
        job_id = queue.enqueue(db, body.kind, params, author(request))
        record(request, "job.queue", resource=f"job:{job_id}", detail={"kind": body.kind})
        if body.kind == "export":
            record(request, "audience.export", resource=f"audience:{params.get('audience')}",
                   detail={"job": job_id, "destination": params.get("destination")})
        wake()
        return {"job_id": job_id, "status": "queued"}

    @router.get("", summary="The most recent jobs, newest first",
                dependencies=[requires("api:read")])
    def recent(limit: int = Query(20, ge=1, le=500),
               status: Status | None = None) -> list[dict[str, Any]]:
        return queue.recent(db, limit, status)

    @router.get("/{job_id}", summary="A job's status, progress, result and error",
                dependencies=[requires("api:read")])
    def get(job_id: int = JobId) -> dict[str, Any]:
        return queue.get(db, job_id)

    @router.delete("/{job_id}", summary="Cancel a job still in the queue",
                   dependencies=[requires("api:write", note=_BY_KIND), by_existing_kind])
    def cancel(job_id: int = JobId) -> Any:
        try:
            return queue.cancel(db, job_id)
        except queue.JobNotCancellable as exc:
            return _conflict(exc)

    @router.post("/{job_id}/requeue", status_code=202,
                 summary="Queue again an interrupted, failed or cancelled job",
                 dependencies=[requires("api:write", note=_BY_KIND), by_existing_kind])
    def requeue(request: Request, job_id: int = JobId) -> Any:
        try:
            new_id = queue.requeue(db, job_id, author(request))
        except queue.JobNotRequeueable as exc:
            return _conflict(exc)
        record(request, "job.requeue", resource=f"job:{new_id}", detail={"from": job_id})
        wake()
        return {"job_id": new_id, "status": "queued"}

    return router


def _conflict(exc: PasserelleError) -> JSONResponse:
    return JSONResponse(errors.error_body("conflict", exc.reason, exc.instruction),
                        status_code=409)
