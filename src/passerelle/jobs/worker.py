"""The server's worker: one thread that takes jobs from the queue and runs them on the
server's own warehouse connection.

Taking turns. The REST routes and the worker share one connection (DuckDB connections are
not to be used by two threads at once), guarded by :class:`WarehouseLock`:

- a job holds the lock while it runs, but between two steps of its work (each
  ``reporter.step``, outside any open transaction) it lets whoever waits go first, in
  arrival order: a read waits at most for the step in progress (one source's load, the
  identity graph, the traits...), never for the whole run, and sees every table as the
  last finished step left it;
- the routes that write (identity pins, privacy requests) also take ``writer``, held by a
  job from start to end: they wait for the job to finish, so they never change the
  warehouse under a run, and a run never sees half of an erasure.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from passerelle.errors import PasserelleError
from passerelle.governance import jobs as queue
from passerelle.governance.db import AppDB

_log = logging.getLogger("passerelle.jobs")
HEARTBEAT_SECONDS = 30.0
FRACTION_EVERY = 0.5  # seconds between two writes of a step's fraction


class WarehouseLock:
    """A re-entrant lock served in arrival order, so a long job that lets others in between
    its steps really lets them in (a plain lock may be taken back by the same thread)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._waiting: deque[object] = deque()
        self._owner: int | None = None
        self._depth = 0
        self.writer = threading.Lock()  # held by a job from its start to its end

    def acquire(self) -> None:
        me = threading.get_ident()
        with self._cond:
            if self._owner == me:
                self._depth += 1
                return
            self._wait_turn(me, 1)

    def _wait_turn(self, me: int, depth: int) -> None:
        ticket = object()
        self._waiting.append(ticket)
        while self._owner is not None or self._waiting[0] is not ticket:
            self._cond.wait()
        self._waiting.popleft()
        self._owner, self._depth = me, depth

    def release(self) -> None:
        with self._cond:
            self._depth -= 1
            if self._depth == 0:
                self._owner = None
                self._cond.notify_all()

    def let_others_in(self) -> None:
        """Called by the holder: whoever waits goes first, then the holder goes on."""
        me = threading.get_ident()
        with self._cond:
            if self._owner != me or not self._waiting:
                return
            depth, self._owner, self._depth = self._depth, None, 0
            self._cond.notify_all()
            self._wait_turn(me, depth)

    def __enter__(self) -> WarehouseLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class _Progress:
    def __init__(self, reporter: JobReporter, total: float | None) -> None:
        self.reporter, self.total, self.done, self.written = reporter, total, 0.0, 0.0

    def advance(self, amount: float = 1) -> None:
        self.done += amount
        now = time.monotonic()
        if self.total and now - self.written >= FRACTION_EVERY:
            self.written = now
            queue.progress(self.reporter.db, self.reporter.job_id,
                           fraction=self.done / self.total)


class JobReporter:
    """A :class:`passerelle.reporter.Reporter` that writes a job's progress to the queue and
    lets readers onto the warehouse between steps."""

    def __init__(self, db: AppDB, job_id: int, lock: WarehouseLock, engine: Any) -> None:
        self.db, self.job_id, self.lock, self.engine = db, job_id, lock, engine

    def info(self, message: str) -> None:
        queue.progress(self.db, self.job_id, message=message)

    def warning(self, message: str) -> None:
        queue.progress(self.db, self.job_id, message=f"warning: {message}")

    @contextmanager
    def step(self, name: str, total: float | None = None) -> Iterator[_Progress]:
        if self.engine.transaction_depth == 0:
            self.lock.let_others_in()
        queue.progress(self.db, self.job_id, step=name)
        yield _Progress(self, total)


class Worker:
    """Runs queued jobs one at a time on ``project`` (the server's Project)."""

    def __init__(self, project: Any, db: AppDB, lock: WarehouseLock,
                 poll_seconds: float = 1.0) -> None:
        self.project, self.db, self.lock, self.poll = project, db, lock, poll_seconds
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        interrupted = queue.mark_interrupted(self.db)
        if interrupted:
            _log.warning("jobs %s were running when the server stopped: marked interrupted",
                         ", ".join(map(str, interrupted)))
        # a daemon: a stop does not wait for a long run; the job is then marked interrupted
        # when a server starts again
        self._thread = threading.Thread(target=self._loop, name="passerelle-jobs",
                                        daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """A job was queued: look now rather than at the next poll."""
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def idle(self) -> bool:
        """Not running a job (stopped, or never started)."""
        return self._thread is None or not self._thread.is_alive()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                job = queue.claim(self.db)
            except Exception:  # the application database is away: try again later
                _log.exception("cannot read the jobs queue")
                job = None
            if job is None:
                self._wake.wait(self.poll)
                self._wake.clear()
                continue
            self.run(job)

    def run(self, job: dict[str, Any]) -> None:
        from passerelle.jobs.kinds import execute  # the kinds import the API's input types

        job_id = job["job_id"]
        beating = threading.Event()
        threading.Thread(target=self._heartbeat, args=(job_id, beating), daemon=True).start()
        try:
            with self.lock.writer, self.lock:
                reporter = JobReporter(self.db, job_id, self.lock, self.project.engine)
                try:
                    result, error, code = execute(job["kind"], job["params"],
                                                  self.project.sharing(reporter),
                                                  job["created_by"])
                finally:
                    # the job's writes in the file, not only in the write-ahead log: a
                    # killed server leaves nothing of a finished job to replay
                    self.project.engine.checkpoint()
            queue.finish(self.db, job_id, result, error, code)
        except Exception as exc:
            if not isinstance(exc, PasserelleError):
                _log.exception("job %s (%s) failed", job_id, job["kind"])
            queue.fail(self.db, job_id, exc)
        finally:
            beating.set()

    def _heartbeat(self, job_id: int, done: threading.Event) -> None:
        """A step can be silent for long (one big SQL statement): the heartbeat says the job
        still runs, so a server on another machine never takes it for interrupted."""
        while not done.wait(HEARTBEAT_SECONDS):
            try:
                queue.progress(self.db, job_id)
            except Exception:
                _log.exception("cannot write job %s's heartbeat", job_id)
