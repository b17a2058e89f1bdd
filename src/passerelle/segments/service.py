"""Project-level verbs behind `passerelle segment ...` and `passerelle audience ...`.

The CLI (and later the API) call these with a loaded :class:`passerelle.core.Project`;
they read the project's segment definitions (``project.definition.segments``, a
:class:`SegmentDefinitions`) and return plain data.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from passerelle.errors import PasserelleError
from passerelle.project.segments_models import AudienceConfig, SegmentConfig
from passerelle.runlog import new_run_id, utcnow
from passerelle.segments import audience as _audience
from passerelle.segments import compiler, membership
from passerelle.segments.kinds import close_names, trait_kinds
from passerelle.segments.validate import SegmentDefinitions


def definitions(project: Any) -> SegmentDefinitions:
    defs = getattr(project.definition, "segments", None)
    if not defs or not defs.segments:
        raise PasserelleError("This project defines no segment.",
                              "Add segments/*.yml (see docs/segments.md).")
    return defs


def _kinds(project: Any) -> dict[str, str] | None:
    traits = getattr(project.definition, "traits", None)
    return trait_kinds(traits) if traits is not None else None


def _named(kind: str, known: dict[str, Any], name: str) -> Any:
    if name not in known:
        raise PasserelleError(f"There is no {kind} named '{name}'.",
                              close_names(name, known)
                              or f"{kind.capitalize()}s: {', '.join(sorted(known)) or 'none'}.")
    return known[name]


def segment(project: Any, name: str) -> SegmentConfig:
    return _named("segment", definitions(project).segments, name)


def audience(project: Any, name: str) -> AudienceConfig:
    return _named("audience", definitions(project).audiences, name)


def count(project: Any, name: str, now: datetime | None = None) -> int:
    defs = definitions(project)
    return compiler.count(project.engine, segment(project, name), defs.segments,
                          now or utcnow(), _kinds(project))


def sample(project: Any, name: str, n: int = 20, mask_pii: bool = True,
           now: datetime | None = None) -> list[dict]:
    defs = definitions(project)
    return compiler.sample(project.engine, segment(project, name), defs.segments,
                           now or utcnow(), n=n, mask_pii=mask_pii,
                           trait_kinds=_kinds(project))


def overlap(project: Any, names: list[str], now: datetime | None = None) -> dict:
    defs = definitions(project)
    return compiler.overlap(project.engine, [segment(project, n) for n in names],
                            defs.segments, now or utcnow(), _kinds(project))


def members(project: Any, name: str, since: datetime | None = None,
            on: datetime | None = None, limit: int | None = None) -> list[dict]:
    """Stored members: now, those new since ``since``, or those in it on ``on``."""
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


def refresh(project: Any, names: list[str] | None = None,
            full: bool = False) -> membership.RefreshSummary:
    defs = definitions(project)
    for name in names or []:
        segment(project, name)
    return membership.refresh_memberships(project.engine, defs.segments, new_run_id(),
                                          utcnow(), full=full, trait_kinds=_kinds(project),
                                          only=names)


def status(project: Any) -> list[dict]:
    return membership.freshness(project.engine, utcnow())


def build(project: Any, name: str) -> _audience.AudienceSummary:
    """Rebuild one audience from its segment's stored members."""
    return _audience.write_audience(project.engine, audience(project, name), utcnow(),
                                    new_run_id())
