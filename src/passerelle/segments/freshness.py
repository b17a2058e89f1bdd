"""Whether each segment and audience is fresh, read without Ibis on a DuckDB warehouse
(`passerelle segment status`, `passerelle audience status`: see
:meth:`passerelle.core.Project.rows`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from passerelle.tables import (
    AUDIENCE_BUILDS_TABLE,
    AUDIENCE_MEMBERS_TABLE,
    SEGMENT_HISTORY_TABLE,
    SEGMENT_STATUS_TABLE,
)


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


def last_changes(history: Any) -> Any:
    """The last time each segment's members changed (``segment``, ``at``), from the Ibis
    table of its membership history."""
    import ibis

    last = ibis.greatest(history.entered_at, history.exited_at.fill_null(history.entered_at))
    return history.group_by("segment").aggregate(at=last.max())


def audience_freshness(project: Any, audiences: Mapping[str, Any], now: datetime
                       ) -> list[dict]:
    """:func:`audience_rows` of a :class:`~passerelle.core.Project`'s warehouse (whose
    builds made before ``audience_builds`` existed are recorded: see
    :func:`needs_builds_recorded`)."""
    built = project.rows("audience_builds", lambda _slots: project.engine.table(
        AUDIENCE_BUILDS_TABLE)) if project.has_table(AUDIENCE_BUILDS_TABLE) else []
    changed = project.rows("segment_last_changes", lambda _slots: last_changes(
        project.engine.table(SEGMENT_HISTORY_TABLE))) \
        if project.has_table(SEGMENT_HISTORY_TABLE) else []
    return audience_rows(audiences, segment_freshness(project, now), built, changed)


def needs_builds_recorded(project: Any) -> bool:
    """Whether audiences were built before ``audience_builds`` existed (members only):
    ``segments.audience.ensure_builds`` records them."""
    return not project.has_table(AUDIENCE_BUILDS_TABLE) and project.has_table(
        AUDIENCE_MEMBERS_TABLE)


def audience_rows(audiences: Mapping[str, Any], segments: Sequence[dict],
                  built: Sequence[dict], changed: Sequence[dict]) -> list[dict]:
    """Each audience's freshness: when its people were last computed (``built_at``), its
    segment's last and next refresh, and ``stale`` with the reason (never built, segment
    due or failed, or the segment's members changed after the build). ``segments``: their
    status rows, ``stale`` marked; ``built``: the rows of ``audience_builds``;
    ``changed``: :func:`last_changes`."""
    status = {r["segment"]: r for r in segments}
    builds = {r["audience"]: r for r in built}
    moved = {r["segment"]: r["at"] for r in changed}
    rows = []
    for name, aud in sorted(audiences.items()):
        b = builds.get(name, {})
        s = status.get(aud.segment or "", {})
        why = None
        if not b:
            why = "never built: run `passerelle run`"
        elif not s:
            why = "its segment was never refreshed"
        elif s["stale"]:
            why = ("its segment failed to refresh" if s["status"] == "failed"
                   else "its segment is due for a refresh")
        elif moved.get(aud.segment or "") and moved[aud.segment] > b["built_at"]:
            why = "its segment's members changed after the audience was built"
        rows.append({"audience": name, "segment": aud.segment, "channel": aud.channel,
                     "purpose": aud.purpose,
                     "built_at": b.get("built_at"), "treated": int(b.get("treated") or 0),
                     "holdout": int(b.get("holdout") or 0),
                     "no_consent": b.get("no_consent"), "no_identifier": b.get("no_identifier"),
                     "segment_refreshed_at": s.get("last_refreshed_at"),
                     "members_as_of": s.get("evaluated_at"),
                     "next_refresh_at": s.get("next_refresh_at"),
                     "stale": why is not None, "why": why})
    return rows
