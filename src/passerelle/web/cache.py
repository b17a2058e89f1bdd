"""A short-lived cache of the pages' heavy figures, per server, keyed on the warehouse's runs.

A figure (the home tiles, a campaigns report, an experiment's read-out) is kept at most
``TTL_S`` seconds, and only as long as the warehouse's run log is unchanged: a new
``passerelle run`` (or a step of one that starts or finishes) changes the log's stamp, so
the next page computes afresh. The stamp is
one small query written with sqlglot (no Ibis compilation on every page).

Errors are not cached: a page that failed tries again on its next request.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import sqlglot.expressions as sge

from passerelle.core import Project
from passerelle.engines.base import Engine
from passerelle.runlog import RUNS_TABLE

T = TypeVar("T")
TTL_S = 60.0
MAX_ENTRIES = 64  # a few windows of the campaigns page, the home tiles
_STAMP_SQL = sge.select(
    sge.Max(this=sge.column("run_id")), sge.Max(this=sge.column("started_at")),
    sge.Max(this=sge.column("finished_at")), sge.Count(this=sge.Star()),
).from_(sge.to_table(RUNS_TABLE, quoted=True))


class PageCache:
    """Values computed from the warehouse, each under its key and the run stamp it saw."""

    def __init__(self, ttl_s: float = TTL_S) -> None:
        self.ttl_s = ttl_s
        self._entries: dict[Hashable, tuple[Any, float, Any]] = {}
        self._guard = threading.Lock()

    def get(self, project: Project, key: Hashable, compute: Callable[[], T]) -> T:
        """The value under ``key``, computed by ``compute`` when absent, older than the TTL
        or seen under another run stamp. Call it with the warehouse's lock held."""
        stamp = run_stamp(project)
        now = time.monotonic()
        with self._guard:
            hit = self._entries.get(key)
        if hit is not None and hit[1] == stamp and now - hit[2] < self.ttl_s:
            return hit[0]
        value = compute()
        with self._guard:
            if len(self._entries) >= MAX_ENTRIES:
                self._entries.clear()
            self._entries[key] = (value, stamp, now)
        return value

    def clear(self) -> None:
        with self._guard:
            self._entries.clear()


def run_stamp(project: Project) -> tuple[Any, ...]:
    """What the run log looks like now: the latest run, its last step's times, its size."""
    engine = project.engine
    if not engine.exists(RUNS_TABLE):
        return ()
    return tuple(engine.execute(_STAMP_SQL)[0])


def page_cache(state: Any) -> PageCache:
    """The server's cache (one per app, kept on its state)."""
    cache = getattr(state, "page_cache", None)
    if cache is None:
        cache = state.page_cache = PageCache()
    return cache


@contextmanager
def same_tables(engine: Engine) -> Iterator[None]:
    """For one read-only page: the warehouse's table list read once (not once per
    ``exists``) and each table looked up once (not once per query). Only for work that
    creates no table; the page's lock keeps the engine to one thread meanwhile."""
    names: set[str] | None = None
    tables: dict[str, Any] = {}
    lookup = engine.table

    def exists(name: str) -> bool:
        nonlocal names
        if names is None:
            names = set(engine.list_tables())
        return name in names

    def table(name: str) -> Any:
        if name not in tables:
            tables[name] = lookup(name)
        return tables[name]

    engine.exists, engine.table = exists, table  # type: ignore[method-assign]
    try:
        yield
    finally:
        del engine.exists, engine.table
