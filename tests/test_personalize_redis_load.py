"""The Redis store as the warehouse writes it (commands and JSON built in SQL): the same
documents as the warehouse store serves, JSON text as Python writes it, identifiers in
buckets, and a refresh that dies leaving the old store served."""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal

import ibis
import orjson
import pyarrow as pa
import pytest
import redis

from passerelle.engines.base import Engine
from passerelle.engines.duckdb import DuckDBEngine
from passerelle.errors import PasserelleError
from passerelle.personalize import open_store
from passerelle.personalize import refresh_decision_store as refresh
from passerelle.personalize.profiles import ProfileReader
from passerelle.personalize.redis_load import bucket_width, json_object, send
from passerelle.personalize.redis_store import RedisPeople, RedisProfiles, client, load_redis
from passerelle.personalize.store import plain
from passerelle.personalize.tables import IDS
from personalize_helpers import (
    REDIS,
    make_project,
    redis_prefix,  # noqa: F401 - the fixture "prefix"
)
from segments_helpers import NOW


@pytest.fixture
def project(tmp_path):
    proj = make_project(tmp_path)
    yield proj
    proj.close()


def test_json_built_in_sql_reads_as_python_writes_it(tmp_path):
    engine = DuckDBEngine(tmp_path / "w.duckdb")
    texts = ['plain', 'quote " and \\ back', "line\nbreak\ttab\x01", "é ü 東京 🎉", ""]
    t = ibis.memtable(pa.table({
        "text": texts,
        "n": [1, -2, 3, None, 0],
        "x": [1.5, None, -0.25, 1e20, 3.0],
        "d": [date(2024, 1, 2), None, date(1999, 12, 31), date(2024, 1, 2), None],
        "at": [datetime(2024, 1, 2, 3, 4, 5), datetime(2024, 1, 2, 3, 4, 5, 120000), None,
               None, None],
        "ok": [True, False, None, True, False],
        "money": [Decimal("12.50"), None, Decimal("-3.00"), None, None],
    }, schema=pa.schema([("text", pa.string()), ("n", pa.int64()), ("x", pa.float64()),
                         ("d", pa.date32()), ("at", pa.timestamp("us")), ("ok", pa.bool_()),
                         ("money", pa.decimal128(10, 2))])))
    rows = engine.to_arrow(t).to_pylist()

    class Generic(DuckDBEngine):  # the escaping other engines use, run by DuckDB
        json_string = Engine.json_string

    for way in (engine, Generic.__new__(Generic)):
        way.__dict__.update(engine.__dict__)
        built = engine.to_arrow(t.select(doc=json_object(way, {c: t[c] for c in t.columns})))
        for text, row in zip(built["doc"].to_pylist(), rows, strict=True):
            assert orjson.loads(text) == json.loads(json.dumps({k: plain(v) for k, v in
                                                                row.items()}, default=str))


def test_bucket_width_keeps_buckets_small():
    assert bucket_width(10) == 1
    assert bucket_width(16 * 128) == 1
    assert bucket_width(16 * 128 + 1) == 2
    assert bucket_width(8_000_000) == 4  # 65,536 buckets of ~122


def test_redis_serves_what_the_warehouse_serves(project, prefix):
    refresh(project, now=NOW, redis_url=REDIS, redis_prefix=prefix)
    warehouse = open_store(project)
    r = client(REDIS)
    people, profiles = RedisPeople(r, prefix), RedisProfiles(r, prefix)
    reader = ProfileReader(project.engine, serving=True)
    ids = project.engine.to_arrow(project.engine.table(IDS)).to_pylist()
    assert len(ids) > 10
    for row in ids:
        mine, theirs = people.lookup(row["id"]), warehouse.people.lookup(row["id"])
        assert (mine.person_id, mine.values, mine.offers) == (
            theirs.person_id, theirs.values, theirs.offers)
        pid, doc = profiles.lookup(row["id"])
        expected = reader.profile(pid, mask=False)
        assert pid == theirs.person_id
        for part in ("golden", "traits", "segments", "consents"):
            assert doc[part] == expected[part], part
    assert people.lookup("nobody@example.fr") is None
    # identifiers live in a few hashes, not a key each
    gen = r.get(f"{prefix}gen").decode()
    assert len(list(r.scan_iter(match=f"{prefix}{gen}:id:*"))) <= 16


def test_a_refresh_that_dies_leaves_the_old_store_served(project, prefix, monkeypatch):
    refresh(project, now=NOW, redis_url=REDIS, redis_prefix=prefix)
    r = redis.Redis.from_url(REDIS)
    first = r.get(f"{prefix}gen")
    people = RedisPeople(client(REDIS), prefix)
    assert people.lookup("P1").person_id == "P1"
    import passerelle.personalize.redis_load as load

    def broken(*args, **kwargs):
        raise PasserelleError("Writing the decision store to Redis failed: boom")

    monkeypatch.setattr(load, "write_all", broken)
    with pytest.raises(PasserelleError):
        load_redis(project.engine, REDIS, prefix)
    assert r.get(f"{prefix}gen") == first
    assert people.lookup("P1").person_id == "P1"
    assert r.scard(f"{prefix}gens") == 2  # the one served and the unfinished one
    monkeypatch.undo()
    second = load_redis(project.engine, REDIS, prefix)
    assert r.smembers(f"{prefix}gens") == {second.encode()}
    left = {k.decode().removeprefix(prefix).split(":")[0]
            for k in r.scan_iter(match=f"{prefix}*:*") if b":cap:" not in k}
    assert left == {second}


def test_a_command_redis_refuses_stops_the_load_with_its_error(prefix):
    r = redis.Redis.from_url(REDIS)
    r.set(f"{prefix}text", "x")
    bad = f"*3\r\n$4\r\nHSET\r\n${len(prefix) + 4}\r\n{prefix}text\r\n$1\r\na\r\n".encode()
    with pytest.raises(PasserelleError, match=r"WRONGTYPE|wrong number"):
        send(r, [(bad, 1)])
    assert r.ping()  # the connection with unread replies was not given back


def test_a_store_of_before_the_buckets_is_read_until_the_next_refresh(prefix):
    r = redis.Redis.from_url(REDIS)
    r.set(f"{prefix}gen", "old1")
    r.set(f"{prefix}old1:id:ada@example.fr", "P9")
    r.set(f"{prefix}old1:p:P9", orjson.dumps({"values": {"first_name": "Ada"},
                                              "offers": ["shoes"]}))
    found = RedisPeople(client(REDIS), prefix).lookup(" Ada@Example.fr ")
    assert (found.person_id, found.values, found.offers) == ("P9", {"first_name": "Ada"},
                                                             {"shoes"})
    assert RedisPeople(client(REDIS), prefix).lookup("P10") is None
