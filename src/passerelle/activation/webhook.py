"""Sending one batch to a webhook: signature, retries with backoff and jitter.

Signature: ``X-Passerelle-Signature: sha256=<hex>``, the HMAC-SHA256 with the destination's
secret of ``<timestamp>.<body>``, where ``<timestamp>`` (Unix seconds) is also sent as
``X-Passerelle-Timestamp``. Signing the timestamp with the body (as Stripe does) means a
captured request cannot be replayed later with a fresh timestamp: receivers reject a
timestamp older than a few minutes (:func:`verify` does both checks).

``Idempotency-Key`` carries the batch id: a batch may be delivered more than once
(at-least-once: the answer can be lost after the receiver processed it), always with the
same key and the same body, so the receiver can ignore a repeat.

Retried: timeouts, connection errors, HTTP 5xx, 408 and 429 (``Retry-After`` honoured up to
the cap). Not retried: other 4xx (the request itself is wrong; sending it again cannot help).
"""

from __future__ import annotations

import hashlib
import hmac
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import httpx

from passerelle.project.destinations_models import WebhookDestination
from passerelle.runlog import utcnow

SIGNATURE_HEADER = "X-Passerelle-Signature"
TIMESTAMP_HEADER = "X-Passerelle-Timestamp"
IDEMPOTENCY_HEADER = "Idempotency-Key"
DELIVERY_HEADER = "X-Passerelle-Delivery"
RETRIED_STATUS = frozenset({408, 429})


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature header value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body,
                   hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def verify(secret: str, body: bytes, signature: str, timestamp: str,
           tolerance_seconds: int = 300, now: float | None = None) -> bool:
    """What a receiver does: the signature matches and the timestamp is recent."""
    try:
        age = abs((time.time() if now is None else now) - int(timestamp))
    except ValueError:
        return False
    expected = sign(secret, timestamp, body)
    return age <= tolerance_seconds and hmac.compare_digest(expected, signature)


@dataclass
class Attempts:
    """How sending one batch went."""

    ok: bool
    attempts: int
    first_at: datetime
    last_at: datetime
    status_code: int | None = None
    error: str = ""


def backoff(attempt: int, destination: WebhookDestination,
            rng: Callable[[], float] = random.random) -> float:
    """Delay before try ``attempt + 1``: exponential, capped, with "equal jitter" (half fixed,
    half random) so many senders retrying together spread out."""
    ceiling = min(destination.max_backoff_seconds,
                  destination.backoff_seconds * 2 ** (attempt - 1))
    return ceiling / 2 + rng() * ceiling / 2


def post_batch(client: httpx.Client, destination: WebhookDestination, body: bytes,
               batch_id: str, delivery_id: str, sleep: Callable[[float], None] = time.sleep,
               ) -> Attempts:
    """POST ``body`` until it is accepted (2xx), refused (4xx) or the attempts run out."""
    secret = destination.secret.get_secret_value()
    first = utcnow()
    code: int | None = None
    error = ""
    for attempt in range(1, destination.max_attempts + 1):
        timestamp = str(int(time.time()))
        headers = {"Content-Type": "application/json", TIMESTAMP_HEADER: timestamp,
                   SIGNATURE_HEADER: sign(secret, timestamp, body),
                   IDEMPOTENCY_HEADER: batch_id, DELIVERY_HEADER: delivery_id,
                   "User-Agent": "passerelle-activation"}
        retry_after: float | None = None
        try:
            response = client.post(destination.url, content=body, headers=headers,
                                   timeout=destination.timeout_seconds)
        except httpx.TimeoutException:
            code, error = None, f"timed out after {destination.timeout_seconds:g} s"
            retryable = True
        except httpx.TransportError as exc:
            code, error = None, f"connection error: {exc.__class__.__name__}: {exc}"
            retryable = True
        else:
            code = response.status_code
            if 200 <= code < 300:
                return Attempts(True, attempt, first, utcnow(), code)
            error = f"HTTP {code}: {response.text[:300].strip()}"
            retryable = code >= 500 or code in RETRIED_STATUS
            retry_after = _retry_after(response)
        if not retryable or attempt == destination.max_attempts:
            return Attempts(False, attempt, first, utcnow(), code, error)
        delay = backoff(attempt, destination)
        if retry_after is not None:
            delay = min(max(delay, retry_after), destination.max_backoff_seconds)
        sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None  # an HTTP date: fall back on our own backoff
