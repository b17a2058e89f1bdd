"""The ``segments`` pipeline step: activity tables, memberships, then audiences."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from passerelle.engines.base import Engine
from passerelle.errors import PasserelleError
from passerelle.project.models import SourceConfig
from passerelle.segments.activity import prepare_activity
from passerelle.segments.audience import AudienceSummary, write_audience
from passerelle.segments.membership import RefreshSummary, refresh_memberships
from passerelle.segments.validate import SegmentDefinitions


@dataclass
class SegmentsSummary:
    activity: dict[str, int] = field(default_factory=dict)
    memberships: RefreshSummary | None = None
    audiences: dict[str, AudienceSummary] = field(default_factory=dict)
    failed_audiences: dict[str, str] = field(default_factory=dict)


def run_segments_step(engine: Engine, definitions: SegmentDefinitions,
                      sources: Mapping[str, SourceConfig], run_id: str, now: datetime, *,
                      trait_kinds: Mapping[str, str] | None = None,
                      full: bool = False) -> SegmentsSummary:
    """Rebuild the activity tables, refresh the memberships that need it, and rebuild every
    audience (one join a channel: cheap, and consent changes apply at once)."""
    out = SegmentsSummary(activity=prepare_activity(engine, sources, now))
    out.memberships = refresh_memberships(engine, definitions.segments, run_id, now, full=full,
                                          trait_kinds=trait_kinds)
    for name, audience in definitions.audiences.items():
        if audience.segment in out.memberships.failed:
            out.failed_audiences[name] = "its segment failed to refresh"
            continue
        try:
            out.audiences[name] = write_audience(engine, audience, now, run_id)
        except PasserelleError as exc:
            out.failed_audiences[name] = exc.reason
    return out
