"""Project-level verbs behind `passerelle segment ...` and `passerelle audience ...`.

The CLI (and later the API) call these with a loaded :class:`passerelle.core.Project`;
they read the project's segment definitions (``project.definition.segments``, a
:class:`SegmentDefinitions`) and return plain data.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from passerelle.errors import PasserelleError
from passerelle.project.segments_models import AudienceConfig, SegmentConfig
from passerelle.runlog import new_run_id, utcnow
from passerelle.segments.freshness import (
    audience_freshness,
    needs_builds_recorded,
    segment_freshness,
)
from passerelle.segments.kinds import close_names, trait_kinds
from passerelle.segments.validate import SegmentDefinitions, activity_conditions

if TYPE_CHECKING:  # imported where used: a count read from kept SQL needs no Ibis
    from passerelle.segments import audience as _audience
    from passerelle.segments import incremental, membership

# The code a segment's SQL comes from (besides the libraries' versions): kept SQL is
# compiled again when it changes. Relative to the passerelle package.
COMPILER_CODE = ("segments/compiler.py", "segments/kinds.py", "segments/validate.py",
                 "segments/activity.py", "segments/service.py", "project/segments_models.py",
                 "metrics/expr.py")


def _left_out(project: Any, kind: str, name: str) -> None:
    for s in getattr(project.definition, "skipped", []):
        if s.kind == kind and s.name == name:
            raise PasserelleError(f"The {kind} '{name}' is skipped: {s.reason} ({s.where}).",
                                  "Run `passerelle validate` to see the problems to fix.")


def definitions(project: Any, name: str | None = None, kind: str = "segment",
                ) -> SegmentDefinitions:
    if name is not None:
        _left_out(project, kind, name)
    defs = getattr(project.definition, "segments", None)
    if not defs or not defs.segments:
        raise PasserelleError("This project defines no segment.",
                              "Add segments/*.yml (see docs/segments.md).")
    return defs


def _kinds(project: Any) -> dict[str, str] | None:
    traits = getattr(project.definition, "traits", None)
    return trait_kinds(traits) if traits is not None else None


class UnknownName(PasserelleError, LookupError):
    """No segment or audience of that name (a 404 over the API)."""


def _named(kind: str, known: dict[str, Any], name: str) -> Any:
    if name not in known:
        raise UnknownName(f"There is no {kind} named '{name}'.",
                              close_names(name, known)
                              or f"{kind.capitalize()}s: {', '.join(sorted(known)) or 'none'}.")
    return known[name]


def segment(project: Any, name: str) -> SegmentConfig:
    return _named("segment", definitions(project, name).segments, name)


def audience(project: Any, name: str) -> AudienceConfig:
    return _named("audience", definitions(project, name, "audience").audiences, name)


def count(project: Any, name: str, now: datetime | None = None) -> int:
    """How many people are in the segment as of ``now`` (naive UTC; default: now).

    The SQL takes the time as a parameter, so on DuckDB it is compiled once per definition
    of the project's segments and traits and kept (:meth:`passerelle.core.Project.rows`):
    the next count reads the warehouse without importing Ibis."""
    defs = definitions(project)
    seg = segment(project, name)
    kinds = _kinds(project)
    when = now or utcnow()
    if when.tzinfo is not None:
        when = when.astimezone(UTC).replace(tzinfo=None)

    # only event and order conditions read the time (a parameter must reach the SQL)
    timed = bool(activity_conditions(name, defs.segments))

    def build(slots: Any) -> Any:
        from passerelle.segments import compiler

        at = slots["now"].cast("timestamp") if timed else when
        members = compiler.compile_segment(project.engine, seg, defs.segments, at, kinds)
        return members.aggregate(people=members.count())

    rows = project.rows(f"segment count {name} {_definitions_digest(defs, kinds)}", build,
                        {"now": when.isoformat(sep=" ")} if timed else {})
    return int(rows[0]["people"])


def _definitions_digest(defs: SegmentDefinitions, kinds: dict[str, str] | None) -> str:
    """What a segment's SQL depends on in the project: every segment (references are
    inlined), the traits' kinds and the compiler's code."""
    from passerelle.verdicts import code_version

    text = json.dumps([{n: s.model_dump(mode="json") for n, s in sorted(defs.segments.items())},
                       kinds, code_version(COMPILER_CODE)], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def sample(project: Any, name: str, n: int = 20, role: str | None = None,
           now: datetime | None = None) -> list[dict]:
    """A few members, personal data masked for ``role`` (see ``compiler.ROLES``; default:
    ``compiler.DEFAULT_ROLE``)."""
    from passerelle.segments import compiler

    defs = definitions(project)
    return compiler.sample(project.engine, segment(project, name), defs.segments,
                           now or utcnow(), n=n,
                           role=compiler.DEFAULT_ROLE if role is None else role,
                           trait_kinds=_kinds(project))


def overlap(project: Any, names: list[str], now: datetime | None = None) -> dict:
    from passerelle.segments import compiler

    defs = definitions(project)
    return compiler.overlap(project.engine, [segment(project, n) for n in names],
                            defs.segments, now or utcnow(), _kinds(project))


def members(project: Any, name: str, since: datetime | None = None,
            on: datetime | None = None, limit: int | None = None) -> list[dict]:
    """Stored members: now, those new since ``since``, or those in it on ``on``."""
    from passerelle.segments import membership

    segment(project, name)
    engine = project.engine
    membership.ensure_tables(engine)
    if since is not None:
        expr = membership.new_members_since(engine, name, since)
    elif on is not None:
        expr = membership.members_on(engine, name, on)
    else:
        m = engine.table(membership.MEMBERSHIP)
        expr = m.filter(m.segment == name).select("person_id", "entered_at", "run_id")
    expr = expr.order_by("person_id")
    return engine.to_arrow(expr.limit(limit) if limit else expr).to_pylist()


def refresh(project: Any, names: list[str] | None = None, full: bool = False) -> dict:
    """Refresh memberships, then rebuild the audiences whose segment gained or lost people
    (so an audience is never older than its segment)."""
    from passerelle.segments import membership

    defs = definitions(project)
    for name in names or []:
        segment(project, name)
    run_id, now = new_run_id(), utcnow()
    summary = membership.refresh_memberships(project.engine, defs.segments, run_id, now,
                                             full=full, trait_kinds=_kinds(project),
                                             only=names)
    out = vars(summary)
    out["audiences"] = _rebuild_audiences(project, summary, now, run_id)
    return out


def refresh_events(project: Any, force: bool = False) -> incremental.EventRefreshSummary:
    """After new events were loaded: stage them, refresh the segments over events
    (incrementally where possible) and their audiences. See
    :func:`passerelle.segments.incremental.refresh_after_load`."""
    from passerelle.segments import incremental

    definitions(project)
    return incremental.refresh_after_load(project.engine, project.definition,
                                          reporter=project.reporter, force=force)


def _rebuild_audiences(project: Any, summary: membership.RefreshSummary, now: datetime,
                       run_id: str) -> dict[str, dict]:
    from passerelle.segments import audience as _audience

    moved = {n for n, c in summary.refreshed.items() if c["entered"] or c["exited"]}
    built = {}
    for name, aud in definitions(project).audiences.items():
        if aud.segment in moved:
            built[name] = _audience.write_audience(project.engine, aud, now, run_id).as_dict()
    return built


def status(project: Any) -> list[dict]:
    return segment_freshness(project, utcnow())


def audience_status(project: Any) -> list[dict]:
    """Freshness of every audience: built when, segment refreshed when, next refresh,
    stale and why."""
    audiences = definitions(project).audiences
    if needs_builds_recorded(project):
        from passerelle.segments.audience import ensure_builds

        ensure_builds(project.engine)
    return audience_freshness(project, audiences, utcnow())


def build(project: Any, name: str) -> _audience.AudienceSummary:
    """Rebuild one audience from its segment's stored members."""
    from passerelle.segments import audience as _audience

    return _audience.write_audience(project.engine, audience(project, name), utcnow(),
                                    new_run_id())
