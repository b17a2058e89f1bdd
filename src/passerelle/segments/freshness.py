"""Whether each segment is fresh, read without Ibis on a DuckDB warehouse (`passerelle
segment status`: see :meth:`passerelle.core.Project.rows`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from passerelle.tables import SEGMENT_STATUS_TABLE


def mark_stale(rows: list[dict], now: datetime) -> list[dict]:
    """Each status row with ``stale`` as of ``now``: past its next refresh, or its last
    refresh failed."""
    for r in rows:
        due = r["next_refresh_at"]
        r["stale"] = bool(r["status"] == "failed" or due is None or now >= due)
    return rows


def segment_freshness(project: Any, now: datetime) -> list[dict]:
    """Every segment's status row (see ``segments.membership.STATUS_SCHEMA``) of a
    :class:`~passerelle.core.Project`, by name, with ``stale`` as of ``now``."""
    if not project.has_table(SEGMENT_STATUS_TABLE):
        return []
    rows = project.rows("segment_status", lambda _slots: project.engine.table(
        SEGMENT_STATUS_TABLE).order_by("segment"))
    return mark_stale(rows, now)
