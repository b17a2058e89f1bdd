"""One Segment-Spec call, checked and made ready for the spool.

The hot path of the collector: every accepted event goes through :meth:`Preparer.prepare`
once, so it does only what must happen before the acknowledgement (reject what the spec
forbids, fix the clock skew, give a ``messageId``, check the tracking plan) with plain checks
on the dict ``orjson`` parsed. It does not rebuild the event: the spool line wraps it as sent,
and flattening into warehouse columns happens later, in bulk, in the loader
(:mod:`passerelle.collect.loader`).

A spool line is one JSON object: ``m`` messageId, ``t`` corrected timestamp and ``r``
receivedAt (epoch milliseconds), ``o`` originalTimestamp and ``s`` sentAt (as sent, or null),
``x`` the unknown top-level keys (only when there are), ``v`` the violations (only when
there are) and ``e`` the event itself (with ``type`` set and numeric ids made text).

Clock skew (as the Segment spec defines it): a device whose clock is wrong sends
``timestamp`` and ``sentAt`` with the same error, so ``timestamp = receivedAt - (sentAt -
originalTimestamp)``. A corrected timestamp still later than ``receivedAt`` plus the
tolerance is clamped to ``receivedAt`` and flagged (rule ``timestamp_in_future``).
"""

from __future__ import annotations

import time
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
_LINE = orjson.OPT_APPEND_NEWLINE
_fromiso = datetime.fromisoformat


class EventError(ValueError):
    """An event the spec forbids; ``code`` is stable (clients and tests match on it)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def epoch_ms(value: object, field: str) -> int:
    """Milliseconds since 1970 of an ISO-8601 string (naive means UTC)."""
    if value.__class__ is not str:
        raise EventError("invalid_timestamp", f"{field} must be an ISO-8601 string")
    try:
        ts = datetime.fromisoformat(value)
    except ValueError:
        raise EventError("invalid_timestamp", f"{field} is not an ISO-8601 timestamp: "
                         f"{value[:40]!r}") from None
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return int(ts.timestamp() * 1000)


def _identifier(value: object, key: str) -> str | None:
    """The text of an identifier that is not a non-empty string (the rare path)."""
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise EventError("invalid_type", f"{key} must be a string")
    text = value if isinstance(value, str) else str(value)
    if len(text) > MAX_ID:
        raise EventError("invalid_type", f"{key} is longer than {MAX_ID} characters")
    return text


def _normalise_id(event: dict, key: str) -> str | None:
    """Check one identifier; numbers become text in the event itself (the loader reads it)."""
    value = event.get(key)
    if value.__class__ is str and value and len(value) <= MAX_ID:
        return value
    if value is None:
        return None
    text = _identifier(value, key)
    event[key] = text
    return text


class Preparer:
    """Checks events against the spec (and a tracking plan) for one source."""

    def __init__(self, plan: Plan | None = None, future_tolerance: float = 300.0) -> None:
        self.plan = plan
        self.tolerance_ms = int(future_tolerance * 1000)

    def prepare(self, event: object, kind: str | None, received_ms: int,
                batch_sent: object = None, batch_sent_ms: int | None = None
                ) -> tuple[str, bytes]:
        """Return ``(messageId, spool line)`` or raise :class:`EventError`.

        ``kind`` is the type the endpoint implies (``/v1/track``), None for ``/v1/batch``;
        ``received_ms`` is the request's arrival (epoch milliseconds); ``batch_sent`` the
        batch's ``sentAt`` and ``batch_sent_ms`` its parsed value (parsed once a request).
        The event dict may be modified (it is the request's own parse).
        """
        if event.__class__ is not dict:
            raise EventError("invalid_event", "an event must be a JSON object")
        get = event.get
        etype = get("type")
        if etype is None:
            if kind is None:
                raise EventError("invalid_type", "type must be one of "
                                 f"{', '.join(sorted(TYPES))}")
            etype = event["type"] = kind
        elif kind is not None and etype != kind:
            raise EventError("invalid_type", f"type {str(etype)[:40]!r} sent to /v1/{kind}")
        elif etype.__class__ is not str or etype not in TYPES:
            raise EventError("invalid_type", f"type must be one of {', '.join(sorted(TYPES))}")

        # identifiers: the common case (a short non-empty string) costs one test each
        user = get("userId")
        if user.__class__ is not str or not user or len(user) > MAX_ID:
            user = _normalise_id(event, "userId")
        anonymous = get("anonymousId")
        if anonymous.__class__ is not str or not anonymous or len(anonymous) > MAX_ID:
            anonymous = _normalise_id(event, "anonymousId")
        if user is None and anonymous is None:
            raise EventError("missing_id", "userId or anonymousId is required")
        previous = get("previousId")
        if previous is not None:
            previous = _normalise_id(event, "previousId")
        group = get("groupId")
        if group is not None:
            group = _normalise_id(event, "groupId")
        if etype == "alias" and (previous is None or user is None):
            raise EventError("missing_id", "alias needs previousId and userId")
        if etype == "group" and group is None:
            raise EventError("missing_id", "group needs groupId")
        name = get("event")
        if name is not None and name.__class__ is not str:
            raise EventError("invalid_type", "event must be a string")
        if etype == "track" and (not name or name.isspace()):
            raise EventError("missing_event", "track needs an event name (a string)")
        for key in OBJECTS:
            value = get(key)
            if value is not None and value.__class__ is not dict:
                raise EventError("invalid_type", f"{key} must be a JSON object")
        for key in ("name", "category"):
            value = get(key)
            if value is not None and value.__class__ is not str:
                raise EventError("invalid_type", f"{key} must be a string")

        violations: list[dict] | None = None
        original = event["timestamp"] if "timestamp" in event else get("originalTimestamp")
        if original is None:
            sent = get("sentAt", batch_sent)
            timestamp = received_ms
        else:
            try:  # the common case: an ISO-8601 string with its offset
                ts = _fromiso(original)
                timestamp = (int(ts.timestamp() * 1000) if ts.tzinfo is not None
                             else epoch_ms(original, "timestamp"))
            except (TypeError, ValueError):
                timestamp = epoch_ms(original, "timestamp")  # raises the right error
            if "sentAt" in event:
                sent = event["sentAt"]
                if sent is not None:
                    timestamp = received_ms - (epoch_ms(sent, "sentAt") - timestamp)
            else:
                sent = batch_sent
                if sent is not None:
                    sent_ms = batch_sent_ms if batch_sent_ms is not None else epoch_ms(
                        sent, "sentAt")
                    timestamp = received_ms - (sent_ms - timestamp)
        if timestamp - received_ms > self.tolerance_ms:
            violations = [{"rule": "timestamp_in_future", "field": "timestamp",
                           "message": f"{original} is in the future; set to receivedAt"}]
            timestamp = received_ms
        if self.plan is not None and etype == "track":
            found = self.plan.check(name, get("properties") or {})
            if found:
                violations = (violations or []) + found

        message_id = get("messageId")
        if message_id.__class__ is not str or not message_id:
            if message_id is None or message_id == "":
                message_id = str(uuid.uuid4())
            elif isinstance(message_id, bool) or not isinstance(message_id, str | int):
                raise EventError("invalid_type", "messageId must be a string")
            else:
                message_id = str(message_id)
        if len(message_id) > MAX_ID:
            message_id = message_id[:MAX_ID]

        if "writeKey" in event:  # a credential: not kept in the spool
            del event["writeKey"]
        line = {"m": message_id, "t": timestamp, "r": received_ms,
                "o": original if original.__class__ is str else None,
                "s": sent if sent.__class__ is str else None, "e": event}
        if not KNOWN.issuperset(event):
            line["x"] = {k: event[k] for k in event.keys() - KNOWN}
        if violations:
            line["v"] = violations
        return message_id, orjson.dumps(line, option=_LINE)


def received_ms() -> int:
    """Now, in epoch milliseconds (a request's ``receivedAt``)."""
    return time.time_ns() // 1_000_000
