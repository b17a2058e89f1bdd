"""A stored figure read by a command, without Ibis on a DuckDB warehouse once its queries
are kept (:meth:`passerelle.core.Project.rows`), used only while it is current: computed on
the data as it is now, and after the last edit of the project files it depends on.

:mod:`passerelle.figures.store` writes the figures (and the pages read them); both make
their queries here.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC
from typing import Any

from passerelle.errors import PasserelleError
from passerelle.figures.codec import decode
from passerelle.runlog import RUNS_TABLE
from passerelle.tables import FIGURES_TABLE

WINDOW_DAYS = 14  # the campaigns page's default window: computed in each run
# Tables that jobs change between runs (audiences built, exports sent): part of the stamp.
OUTSIDE_RUNS = ("audience_holdouts", "activation_log")


def campaigns_key(section: str, days: int) -> str:
    """The key of a section of the campaigns page (holdouts, results, attribution)."""
    return f"campaigns/{section}/{days}"


def stamp_query(engine: Any, names: Sequence[str]) -> Any:
    """One row per table of ``names`` (the runs, ``OUTSIDE_RUNS``): ``k`` its name, ``v``
    its latest run (runs) or its size (the others), as text (an Ibis table)."""
    import ibis

    parts = []
    for name in names:
        t = engine.table(name)
        v = t.run_id.max() if name == RUNS_TABLE else t.count().cast("string")
        parts.append(t.aggregate(k=ibis.literal(name, "string"), v=v.cast("string")))
    return ibis.union(*parts).order_by("k")


def stamp_of(rows: Sequence[dict]) -> tuple[str | None, str]:
    """(the latest run's id, the stamp) of :func:`stamp_query`'s rows."""
    found = {r["k"]: r["v"] for r in rows}
    return found.get(RUNS_TABLE), ";".join(f"{k}={v}" for k, v in sorted(found.items()))


def figure_query(engine: Any, key: Any) -> Any:
    """The stored row of the figure ``key`` (an Ibis table)."""
    t = engine.table(FIGURES_TABLE)
    return t.filter(t.key == key).select("run_id", "stamp", "computed_at", "body")


def data_stamp(project: Any) -> tuple[str | None, str]:
    """:func:`passerelle.figures.store.data_stamp` of a :class:`~passerelle.core.Project`."""
    names = [n for n in (RUNS_TABLE, *OUTSIDE_RUNS) if project.has_table(n)]
    if not names:
        return None, ""
    return stamp_of(project.rows(f"figures_stamp {' '.join(names)}",
                                 lambda _: stamp_query(project.engine, names)))


def current(project: Any, key: str, files: Sequence[str] = ()) -> Any | None:
    """The stored figure ``key`` of a :class:`~passerelle.core.Project` if it was computed
    on the data as it is now and after the last change of the project files matching the
    patterns ``files`` (``passerelle.yml``, ``sources/*``: what the figure depends on);
    None otherwise, or when it ended on an error (the caller computes it, and says why)."""
    if not project.has_table(FIGURES_TABLE):
        return None
    rows = project.rows("figures_read", lambda v: figure_query(project.engine, v["key"]),
                        {"key": key})
    if not rows or rows[0]["stamp"] != data_stamp(project)[1]:
        return None
    computed = rows[0]["computed_at"].replace(tzinfo=UTC).timestamp()
    root = project.root
    if any(p.stat().st_mtime >= computed for pattern in files for p in root.glob(pattern)):
        return None
    value = decode(rows[0]["body"])
    return None if isinstance(value, PasserelleError) else value
