"""The jobs queue in the application database: what the server's worker does to the warehouse.

A job is queued by the API (or the CLI through it), claimed by one worker, followed
(step, fraction, messages, heartbeat) and ended with a result or an error. Claiming is one
statement, so two workers never take the same job: ``SELECT ... FOR UPDATE SKIP LOCKED`` in
a sub-query on PostgreSQL, and on SQLite an ``UPDATE ... WHERE status = 'queued'`` that the
database runs under its single write lock. A job whose worker process died (a crash, a kill)
is marked ``interrupted`` when a server starts again; :func:`requeue` queues it anew.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update

from passerelle.errors import ExitCode, PasserelleError
from passerelle.governance.db import AppDB
from passerelle.governance.tables import Job
from passerelle.runlog import process_gone, process_tag, utcnow

KINDS = ("run", "segment_refresh", "audience_build", "export", "figures")
ACTIVE = ("queued", "running")
ENDED = ("succeeded", "failed", "cancelled", "interrupted")
MAX_MESSAGES = 50  # a job keeps its last messages only: a long run says a lot
# A worker on another machine (a shared PostgreSQL application database) cannot be asked
# whether it still runs: a job whose heartbeat is older than this is taken as interrupted.
STALE_AFTER = timedelta(minutes=10)


class JobNotFound(PasserelleError, LookupError):
    def __init__(self, job_id: int) -> None:
        super().__init__(f"There is no job {job_id}.", "List the jobs with GET /api/jobs.")


class JobNotCancellable(PasserelleError):
    def __init__(self, job_id: int, status: str) -> None:
        super().__init__(f"Job {job_id} is {status}: only a queued job can be cancelled.",
                         "A running job ends on its own; its result shows what it did.")


class JobNotRequeueable(PasserelleError):
    def __init__(self, job_id: int, status: str) -> None:
        super().__init__(f"Job {job_id} is {status}: only an interrupted, failed or cancelled "
                         "job can be queued again.", "Follow it with GET /api/jobs/{id}.")


class _Bug(PasserelleError):
    exit_code = ExitCode.INTERNAL_ERROR


def enqueue(db: AppDB, kind: str, params: dict[str, Any], created_by: str,
            requeued_from: int | None = None) -> int:
    if kind not in KINDS:
        raise PasserelleError(f"Unknown job kind '{kind}'.", f"Kinds: {', '.join(KINDS)}.")
    job = Job(kind=kind, params=json.dumps(params), status="queued", created_at=utcnow(),
              created_by=created_by, messages="[]", requeued_from=requeued_from)
    with db.session() as session:
        session.add(job)
        session.flush()
        return job.id


def claim(db: AppDB, worker: str | None = None) -> dict[str, Any] | None:
    """Take the oldest queued job for ``worker`` (this process by default); None when the
    queue is empty or every queued job was just taken by another worker."""
    now = utcnow()
    oldest = (select(Job.id).where(Job.status == "queued").order_by(Job.id).limit(1)
              .with_for_update(skip_locked=True).scalar_subquery())
    statement = (update(Job).where(Job.id == oldest, Job.status == "queued")
                 .values(status="running", worker=worker or process_tag(), started_at=now,
                         heartbeat_at=now).returning(Job.id))
    with db.session() as session:
        job_id = session.execute(statement).scalar_one_or_none()
    return None if job_id is None else get(db, job_id)


def progress(db: AppDB, job_id: int, *, step: str | None = None,
             fraction: float | None = None, message: str | None = None) -> None:
    """What the job does now; also its heartbeat (so a live job is never taken as dead)."""
    with db.session() as session:
        job = session.get(Job, job_id)
        if job is None:
            raise JobNotFound(job_id)
        job.heartbeat_at = utcnow()
        if step is not None:
            job.step, job.fraction = step, None
        if fraction is not None:
            job.fraction = min(max(fraction, 0.0), 1.0)
        if message is not None:
            job.messages = json.dumps([*json.loads(job.messages), message][-MAX_MESSAGES:])


def finish(db: AppDB, job_id: int, result: dict[str, Any],
           error: PasserelleError | None = None, exit_code: int = 0) -> None:
    """The job ran to its end: ``succeeded`` with exit code 0, else ``failed`` with the
    result of what it did (a run whose checks failed has a summary too) and its error."""
    _end(db, job_id, "succeeded" if exit_code == 0 else "failed", result, error, exit_code)


def fail(db: AppDB, job_id: int, error: BaseException) -> None:
    """The job stopped on an error. A :class:`PasserelleError` keeps its reason, instruction
    and exit code; anything else is a bug (exit 3), named as such."""
    if not isinstance(error, PasserelleError):
        error = _Bug(f"Internal error: {type(error).__name__}: {error}",
                     "This is a bug in Passerelle: the server log has the traceback; please "
                     "report it.")
    _end(db, job_id, "failed", None, error, int(error.exit_code))


def _end(db: AppDB, job_id: int, status: str, result: dict[str, Any] | None,
         error: PasserelleError | None, exit_code: int) -> None:
    with db.session() as session:
        job = session.get(Job, job_id)
        if job is None:
            raise JobNotFound(job_id)
        job.status, job.finished_at, job.exit_code = status, utcnow(), exit_code
        job.heartbeat_at = job.finished_at
        if status == "succeeded":
            job.fraction = 1.0
        job.result = None if result is None else json.dumps(result, default=str)
        job.error = None if error is None else json.dumps(error_dict(error))


def error_dict(error: PasserelleError) -> dict[str, Any]:
    return {"reason": error.reason, "instruction": error.instruction,
            "exit_code": int(error.exit_code)}


def cancel(db: AppDB, job_id: int) -> dict[str, Any]:
    """Cancel a job still in the queue (atomic: a worker cannot claim it meanwhile)."""
    with db.session() as session:
        done = session.execute(update(Job).where(Job.id == job_id, Job.status == "queued")
                               .values(status="cancelled", finished_at=utcnow())
                               .returning(Job.id)).scalar_one_or_none()
    job = get(db, job_id)
    if done is None:
        raise JobNotCancellable(job_id, job["status"])
    return job


def requeue(db: AppDB, job_id: int, created_by: str) -> int:
    """Queue again what an interrupted (or failed, or cancelled) job was asked to do."""
    job = get(db, job_id)
    if job["status"] in ACTIVE or job["status"] == "succeeded":
        raise JobNotRequeueable(job_id, job["status"])
    return enqueue(db, job["kind"], job["params"], created_by, requeued_from=job_id)


def mark_interrupted(db: AppDB) -> list[int]:
    """Jobs left ``running`` by a worker that is gone: its process no longer runs on this
    machine, or (another machine) its heartbeat stopped. Called when a server starts."""
    stale = utcnow() - STALE_AFTER
    with db.session() as session:
        running = session.execute(select(Job.id, Job.worker, Job.heartbeat_at)
                                  .where(Job.status == "running")).all()
        gone = [r.id for r in running if process_gone(r.worker or "")
                or (r.heartbeat_at is not None and r.heartbeat_at < stale)]
        if gone:
            session.execute(update(Job).where(Job.id.in_(gone), Job.status == "running")
                            .values(status="interrupted", finished_at=utcnow(),
                                    exit_code=int(ExitCode.EXTERNAL_ERROR), error=json.dumps({
                                        "reason": "The server stopped while the job ran.",
                                        "instruction": "Queue it again (POST /api/jobs/{id}/"
                                                       "requeue); nothing was lost.",
                                        "exit_code": int(ExitCode.EXTERNAL_ERROR)})))
    return gone


def get(db: AppDB, job_id: int) -> dict[str, Any]:
    with db.session() as session:
        job = session.get(Job, job_id)
        if job is None:
            raise JobNotFound(job_id)
        return as_dict(job)


def recent(db: AppDB, limit: int = 20, status: str | None = None) -> list[dict[str, Any]]:
    statement = select(Job).order_by(Job.id.desc()).limit(limit)
    if status is not None:
        statement = statement.where(Job.status == status)
    with db.session() as session:
        return [as_dict(j) for j in session.scalars(statement)]


def as_dict(job: Job) -> dict[str, Any]:
    return {
        "job_id": job.id, "kind": job.kind, "params": json.loads(job.params),
        "status": job.status, "created_at": job.created_at, "created_by": job.created_by,
        "started_at": job.started_at, "finished_at": job.finished_at,
        "progress": {"step": job.step, "fraction": job.fraction,
                     "messages": json.loads(job.messages)},
        "result": None if job.result is None else json.loads(job.result),
        "error": None if job.error is None else json.loads(job.error),
        "exit_code": job.exit_code, "requeued_from": job.requeued_from,
    }
