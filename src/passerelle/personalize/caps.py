"""Frequency caps and budgets as counters, named the same way in Python, SQL and Redis.

A cap "at most N per person per period" counts in fixed windows: the window of a moment is
``floor(minutes since 1970 / period minutes)``, so every store (and the batch decisions in
SQL) agrees on which window a send falls in without sharing a clock state. A budget is one
counter that never expires. A message passes when every one of its counters is below its
limit; taking it increments them all, atomically (see the stores).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from passerelle.project.offers_models import Cap, OfferConfig, PlacementConfig

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Counter:
    key: str  # person id last: the parts before it are names and integers, never ambiguous
    limit: int
    expires_at: datetime | None  # end of the window (UTC); None for a budget


def _utc(now: datetime) -> datetime:
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)


def window(now: datetime, minutes: int) -> int:
    return int((_utc(now) - _EPOCH).total_seconds() // 60) // minutes


def cap_prefix(scope: str, name: str, cap: Cap, now: datetime) -> str:
    """The key of a cap's counter without the person id (``scope``: o offer, p placement)."""
    return f"cap:{scope}:{name}:{cap.minutes}:{window(now, cap.minutes)}:"


def budget_key(offer: str) -> str:
    return f"budget:{offer}"


def window_end(now: datetime, minutes: int) -> datetime:
    """When the window of ``now`` ends (UTC): a cap's counter expires then."""
    return _EPOCH + timedelta(minutes=(window(now, minutes) + 1) * minutes)


def _cap(scope: str, name: str, cap: Cap, person_id: str, now: datetime) -> Counter:
    return Counter(cap_prefix(scope, name, cap, now) + person_id, cap.at_most,
                   window_end(now, cap.minutes))


def counters(offer: OfferConfig, placement: PlacementConfig, person_id: str,
             now: datetime) -> list[Counter]:
    """Every counter a message of ``offer`` in ``placement`` to ``person_id`` increments."""
    out = [_cap("o", offer.name, c, person_id, now) for c in offer.caps]
    out += [_cap("p", placement.name, c, person_id, now) for c in placement.caps]
    if offer.budget is not None:
        out.append(Counter(budget_key(offer.name), offer.budget, None))
    return out
