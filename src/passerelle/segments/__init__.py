"""Segments: the condition language, its compiler, live counts, memberships with history,
and audiences with consent and holdouts. See docs/segments.md."""

from passerelle.lazy import lazy_exports

# Submodule -> its public names, imported on first use: importing one light submodule
# must not pull in the heavy ones (scipy, pandas, lifetimes).
_EXPORTS = {
    "activity": "prepare_activity",
    "audience": "AUDIENCE_HOLDOUTS AUDIENCE_MEMBERS AudienceSummary build_audience "
                "holdout_group write_audience",
    "compiler": "compile_segment count overlap sample",
    "kinds": "SegmentError trait_kinds",
    "membership": "HISTORY MEMBERSHIP STATUS RefreshSummary changes_since freshness members_on "
                  "new_members_since refresh_memberships was_member",
    "step": "SegmentsSummary run_segments_step",
    "validate": "SegmentDefinitions read_segments",
}
__all__ = sorted(n for names in _EXPORTS.values() for n in names.split())
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
