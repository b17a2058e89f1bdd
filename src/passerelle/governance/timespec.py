"""Durations and points in time as people type them: ``90d``, ``12h``, ``2025-01-31``."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from passerelle.errors import PasserelleError
from passerelle.runlog import utcnow

_DURATION = re.compile(r"^\s*(\d+)\s*([mhdw])\s*$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str) -> timedelta:
    match = _DURATION.match(text)
    if not match or int(match.group(1)) == 0:
        raise PasserelleError(f"'{text}' is not a duration.",
                              "Write a number and a unit: 30m, 12h, 90d or 4w.")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def parse_since(text: str) -> datetime:
    """A duration back from now (``7d``) or a date/time in UTC (``2025-01-31``)."""
    if _DURATION.match(text):
        return utcnow() - parse_duration(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise PasserelleError(f"'{text}' is neither a duration nor a date.",
                              "Write 7d, 24h, 2025-01-31 or 2025-01-31T08:00.") from exc
    if moment.tzinfo is not None:
        from datetime import UTC

        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment
