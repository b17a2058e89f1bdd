"""Webhook syncs against a real local HTTP server: signatures, diffs, retries, dead letters."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime

import pytest

from activation_helpers import SECRET, Receiver, build_audience, build_profiles
from passerelle.activation import (
    DestinationError,
    WebhookDestination,
    list_dead_letters,
    list_exports,
    parse_destination,
    retry_dead_letters,
    sign,
    sync_webhook,
    verify,
)
from passerelle.activation.webhook import backoff
from passerelle.engines.base import Engine

pytestmark = pytest.mark.filterwarnings("ignore:fetch_record_batch")
T0, T1 = datetime(2026, 11, 1, 8), datetime(2026, 11, 2, 8)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def _dest(url: str, **kw: object) -> WebhookDestination:
    options = {"type": "webhook", "url": url, "secret": SECRET, "backoff_seconds": 0.01,
               "max_backoff_seconds": 0.02, "max_attempts": 3, "timeout_seconds": 0.3}
    return parse_destination(options | kw)


def _state(engine: Engine) -> list[tuple[str, str]]:
    t = engine.table("activation_sync_state")
    rows = engine.to_arrow(t.order_by("person_id")).to_pylist()
    return [(r["person_id"], r["email"]) for r in rows]


def _warehouse(engine: Engine) -> None:
    build_profiles(engine)
    build_audience(engine, "vip", ["p1", "p2", "p3"], ["p4"], "run1", T0)


def test_signed_batches_then_only_the_diff(engine: Engine, receiver: Receiver) -> None:
    _warehouse(engine)
    dest = _dest(receiver.url, attributes={"city": "city"})
    first = sync_webhook(engine, "vip", dest, name="crm_hook", user="bob")
    assert (first.status, first.people) == ("delivered", 3)
    [req] = receiver.requests
    assert req["valid"] and req["key"] == f"{first.export_id}-1"
    body = req["json"]
    assert [m["person_id"] for m in body["entered"]] == ["p1", "p2", "p3"]
    assert body["entered"][0] == {"person_id": "p1", "email": "eloise@example.fr",
                                  "phone": "+33612345678", "first_name": "Éloïse",
                                  "last_name": "Dupont", "city": "Paris"}
    assert body["exited"] == [] and body["updated"] == []
    assert "p4" not in json.dumps(body)  # holdout never sent
    assert _state(engine) == [("p1", "eloise@example.fr"), ("p2", "jean@example.fr"),
                              ("p3", "zoe@example.fr")]

    # new build: p2 exits, p6 enters, p1 changed e-mail, p3 unchanged
    build_audience(engine, "vip", ["p1", "p3", "p6"], ["p4"], "run2", T1,
                   emails={"p1": "eloise.d@example.fr"})
    second = sync_webhook(engine, "vip", dest, name="crm_hook")
    body = receiver.requests[1]["json"]
    assert [m["person_id"] for m in body["entered"]] == ["p6"]
    assert [m["email"] for m in body["updated"]] == ["eloise.d@example.fr"]
    assert body["exited"] == [{"person_id": "p2", "email": "jean@example.fr",
                               "phone": "+33698765432"}]
    assert (second.people, second.detail) == (3, "entered 1, updated 1, exited 1; "
                                                 "1 of 1 batches delivered")
    assert _state(engine) == [("p1", "eloise.d@example.fr"), ("p3", "zoe@example.fr"),
                              ("p6", "paul@example.fr")]

    third = sync_webhook(engine, "vip", dest, name="crm_hook")
    assert len(receiver.requests) == 2 and (third.status, third.people) == ("delivered", 0)
    log = {e["export_id"]: e for e in list_exports(engine)}
    assert log[first.export_id]["user_name"] == "bob"
    members = engine.table("activation_log_members")
    second_people = members.filter(members.export_id == second.export_id).person_id
    assert sorted(engine.to_arrow(second_people).to_pylist()) == ["p1", "p2", "p6"]


def test_an_empty_audience_does_not_wipe_the_receiver(engine: Engine,
                                                     receiver: Receiver) -> None:
    """A segment that broke (nobody in the new build) must not remove everyone the receiver
    holds: refused, nothing sent, state kept; sent only when asked to."""
    _warehouse(engine)
    dest = _dest(receiver.url)
    sync_webhook(engine, "vip", dest, name="crm_hook")
    build_audience(engine, "vip", [], [], "run2", T1)
    with pytest.raises(DestinationError, match="audience 'vip' is empty"):
        sync_webhook(engine, "vip", dest, name="crm_hook")
    assert len(receiver.requests) == 1 and len(_state(engine)) == 3
    emptied = sync_webhook(engine, "vip", dest, name="crm_hook", allow_empty=True)
    assert [m["person_id"] for m in receiver.requests[1]["json"]["exited"]] == ["p1", "p2", "p3"]
    assert (emptied.status, _state(engine)) == ("delivered", [])


def test_retries_on_500_and_timeout_then_success(duckdb_engine: Engine,
                                                  receiver: Receiver) -> None:
    _warehouse(duckdb_engine)
    receiver.script = [500, "timeout", 200]
    result = sync_webhook(duckdb_engine, "vip", _dest(receiver.url))
    assert [r["action"] for r in receiver.requests] == [500, "timeout", 200]
    assert len({r["key"] for r in receiver.requests}) == 1  # same idempotency key each try
    assert len({r["body"] for r in receiver.requests}) == 1
    assert result.status == "delivered" and result.dead_letters == []
    assert len(_state(duckdb_engine)) == 3


def test_persistent_500_goes_to_dead_letter_and_retry_succeeds(engine: Engine,
                                                                receiver: Receiver) -> None:
    _warehouse(engine)
    receiver.default = 500
    dest = _dest(receiver.url)
    result = sync_webhook(engine, "vip", dest, name="crm_hook")
    assert len(receiver.requests) == 3  # max_attempts
    assert (result.status, result.people) == ("failed", 0)
    assert _state(engine) == []  # never recorded as sent
    [dead] = list_dead_letters(engine)
    assert dead["dead_letter_id"] == result.dead_letters[0]
    assert (dead["attempts"], dead["status"], dead["status_code"], dead["people"]) == (
        3, "open", 500, 3)
    assert dead["error"].startswith("HTTP 500") and dead["export_id"] == result.export_id
    assert dead["first_attempt_at"] <= dead["last_attempt_at"]
    [log] = list_exports(engine)
    assert (log["status"], log["people"]) == ("failed", 0)

    receiver.default = 200
    [retry] = retry_dead_letters(engine, {"crm_hook": dest}, user="it")
    assert (retry.status, retry.people) == ("delivered", 3)
    resent = receiver.requests[-1]
    assert resent["valid"] and resent["body"] == receiver.requests[0]["body"]
    assert resent["key"] == receiver.requests[0]["key"]
    assert [p for p, _ in _state(engine)] == ["p1", "p2", "p3"]
    assert list_dead_letters(engine) == []
    [closed] = list_dead_letters(engine, status="delivered")
    assert closed["attempts"] == 4 and closed["resolved_by"] == retry.export_id
    # the next sync has nothing left to send
    assert sync_webhook(engine, "vip", dest, name="crm_hook").people == 0


def test_partial_sync_advances_only_delivered_batches(duckdb_engine: Engine,
                                                      receiver: Receiver) -> None:
    build_profiles(duckdb_engine)
    build_audience(duckdb_engine, "vip", ["p1", "p2", "p3", "p5", "p6"], [], "r1", T0)
    receiver.script = [200, 503, 503, 503]
    result = sync_webhook(duckdb_engine, "vip", _dest(receiver.url, batch_size=2), name="h")
    assert (result.status, result.people) == ("partial", 2)
    assert [p for p, _ in _state(duckdb_engine)] == ["p1", "p2"]
    dead = list_dead_letters(duckdb_engine)
    assert [(d["batch_no"], d["attempts"], d["people"]) for d in dead] == [(2, 3, 2), (3, 0, 1)]
    assert dead[1]["error"] == "not sent: batch 2 failed before it"
    assert result.detail.endswith("1 of 3 batches delivered; 2 dead-lettered")
    # a new sync covers the open dead letters: they are superseded, not sent twice
    again = sync_webhook(duckdb_engine, "vip", _dest(receiver.url, batch_size=10), name="h")
    assert again.people == 3 and receiver.requests[-1]["json"]["entered"][0]["person_id"] == "p3"
    assert list_dead_letters(duckdb_engine) == []
    assert len(list_dead_letters(duckdb_engine, status="superseded")) == 2


def test_400_is_not_retried(duckdb_engine: Engine, receiver: Receiver) -> None:
    _warehouse(duckdb_engine)
    receiver.default = 400
    result = sync_webhook(duckdb_engine, "vip", _dest(receiver.url))
    assert len(receiver.requests) == 1 and result.status == "failed"
    [dead] = list_dead_letters(duckdb_engine)
    assert (dead["attempts"], dead["status_code"]) == (1, 400)


def test_timeouts_and_refused_connections_end_in_dead_letters(duckdb_engine: Engine,
                                                               receiver: Receiver) -> None:
    _warehouse(duckdb_engine)
    receiver.default = "timeout"
    result = sync_webhook(duckdb_engine, "vip", _dest(receiver.url, max_attempts=2))
    [dead] = list_dead_letters(duckdb_engine)
    assert dead["error"] == "timed out after 0.3 s" and dead["attempts"] == 2
    assert result.status == "failed" and _state(duckdb_engine) == []
    url = receiver.url
    receiver.close()
    [retry] = retry_dead_letters(duckdb_engine, {"webhook": _dest(url)})
    assert retry.status == "failed" and "connection error" in retry.detail
    [still] = list_dead_letters(duckdb_engine)
    assert still["attempts"] == 2 + 3 and "connection error" in still["error"]


def test_signature_and_backoff() -> None:
    body = b'{"a":1}'
    signature = sign(SECRET, "1700000000", body)
    assert signature == "sha256=" + __import__("hmac").new(
        SECRET.encode(), b"1700000000." + body, "sha256").hexdigest()
    assert verify(SECRET, body, signature, "1700000000", now=1700000100)
    assert not verify(SECRET, body, signature, "1700000000", now=1700000400)  # replay
    assert not verify(SECRET, body + b" ", signature, "1700000000", now=1700000000)
    dest = _dest("http://x", backoff_seconds=1, max_backoff_seconds=5)
    assert [backoff(n, dest, rng=lambda: 0.0) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 2.5]
    assert [backoff(n, dest, rng=lambda: 1.0) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 5.0]
