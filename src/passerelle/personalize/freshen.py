"""The decision store kept fresh by the server: seconds after the collector's loader commits
events or identify calls, the people they touch get their eligibility, fields and traits
recomputed in the serving store (warehouse, and Redis when configured).

Each refresh is the event-driven one (:func:`passerelle.segments.service.refresh_events`:
stage the new events, stitch the identifiers identify calls brought, refresh the segments
over events and their audiences) followed by :func:`.incremental.refresh_touched` for the
people it touched. It runs in a thread of its own, never in the loader's nor in a request's:

- the loader only calls :meth:`Freshener.notify`, which marks work as pending and returns;
- backpressure: at most one refresh runs and at most one waits, whatever the number of
  loads meanwhile (the waiting one takes every event loaded until it starts), and two
  refreshes are at least ``min_interval`` apart (decisions do not wait for a refresh:
  they read Redis, or the warehouse on a connection of their own);
- it takes the server's warehouse lock as a job does (``writer`` for the whole refresh,
  the lock itself letting waiting requests in between steps);
- a failure is kept: :meth:`Freshener.health` shows it (``/v1/health`` under
  ``freshness``), the run log gets a failed ``freshen`` step, and the loads it missed stay
  pending: retried after 1 s, 2 s, 4 s... (at most a minute) until a refresh succeeds.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

_log = logging.getLogger("passerelle.personalize")


class _Sharing:
    """A reporter that lets whoever waits for the warehouse lock go first between steps."""

    def __init__(self, lock: Any, engine: Any) -> None:
        self.lock, self.engine = lock, engine

    def info(self, message: str) -> None:
        pass

    def warning(self, message: str) -> None:
        _log.warning("decision store refresh: %s", message)

    @contextlib.contextmanager
    def step(self, name: str, total: float | None = None) -> Iterator[Any]:
        let = getattr(self.lock, "let_others_in", None)
        if let is not None and self.engine.transaction_depth == 0:
            let()
        yield _NoProgress()


class _NoProgress:
    def advance(self, amount: float = 1) -> None:
        pass


def refresh_after_events(project: Any) -> dict[str, Any]:
    """One refresh: new events staged, segments over events refreshed, then the serving
    store of the people touched: those of the newly staged events, and those with an
    identifier the store did not map to them (nothing when the store was never built)."""
    from passerelle.personalize.incremental import mark, refresh_loaded
    from passerelle.personalize.tables import PEOPLE
    from passerelle.segments.incremental import refresh_after_load

    if not project.engine.exists(PEOPLE):  # never built: `passerelle run` builds it all
        return {"run_id": None, "staged": [], "changed": 0, "people": 0, "audiences": []}
    before = mark(project.engine)
    # (not segments.service.refresh_events: a project may have offers and no segment)
    summary = refresh_after_load(project.engine, project.definition,
                                 reporter=project.reporter)
    with project.reporter.step("decision store"):  # requests waiting go first
        people = refresh_loaded(project, before) if summary.staged else 0
    return {"run_id": summary.run_id, "staged": list(summary.staged),
            "changed": summary.changed, "people": people,
            "audiences": sorted(summary.audiences)}


class Freshener:
    """Refreshes the decision store after loads (see the module's doc). ``lock``: the
    server's warehouse lock (a :class:`passerelle.jobs.worker.WarehouseLock`, or any
    re-entrant lock; its ``writer``, when it has one, is held for the whole refresh)."""

    def __init__(self, project: Any, lock: Any, min_interval: float = 1.0) -> None:
        self.project, self.lock, self.min_interval = project, lock, min_interval
        self._cond = threading.Condition()
        self._pending_since: float | None = None  # monotonic time of the first waiting load
        self._pending_rows = 0
        self._running_since: float | None = None  # the oldest load the running one takes
        self._thread: threading.Thread | None = None
        self._stopped = False
        self._next_at = 0.0  # monotonic: not before
        self.refreshes = 0
        self.last: dict[str, Any] | None = None  # the last refresh that succeeded
        self.error: str | None = None  # the last refresh's failure (None once one succeeds)
        self.failures = 0
        self._failing = 0  # failures in a row

    def notify(self, rows: int) -> None:
        """``rows`` events were committed to the warehouse: refresh after them. Returns at
        once (called from the loader's thread)."""
        with self._cond:
            if self._stopped:
                return
            if self._pending_since is None:
                self._pending_since = time.monotonic()
            self._pending_rows += rows
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, daemon=True,
                                                name="decision-store-freshen")
                self._thread.start()
            self._cond.notify_all()

    def stop(self, timeout: float = 30.0) -> None:
        """No refresh after this one; waits for the one running (the server stops)."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def wait_idle(self, timeout: float) -> bool:
        """Until nothing is pending or running (tests, benchmarks); False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._pending_since is not None or self._running_since is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._stopped and (self._pending_since is None
                                             or time.monotonic() < self._next_at):
                    if self._pending_since is None:
                        self._thread = None  # idle: the next load starts a new thread
                        self._cond.notify_all()
                        return
                    self._cond.wait(max(0.0, self._next_at - time.monotonic()))
                if self._stopped:
                    self._thread = None
                    self._cond.notify_all()
                    return
                since, rows = self._pending_since, self._pending_rows
                self._pending_since, self._pending_rows = None, 0
                self._running_since = since
            started = time.monotonic()
            outcome, error = self._refresh()
            took = time.monotonic() - started
            with self._cond:
                self._running_since = None
                self._failing = 0 if error is None else self._failing + 1
                # after failures, retry later and later (1 s, 2 s, 4 s... at most a minute)
                backoff = min(60.0, 2.0 ** (self._failing - 1)) if self._failing else 0.0
                self._next_at = time.monotonic() + max(self.min_interval, backoff)
                if error is None:
                    self.refreshes += 1
                    self.error = None
                    self.last = {**outcome, "rows": rows, "seconds": round(took, 3),
                                 "lag_seconds": round(time.monotonic() - (since or started),
                                                      3),
                                 "at": datetime.now().astimezone().isoformat()}
                else:
                    self.failures += 1
                    self.error = error
                    # the loads it missed stay pending: the next refresh retries them
                    if self._pending_since is None:
                        self._pending_since = since
                    self._pending_rows += rows
                self._cond.notify_all()

    def _refresh(self) -> tuple[dict[str, Any], str | None]:
        from passerelle.errors import PasserelleError
        from passerelle.runlog import StepRecord, finish, new_run_id, utcnow

        project = self.project
        writer = getattr(self.lock, "writer", None)
        at = utcnow()
        try:
            with writer if writer is not None else contextlib.nullcontext(), self.lock:
                if project.engine.name == "duckdb":  # no progress bars in the server's log
                    project.engine.con.con.execute("SET enable_progress_bar = false")
                reporter = _Sharing(self.lock, project.engine)
                return refresh_after_events(project.sharing(reporter)), None
        except Exception as exc:
            message = (exc.reason if isinstance(exc, PasserelleError)
                       else f"{type(exc).__name__}: {exc}")[:2000]
            if not isinstance(exc, PasserelleError):
                _log.exception("the decision store was not refreshed after new events")
            else:
                _log.error("the decision store was not refreshed after new events: %s",
                           message)
            with contextlib.suppress(Exception), self.lock:  # the run log: not lost
                finish(project.engine, StepRecord(new_run_id(), "freshen", "", at, utcnow(),
                                                  status="failed", message=message))
            return {}, message

    def health(self) -> dict[str, Any]:
        """``ok`` false while the last refresh failed; ``lag_seconds``: how long the oldest
        load not yet refreshed has waited (0 when none waits)."""
        with self._cond:
            now = time.monotonic()
            waiting = self._pending_since if self._pending_since is not None \
                else self._running_since
            return {"ok": self.error is None, "error": self.error,
                    "pending": self._pending_since is not None,
                    "running": self._running_since is not None,
                    "lag_seconds": round(now - waiting, 3) if waiting is not None else 0.0,
                    "refreshes": self.refreshes, "failures": self.failures,
                    "last": self.last}


__all__ = ["Freshener", "refresh_after_events"]
