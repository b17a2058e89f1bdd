"""What reaches ``raw_<source>``: the spool line wraps the event as sent and the loader
flattens it (numbers as ids, unknown keys, batch-level context and sentAt, no write key);
a quiet collector loads an event while it keeps running; the tracking plan's fast check
never passes an event that JSON Schema refuses."""

from __future__ import annotations

import itertools
import json
import time
from datetime import UTC, datetime, timedelta

import duckdb
import httpx
import jsonschema
import orjson
import pytest

from collect_helpers import KEY, SLOW, auth, running, wait_loaded, write_project
from passerelle.collect.plan import fast_check


def _raw(project) -> dict[str, dict]:
    deadline = time.monotonic() + SLOW
    while True:  # the loader holds the warehouse during a round, then closes it
        try:
            con = duckdb.connect(str(project / "warehouse.duckdb"), read_only=True)
            break
        except duckdb.IOException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    try:
        cur = con.execute("SELECT * FROM raw_web_tracking")
        names = [d[0] for d in cur.description]
        return {r[0]: dict(zip(names, r, strict=True)) for r in cur.fetchall()}
    finally:
        con.close()


def test_raw_columns_from_the_spool_line(tmp_path):
    project = write_project(tmp_path / "proj")
    sent = datetime.now(UTC) - timedelta(seconds=5)  # the device clock runs 5 s late
    batch = {
        "writeKey": KEY,
        "sentAt": sent.isoformat(),
        "context": {"campaign": {"medium": "cpc", "name": "summer"}},
        "batch": [
            {"type": "track", "event": "Clicked", "userId": 42, "anonymousId": "",
             "messageId": "n-1", "timestamp": (sent - timedelta(seconds=60)).isoformat(),
             "channel": "web", "version": 2, "properties": {"x": [1, {"y": None}]}},
            {"type": "identify", "anonymousId": "a-2", "userId": "u-2", "messageId": 7,
             "traits": {"email": "Ann@Example.fr"}, "context": {"ip": "1.2.3.4"}},
            {"type": "alias", "userId": "u-2", "previousId": 99, "messageId": "al-1"},
            {"type": "identify", "userId": "u-3", "event": {"not": "a string"}},
        ],
    }
    with running(project) as server:
        r = httpx.post(server.url + "/v1/batch", content=orjson.dumps(batch),
                       headers={"Content-Type": "application/json"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["accepted"] == 3
        assert [(x["index"], x["code"]) for x in body["rejected"]] == [(3, "invalid_type")]
        wait_loaded(project, 3)  # loaded while the collector keeps running
        raw = _raw(project)
    assert set(raw) == {"n-1", "7", "al-1"}
    one = raw["n-1"]
    assert one["userId"] == "42" and one["anonymousId"] is None
    assert one["channel"] == "cpc" and one["campaign"] == "summer"  # batch context merged
    assert json.loads(one["extra"]) == {"channel": "web", "version": 2}
    assert json.loads(one["properties"]) == {"x": [1, {"y": None}]}
    assert one["sentAt"] == batch["sentAt"]
    assert one["originalTimestamp"] == batch["batch"][0]["timestamp"]
    # clock skew: timestamp = receivedAt - (sentAt - originalTimestamp) = receivedAt - 60 s
    received = datetime.fromisoformat(one["receivedAt"])
    assert abs((received - datetime.fromisoformat(one["timestamp"])).total_seconds() - 60) < 1
    ident = raw["7"]
    assert ident["email"] == "Ann@Example.fr" and ident["extra"] is None
    assert json.loads(ident["context"]) == {"ip": "1.2.3.4"}  # its own context wins
    assert raw["al-1"]["previousId"] == "99"
    assert all(KEY not in json.dumps(row, default=str) for row in raw.values())


def test_single_event_queryable_while_running(tmp_path):
    project = write_project(tmp_path / "proj")
    with running(project) as server:
        r = httpx.post(server.url + "/v1/page", headers=auth(),
                       json={"anonymousId": "a", "name": "Home", "messageId": "p-1",
                             "writeKey": KEY})
        assert r.status_code == 200
        wait_loaded(project, 1)
        assert _raw(project)["p-1"]["name"] == "Home"
        deadline = time.monotonic() + SLOW  # the writer notices the released segment soon after
        while (health := httpx.get(server.url + "/v1/health").json())["backlog"][
                "web_tracking"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert health["loader_error"] is None and health["backlog"] == {"web_tracking": 0}


SCHEMAS = [
    {"type": "object", "required": ["order_id", "revenue"],
     "properties": {"order_id": {"type": "string", "minLength": 2},
                    "revenue": {"type": "number", "minimum": 0},
                    "currency": {"enum": ["EUR", "USD", None]}}},
    {"type": "object", "additionalProperties": False,
     "properties": {"n": {"type": ["integer", "null"], "exclusiveMaximum": 5},
                    "tags": {"type": "array", "items": {"type": "string", "maxLength": 3},
                             "minItems": 1, "maxItems": 2}}},
    {"type": "object", "properties": {"c": {"const": "x"}, "ok": {"type": "boolean"}},
     "additionalProperties": {"type": "number", "maximum": 1}},
]
VALUES = [None, True, False, 0, 1, 1.0, 1.5, -1, 5, 6, "", "x", "EUR", "abcd", "ab", [], ["a"],
          ["a", "b", "c"], ["abcd"], [1], {}, {"n": 1}]
KEYS = ["order_id", "revenue", "currency", "n", "tags", "c", "ok", "z"]


@pytest.mark.parametrize("schema", SCHEMAS)
def test_fast_plan_check_agrees_with_json_schema(schema):
    validator = jsonschema.Draft202012Validator(schema)
    fast = fast_check(schema)
    assert fast is not None
    vouched = 0
    for keys in itertools.combinations(KEYS, 2):
        for a, b in itertools.product(VALUES, repeat=2):
            instance = {keys[0]: a, keys[1]: b}
            if fast(instance):
                vouched += 1
                assert validator.is_valid(instance), instance
            elif validator.is_valid(instance):
                # allowed (jsonschema then decides) but only for number/enum corner cases
                assert any(isinstance(v, float) or v is True or v is False
                           for v in instance.values()), instance
    assert vouched  # the fast path does serve valid events


def test_fast_plan_check_declines_keywords_it_does_not_cover():
    assert fast_check({"type": "object", "properties": {"a": {"pattern": "^x"}}}) is None
    assert fast_check({"$ref": "#/$defs/a"}) is None
    assert fast_check({"properties": {"a": {"enum": [1, 2]}}}) is None


@pytest.mark.postgres
def test_duckdb_and_arrow_paths_load_the_same_rows(tmp_path, duckdb_engine):
    """DuckDB reads the unit itself; PostgreSQL gets it through Arrow: same raw rows."""
    from conftest import postgres_engine
    from passerelle.collect.events import Preparer, received_ms
    from passerelle.collect.loader import _load_unit, ensure_tables
    from passerelle.collect.spool import Unit
    from passerelle.core import open_project

    project = open_project(write_project(tmp_path / "proj"))
    source = project.sources["web_tracking"]
    preparer = Preparer()
    events = [
        {"type": "track", "event": "E", "userId": f"u{i}", "anonymousId": "a",
         "properties": {"i": i}, "context": {"campaign": {"medium": "m"}}, "k": i}
        for i in range(50)
    ] + [{"type": "alias", "userId": "u", "previousId": "p"},
         {"type": "page", "anonymousId": "a", "timestamp": "2099-01-01T00:00:00Z"}]
    segment = tmp_path / "segment.jsonl"
    segment.write_bytes(b"".join(preparer.prepare(e, None, received_ms())[1] for e in events)
                        + b'{"m": "torn')
    unit = Unit(name="spool:web_tracking/s", path=segment, events=-1, done=lambda: None)
    pg = postgres_engine()
    try:
        tables = {}
        for engine in (duckdb_engine, pg):
            ensure_tables(engine)
            assert _load_unit(engine, source, unit, "test") == len(events)
            raw = engine.table("raw_web_tracking").drop("_load_id", "_loaded_at")
            tables[engine.name] = sorted(
                engine.to_arrow(raw).to_pylist(), key=lambda r: r["_source_row"])
            for name in ("event_violations", "_identity_alias_log"):
                rows = engine.to_arrow(engine.table(name).drop("_load_id")).to_pylist()
                tables[engine.name, name] = sorted(rows, key=repr)
        assert tables["duckdb"] == tables["postgres"]
        assert [r["_source_row"] for r in tables["duckdb"]] == list(range(1, len(events) + 1))
        for name in ("event_violations", "_identity_alias_log"):
            assert tables["duckdb", name] == tables["postgres", name]
            assert tables["duckdb", name]
    finally:
        pg.drop_schema()
        pg.close()
