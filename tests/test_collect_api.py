"""Bad input against a real collector process: status codes, JSON error bodies, and the
valid events of the same batch kept. Also the tracking plan's violations."""

from __future__ import annotations

import asyncio
import gzip
import random
import time

import httpx
import orjson
import pytest

from collect_helpers import KEY, SLOW, Server, auth, running, wait_loaded, write_project
from passerelle.collect import list_violations
from passerelle.core import open_project

PLAN = {
    "unplanned": "flag",
    "events": {
        "Order Completed": {
            "owner": "e-commerce",
            "properties": {"type": "object", "required": ["order_id", "revenue"],
                           "properties": {"order_id": {"type": "string"},
                                          "revenue": {"type": "number", "minimum": 0}}},
        },
        "Product Viewed": {"properties": {"type": "object"}},
    },
}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    project = write_project(tmp_path_factory.mktemp("api") / "proj", plan=PLAN)
    srv = Server(project).start()
    yield srv
    srv.stop()


def post(server, path, body, headers=None, raw=False):
    data = body if raw else orjson.dumps(body)
    return httpx.post(server.url + path, content=data,
                      headers={"Content-Type": "application/json",
                               **(auth() if headers is None else headers)})


def error(response, status, code):
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False and body["code"] == code and body["message"]
    return body


def test_accepts_write_key_in_body_and_gzip(server):
    r = post(server, "/v1/track", {"writeKey": KEY, "userId": "u", "event": "Product Viewed"},
             headers={})
    assert r.status_code == 200 and r.json() == {"success": True}
    body = gzip.compress(orjson.dumps({"batch": [{"type": "page", "anonymousId": "a"}]}))
    r = post(server, "/v1/batch", body, raw=True, headers={**auth(), "Content-Encoding": "gzip"})
    assert r.status_code == 200 and r.json() == {"success": True, "accepted": 1}


def test_bad_write_key(server):
    error(post(server, "/v1/track", {"userId": "u", "event": "x"}, headers=auth("nope")), 401,
          "invalid_write_key")
    error(post(server, "/v1/track", {"userId": "u", "event": "x"}, headers={}), 401,
          "invalid_write_key")


def test_malformed_json_and_wrong_types(server):
    error(post(server, "/v1/track", b'{"userId": "u", "event": ', raw=True), 400, "invalid_json")
    error(post(server, "/v1/track", b"[1, 2]", raw=True), 400, "invalid_json")
    error(post(server, "/v1/batch", b"not gzip", raw=True,
               headers={**auth(), "Content-Encoding": "gzip"}), 400, "invalid_encoding")
    error(post(server, "/v1/track", {"userId": "u"}), 400, "missing_event")
    error(post(server, "/v1/track", {"userId": {"a": 1}, "event": "x"}), 400, "invalid_type")
    error(post(server, "/v1/track", {"userId": "u", "event": "x", "properties": [1]}), 400,
          "invalid_type")
    error(post(server, "/v1/track", {"userId": "u", "event": "x", "timestamp": "yesterday"}),
          400, "invalid_timestamp")
    error(post(server, "/v1/identify", {"type": "track", "userId": "u"}), 400, "invalid_type")
    error(post(server, "/v1/batch", {"batch": {"not": "a list"}}), 400, "invalid_batch")


def test_missing_ids(server):
    error(post(server, "/v1/identify", {"traits": {"email": "a@b.fr"}}), 400, "missing_id")
    error(post(server, "/v1/alias", {"userId": "u"}), 400, "missing_id")
    error(post(server, "/v1/group", {"userId": "u"}), 400, "missing_id")


def test_oversized_event_and_batch(server):
    big = "x" * (33 * 1024)
    error(post(server, "/v1/track", {"userId": "u", "event": "x", "properties": {"b": big}}),
          413, "request_too_large")
    huge = [{"type": "track", "userId": "u", "event": "x", "properties": {"b": "y" * 30000}}
            for _ in range(20)]
    error(post(server, "/v1/batch", {"batch": huge}), 413, "request_too_large")
    # gzip bomb: small on the wire, too large once decoded
    bomb = gzip.compress(orjson.dumps({"batch": [], "pad": "z" * 2_000_000}))
    error(post(server, "/v1/batch", bomb, raw=True, headers={**auth(), "Content-Encoding": "gzip"}),
          413, "request_too_large")


def test_batch_keeps_valid_events_and_lists_the_others(server):
    batch = [
        {"type": "track", "userId": "u", "event": "Product Viewed", "messageId": "ok-1"},
        {"type": "track", "event": "Product Viewed"},  # no id
        {"type": "track", "userId": "u", "event": "x", "properties": {"b": "y" * 33000}},
        {"type": "nonsense", "userId": "u"},
        {"type": "identify", "anonymousId": "anon-9", "userId": "u-9", "messageId": "ok-2"},
        {"type": "track", "userId": "u", "event": "Product Viewed", "messageId": "ok-1"},  # dup
    ]
    r = post(server, "/v1/batch", {"batch": batch})
    assert r.status_code == 200
    body = r.json()
    assert body["success"] is True and body["accepted"] == 3
    assert [(x["index"], x["code"]) for x in body["rejected"]] == [
        (1, "missing_id"), (2, "event_too_large"), (3, "invalid_type")]
    # the same ids again (a client retry): acknowledged, not written twice
    r = post(server, "/v1/batch", {"batch": [batch[0], batch[4]]})
    assert r.json() == {"success": True, "accepted": 2}
    # only invalid events: the whole request is refused
    body = error(post(server, "/v1/batch", {"batch": [batch[1], batch[3]]}), 400, "missing_id")
    assert len(body["rejected"]) == 2


def test_staged_once_with_violations_and_future_timestamps(server):
    calls = [
        {"userId": "u", "event": "Order Completed", "messageId": "oc-good",
         "properties": {"order_id": "O1", "revenue": 10}},
        {"userId": "u", "event": "Order Completed", "messageId": "oc-bad",
         "properties": {"revenue": "ten"}},
        {"userId": "u", "event": "Order Completed", "messageId": "oc-neg",
         "properties": {"order_id": "O2", "revenue": -1}},
        {"userId": "u", "event": "Mystery Clicked", "messageId": "unplanned"},
        # a device clock 10 years ahead, consistent sentAt: corrected, not flagged
        {"userId": "u", "event": "Product Viewed", "messageId": "skewed",
         "timestamp": "2035-06-01T10:00:00Z", "sentAt": "2035-06-01T10:00:30Z"},
        # a timestamp in the future with no sentAt: clamped to receivedAt and flagged
        {"userId": "u", "event": "Product Viewed", "messageId": "future",
         "timestamp": "2099-01-01T00:00:00Z"},
    ]
    for call in calls:
        assert post(server, "/v1/track", call).status_code == 200
    for _ in range(2):  # duplicates of the same messageId are staged once
        assert post(server, "/v1/track", calls[0]).status_code == 200
    server.stop()  # seals the spool; the loader's last round loads it
    wait_loaded(server.project, 0)
    with open_project(server.project) as proj:
        assert proj.run(source="web_tracking").errors == []
        engine = proj.engine
        rows = {r["message_id"]: r for r in engine.to_arrow(
            engine.table("stg_web_tracking")).to_pylist()}
        assert {"oc-good", "oc-bad", "oc-neg", "unplanned", "skewed", "future", "ok-1",
                "ok-2"} <= set(rows)
        assert list(engine.to_arrow(engine.table("stg_web_tracking").message_id.value_counts()
                                    .filter(lambda t: t.message_id_count > 1)).to_pylist()) == []
        received = rows["future"]["_loaded_at"]
        assert abs((rows["future"]["timestamp"] - received).total_seconds()) < 60
        assert abs((rows["skewed"]["timestamp"] - received).total_seconds()) < 90
        raw = engine.table("raw_web_tracking")
        flagged = engine.to_arrow(raw.filter(raw.violations.notnull()).messageId).to_pylist()
        assert set(flagged) == {"oc-bad", "oc-neg", "unplanned", "future"}
        grouped = [(v["event"], v["rule"], v["field"], v["events"])
                   for v in list_violations(engine, "web_tracking")]
        assert sorted(grouped) == sorted([
            ("Order Completed", "required", "order_id", 1),
            ("Order Completed", "type", "revenue", 1),
            ("Order Completed", "minimum", "revenue", 1),
            ("Mystery Clicked", "unplanned_event", None, 1),
            ("Product Viewed", "timestamp_in_future", "timestamp", 1),
        ])
    server.start()  # the module fixture stops it again


def test_garbage_at_high_rate_loses_no_valid_event(tmp_path):
    """A misbehaving client floods the collector with garbage over many connections while
    a well-behaved one sends valid events: every garbage request gets its 4xx with a JSON
    error body, the server keeps answering, and every valid event is loaded once."""
    project = write_project(tmp_path / "proj")
    rng = random.Random(7)
    garbage = [
        (b"\x00\xff" * rng.randint(1, 500), {}, 400),  # binary noise
        (b'{"userId": "u", "event": ', {}, 400),  # truncated JSON
        (b"[]", {}, 400),  # JSON, but not an object
        (orjson.dumps({"userId": "u", "event": "x"}), auth("stolen"), 401),  # wrong key
        (orjson.dumps({"event": "x"}), {}, 400),  # no id
        (b"z" * 40_000, {}, 413),  # over the event limit
        (b"garbage", {"Content-Encoding": "gzip"}, 400),  # not gzip
    ]

    async def flood(client: httpx.AsyncClient, n: int) -> list[tuple[int, int, dict]]:
        out = []
        for _ in range(n):
            body, headers, expected = rng.choice(garbage)
            r = await client.post("/v1/track", content=body,
                                  headers={"Content-Type": "application/json",
                                           **auth(), **headers})
            out.append((r.status_code, expected, r.json()))
        return out

    async def valid(client: httpx.AsyncClient, n: int) -> list[int]:
        statuses = []
        for i in range(n):
            r = await client.post("/v1/track", json={
                "userId": f"u{i}", "event": "Product Viewed", "messageId": f"valid-{i}"},
                headers=auth())
            statuses.append(r.status_code)
        return statuses

    async def main(url: str):
        limits = httpx.Limits(max_connections=40)
        async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
            floods = [flood(client, 100) for _ in range(30)]
            return await asyncio.gather(valid(client, 300), *floods)

    server = Server(project).start()
    try:
        valid_statuses, *flooded = asyncio.run(main(server.url))
    finally:
        server.stop()
    answers = [a for part in flooded for a in part]
    assert len(answers) == 3000
    wrong = [(got, expected) for got, expected, _ in answers if got != expected]
    assert wrong == []
    assert all(body["success"] is False and body["code"] and body["message"]
               for _, _, body in answers)
    assert valid_statuses == [200] * 300
    wait_loaded(project, 0)
    with open_project(project) as proj:
        raw = proj.engine.table("raw_web_tracking")
        ids = proj.engine.to_arrow(raw.messageId).to_pylist()
    assert sorted(ids) == sorted(f"valid-{i}" for i in range(300))


def test_backpressure_answers_503_until_the_loader_catches_up(tmp_path):
    """With the loader away, the spool's backlog grows to max_backlog; then every request
    gets 503 with Retry-After (memory stays bounded, nothing accepted is lost), and once a
    loader drains it the same requests are accepted again."""
    project = write_project(tmp_path / "proj", extra_connector={"max_backlog": 1000})

    def batch(start: int) -> dict:
        return {"batch": [{"type": "track", "userId": "u", "event": "Product Viewed",
                           "messageId": f"bp-{start + i}"} for i in range(100)]}

    accepted, refused = 0, None
    server = Server(project, loader=False).start()
    try:
        for n in range(40):
            r = post(server, "/v1/batch", batch(n * 100))
            if r.status_code == 503:
                refused = r
                break
            assert r.status_code == 200
            accepted += 100
            time.sleep(0.05)  # let the group commit count them in the backlog
    finally:
        server.stop()
    assert refused is not None, "no 503 after 4,000 events over a backlog of 1,000"
    assert 1000 <= accepted < 4000
    error(refused, 503, "backpressure")
    assert int(refused.headers["Retry-After"]) > 0
    with running(project) as server:  # a loader drains the spool
        wait_loaded(project, accepted)
        deadline = time.monotonic() + SLOW  # the writer notices the drained segments within
        while (status := post(server, "/v1/batch", batch(100_000)).status_code) == 503 \
                and time.monotonic() < deadline:  # a fraction of a second, as a client
            time.sleep(0.2)                       # honouring Retry-After would retry
        assert status == 200
    wait_loaded(project, 0)
    with open_project(project) as proj:
        assert proj.engine.count("raw_web_tracking") == accepted + 100
