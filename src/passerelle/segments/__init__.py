"""Segments: the condition language, its compiler, live counts, memberships with history,
and audiences with consent and holdouts. See docs/segments.md."""

from passerelle.segments.activity import prepare_activity
from passerelle.segments.audience import (
    AUDIENCE_HOLDOUTS,
    AUDIENCE_MEMBERS,
    AudienceSummary,
    build_audience,
    holdout_group,
    write_audience,
)
from passerelle.segments.compiler import compile_segment, count, overlap, sample
from passerelle.segments.kinds import SegmentError, trait_kinds
from passerelle.segments.membership import (
    HISTORY,
    MEMBERSHIP,
    STATUS,
    RefreshSummary,
    changes_since,
    freshness,
    members_on,
    new_members_since,
    refresh_memberships,
    was_member,
)
from passerelle.segments.step import SegmentsSummary, run_segments_step
from passerelle.segments.validate import SegmentDefinitions, read_segments

__all__ = [
    "AUDIENCE_HOLDOUTS", "AUDIENCE_MEMBERS", "HISTORY", "MEMBERSHIP", "STATUS",
    "AudienceSummary", "RefreshSummary", "SegmentDefinitions", "SegmentError",
    "SegmentsSummary", "build_audience", "changes_since", "compile_segment", "count",
    "freshness", "holdout_group", "members_on", "new_members_since", "overlap",
    "prepare_activity", "read_segments", "refresh_memberships", "run_segments_step", "sample",
    "trait_kinds", "was_member", "write_audience",
]
