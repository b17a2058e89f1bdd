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
from passerelle.tables import CHECK_RESULTS_TABLE, FIGURES_TABLE, STEP_STATE_TABLE

WINDOW_DAYS = 14  # the campaigns page's default window: computed in each run
# Tables that jobs change between runs (audiences built, exports sent): part of the stamp.
OUTSIDE_RUNS = ("audience_holdouts", "activation_log")
# What the stamp is made of: the latest run (its id is not part of the stamp), what the data's
# steps last saw, the check results, and the tables of OUTSIDE_RUNS.
STAMP_TABLES = (RUNS_TABLE, STEP_STATE_TABLE, CHECK_RESULTS_TABLE, *OUTSIDE_RUNS)
# The state rows that are not about data the figures read: the figures step's own, and the
# traits' (no figure reads a trait; a trait over a window of time changes every day).
NOT_READ = ("figures", "trait:")


def campaigns_key(section: str, days: int) -> str:
    """The key of a section of the campaigns page (holdouts, results, attribution)."""
    return f"campaigns/{section}/{days}"


def stamp_query(engine: Any, names: Sequence[str]) -> Any:
    """The rows the stamp is made of (an Ibis table of ``k``, ``v`` as text), from the
    tables of ``names`` (those of :data:`STAMP_TABLES` that exist): the latest run; each
    step's fingerprint of its inputs (it changes when the step rewrote its tables); the
    outcome of the last two check runs (the quality tile); the sizes of the tables jobs
    change between runs. A run that changed nothing leaves all but the first as they were."""
    import ibis

    parts = []
    for name in names:
        t = engine.table(name)
        if name == RUNS_TABLE:
            parts.append(t.aggregate(k=ibis.literal(name, "string"),
                                     v=t.run_id.max().cast("string")))
        elif name == STEP_STATE_TABLE:
            t = t.filter(~ibis.or_(*[t.step.startswith(p) for p in NOT_READ]))
            parts.append(t.select(k="state:" + t.step, v=t.fingerprint.cast("string")))
        elif name == CHECK_RESULTS_TABLE:
            runs = t.group_by("run_id").aggregate(
                at=t.checked_at.max(), total=t.count(), passed=t.count(where=t.passed))
            runs = runs.mutate(i=ibis.row_number().over(
                ibis.window(order_by=[ibis.desc("at"), ibis.desc("run_id")])))
            runs = runs.filter(runs.i < 2)
            parts.append(runs.select(
                k="checks:" + runs.i.cast("string"),
                v=runs.passed.cast("string") + "/" + runs.total.cast("string")))
        else:
            parts.append(t.aggregate(k=ibis.literal(name, "string"),
                                     v=t.count().cast("string")))
    return ibis.union(*parts).order_by(["k", "v"])


def stamp_of(rows: Sequence[dict]) -> tuple[str | None, str]:
    """(the latest run's id, the stamp) of :func:`stamp_query`'s rows."""
    found = {r["k"]: r["v"] for r in rows}
    run_id = found.pop(RUNS_TABLE, None)
    return run_id, ";".join(f"{k}={v}" for k, v in sorted(found.items()))


def figure_query(engine: Any, key: Any) -> Any:
    """The stored row of the figure ``key`` (an Ibis table)."""
    t = engine.table(FIGURES_TABLE)
    return t.filter(t.key == key).select("run_id", "stamp", "computed_at", "body")


def data_stamp(project: Any) -> tuple[str | None, str]:
    """:func:`passerelle.figures.store.data_stamp` of a :class:`~passerelle.core.Project`."""
    names = [n for n in STAMP_TABLES if project.has_table(n)]
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
