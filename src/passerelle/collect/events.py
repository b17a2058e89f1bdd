"""One Segment-Spec call, checked and made ready for the spool.

The hot path of the collector: every accepted event goes through :func:`prepare` once, so it
does only what must happen before the acknowledgement (reject what the spec forbids, fix the
clock skew, give a ``messageId``, check the tracking plan). Flattening into warehouse columns
happens later, in bulk, in the loader (:mod:`passerelle.collect.loader`).

Clock skew (as the Segment spec defines it): a device whose clock is wrong sends
``timestamp`` and ``sentAt`` with the same error, so ``timestamp = receivedAt - (sentAt -
originalTimestamp)``. A corrected timestamp still later than ``receivedAt`` plus the
tolerance is clamped to ``receivedAt`` and flagged (rule ``timestamp_in_future``).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import orjson

from passerelle.collect.plan import Plan

TYPES = frozenset({"track", "identify", "page", "screen", "group", "alias"})
IDS = ("userId", "anonymousId", "previousId", "groupId")
OBJECTS = ("properties", "traits", "context", "integrations")
KNOWN = frozenset({"type", "messageId", "event", "name", "category", "timestamp",
                   "originalTimestamp", "sentAt", "receivedAt", "writeKey", *IDS, *OBJECTS})
MAX_ID = 1024  # characters of an identifier


class EventError(ValueError):
    """An event the spec forbids; ``code`` is stable (clients and tests match on it)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def epoch_ms(value: object, field: str) -> int:
    """Milliseconds since 1970 of an ISO-8601 string (naive means UTC)."""
    if not isinstance(value, str):
        raise EventError("invalid_timestamp", f"{field} must be an ISO-8601 string")
    try:
        ts = datetime.fromisoformat(value)
    except ValueError:
        raise EventError("invalid_timestamp", f"{field} is not an ISO-8601 timestamp: "
                         f"{value[:40]!r}") from None
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return int(ts.timestamp() * 1000)


def _identifier(event: dict, key: str) -> str | None:
    value = event.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise EventError("invalid_type", f"{key} must be a string")
    text = value if isinstance(value, str) else str(value)
    if len(text) > MAX_ID:
        raise EventError("invalid_type", f"{key} is longer than {MAX_ID} characters")
    return text


class Preparer:
    """Checks events against the spec (and a tracking plan) for one source."""

    def __init__(self, plan: Plan | None = None, future_tolerance: float = 300.0) -> None:
        self.plan = plan
        self.tolerance_ms = int(future_tolerance * 1000)

    def prepare(self, event: object, kind: str | None, received: tuple[datetime, int],
                batch_sent_at: object = None) -> tuple[str, bytes]:
        """Return ``(messageId, JSON line)`` or raise :class:`EventError`.

        ``kind`` is the type the endpoint implies (``/v1/track``), None for ``/v1/batch``;
        ``received`` is the request's arrival (datetime, epoch milliseconds). Times go to the
        spool as epoch milliseconds; the loader formats them as ISO-8601 in bulk.
        """
        if not isinstance(event, dict):
            raise EventError("invalid_event", "an event must be a JSON object")
        etype = event.get("type", kind)
        if kind is not None and etype != kind:
            raise EventError("invalid_type", f"type {etype!r} sent to /v1/{kind}")
        if etype not in TYPES:
            raise EventError("invalid_type", f"type must be one of {', '.join(sorted(TYPES))}")
        ids = {key: _identifier(event, key) for key in IDS}
        if ids["userId"] is None and ids["anonymousId"] is None:
            raise EventError("missing_id", "userId or anonymousId is required")
        if etype == "alias" and (ids["previousId"] is None or ids["userId"] is None):
            raise EventError("missing_id", "alias needs previousId and userId")
        if etype == "group" and ids["groupId"] is None:
            raise EventError("missing_id", "group needs groupId")
        name = event.get("event")
        if etype == "track" and (not isinstance(name, str) or not name.strip()):
            raise EventError("missing_event", "track needs an event name (a string)")
        for key in OBJECTS:
            value = event.get(key)
            if value is not None and not isinstance(value, dict):
                raise EventError("invalid_type", f"{key} must be a JSON object")
        for key in ("name", "category"):
            value = event.get(key)
            if value is not None and not isinstance(value, str):
                raise EventError("invalid_type", f"{key} must be a string")

        violations: list[dict] = []
        received_ms = received[1]
        sent_value = event.get("sentAt", batch_sent_at)
        original = event.get("timestamp", event.get("originalTimestamp"))
        if original is None:
            timestamp = received_ms
        else:
            timestamp = epoch_ms(original, "timestamp")
            if sent_value is not None:
                timestamp = received_ms - (epoch_ms(sent_value, "sentAt") - timestamp)
        if timestamp - received_ms > self.tolerance_ms:
            violations.append({"rule": "timestamp_in_future", "field": "timestamp",
                               "message": f"{original} is in the future; set to receivedAt"})
            timestamp = received_ms
        if self.plan is not None and etype == "track":
            violations.extend(self.plan.check(name, event.get("properties") or {}))

        message_id = event.get("messageId")
        if message_id is None or message_id == "":
            message_id = str(uuid.uuid4())
        elif isinstance(message_id, bool) or not isinstance(message_id, str | int):
            raise EventError("invalid_type", "messageId must be a string")
        message_id = str(message_id)[:MAX_ID]

        out = {key: event.get(key) for key in ("event", "name", "category", *OBJECTS)}
        out.update(ids)
        out.update(type=etype, messageId=message_id, timestamp=timestamp,
                   originalTimestamp=original if isinstance(original, str) else None,
                   sentAt=sent_value if isinstance(sent_value, str) else None,
                   receivedAt=received_ms)
        extra = event.keys() - KNOWN
        if extra:
            out["_extra"] = {k: event[k] for k in extra}
        if violations:
            out["_violations"] = violations
        return message_id, orjson.dumps(out)


def arrival() -> tuple[datetime, int]:
    """Now, as the datetime and the epoch milliseconds :meth:`Preparer.prepare` wants."""
    now = datetime.now(UTC)
    return now, int(now.timestamp() * 1000)
