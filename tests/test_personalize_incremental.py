"""The serving store updated for the people new events and identify calls touched, without a
full refresh: in the warehouse and in Redis, and from the event-driven segment refresh job."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest
import redis
import sqlglot as sg

from passerelle.collect.loader import ALIAS_LOG, ALIAS_SCHEMA, ensure_tables
from passerelle.identity.anonymous import ANONYMOUS_IDS_SCHEMA
from passerelle.identity.tables import ANONYMOUS_IDS
from passerelle.personalize import decide, open_store
from passerelle.personalize import refresh_decision_store as refresh
from passerelle.personalize.incremental import refresh_people, touched_people
from passerelle.personalize.tables import IDS, PEOPLE
from passerelle.segments.activity import ARRIVALS, ensure_tracking
from passerelle.sources.bookkeeping import new_load_id
from personalize_helpers import (
    make_project,
    redis_prefix,  # noqa: F401 - the fixture "prefix"
)

REDIS = "redis://127.0.0.1:6379/0"
WEB = {"channel": "web", "device": "mobile"}


def offers(d) -> list[str | None]:
    return [m.offer for m in d.messages]


def _rows(engine, table: str) -> list[dict]:
    t = engine.table(table)
    return sorted(engine.to_arrow(t).to_pylist(), key=lambda r: tuple(map(str, r.values())))


def _identify(engine, anonymous_id: str, user_id: str, at: datetime) -> None:
    """An identify call as the collector logs it (a load of its own, at ``at``)."""
    ensure_tables(engine)
    engine.append_arrow(ALIAS_LOG, pa.table({
        "source": ["web"], "anonymous_id": [anonymous_id], "user_id": [user_id],
        "previous_id": pa.array([None], pa.string()),
        "first_seen": pa.array([at], pa.timestamp("us")),
        "last_seen": pa.array([at], pa.timestamp("us")), "_load_id": [new_load_id(at)]},
        schema=ALIAS_SCHEMA.to_pyarrow()).to_reader())


def _events_and_identify(engine, at: datetime) -> None:
    """Fanny (P6) bought shoes (her favourite category is now shoes, an event arrived for
    her); Bruno (P2) logged in on a browser known as anon-42 (an identify call)."""
    engine.append_arrow("traits", pa.table({
        "person_id": ["P6"], "trait": ["favourite_category"],
        "value_number": pa.array([None], pa.float64()), "value_text": ["shoes"],
        "value_date": pa.array([None], pa.date32()),
        "computed_at": pa.array([at], pa.timestamp("us")), "run_id": ["R2"]}).to_reader())
    ensure_tracking(engine)
    engine.append_arrow(ARRIVALS, pa.table({
        "person_id": ["P6"], "event": ["Order Completed"],
        "arrived_at": pa.array([at], pa.timestamp("us"))}).to_reader())
    # the identify call as the collector logs it, and its stitching
    _identify(engine, "anon-42", "C2", at)
    engine.create_empty(ANONYMOUS_IDS, ANONYMOUS_IDS_SCHEMA)
    engine.append_arrow(ANONYMOUS_IDS, pa.table({
        "anonymous_id": ["anon-42"], "person_id": ["P2"], "evidence": ["identify"],
        "first_seen": pa.array([at], pa.timestamp("us")),
        "last_seen": pa.array([at], pa.timestamp("us")), "run_id": ["R2"]},
        schema=ANONYMOUS_IDS_SCHEMA.to_pyarrow()).to_reader())


@pytest.fixture
def project(tmp_path):
    proj = make_project(tmp_path / "shop")
    yield proj
    proj.close()


def test_touched_people_only_are_updated(project):
    engine = project.engine
    refresh(project)
    store = open_store(project)
    assert offers(decide(store, "P6", "home_banner", WEB)) == ["everyone"]
    assert decide(store, "anon-42", "home_banner", WEB).person_id is None
    others = [r for r in _rows(engine, PEOPLE) if r["person_id"] not in ("P2", "P6")]

    since = datetime.now(UTC).replace(tzinfo=None)
    _events_and_identify(engine, since + timedelta(seconds=1))
    touched = sorted(engine.to_arrow(touched_people(engine, since))["person_id"].to_pylist())
    assert touched == ["P2", "P6"]
    assert refresh_people(project.root, engine, touched_people(engine, since)) == 2

    store = open_store(project)
    got = decide(store, "P6", "home_banner", WEB)
    assert offers(got)[0] == "shoes"  # Fanny has the e-mail consent the offer needs
    assert got.messages[0].content["title"] == "Fanny, summer shoes are here"
    assert decide(store, "anon-42", "home_banner", WEB).person_id == "P2"
    assert offers(decide(store, "P1", "home_banner", WEB)) == ["shoes", "paris_store"]
    assert engine.count(PEOPLE) == 6
    # the profile API's sorted copy follows
    from passerelle.personalize.profiles import ProfileReader

    reader = ProfileReader(engine, serving=True)
    assert reader.tables["traits"] == "decision_traits"
    assert reader.traits("P6")["favourite_category"] == "shoes"
    assert reader.traits("P1") == ProfileReader(engine).traits("P1")
    assert [r for r in _rows(engine, PEOPLE) if r["person_id"] not in ("P2", "P6")] == others
    assert engine.count(IDS) == len(set(engine.to_arrow(engine.table(IDS))["id"].to_pylist()))
    # nothing changed since: nobody is touched again
    assert refresh_people(project.root, engine,
                          touched_people(engine, datetime.now(UTC) + timedelta(hours=1))) == 0


def test_an_identifier_that_leaves_its_owner_is_no_longer_served(project, prefix):
    engine = project.engine
    refresh(project, redis_url=REDIS, redis_prefix=prefix)
    since = datetime.now(UTC).replace(tzinfo=None)
    _events_and_identify(engine, since + timedelta(seconds=1))
    refresh_people(project.root, engine, touched_people(engine, since), redis_url=REDIS,
                   redis_prefix=prefix)
    redis_store = open_store(project, redis_url=REDIS, redis_prefix=prefix)
    assert decide(redis_store, "anon-42", "home_banner", WEB).person_id == "P2"
    # the browser then identifies as someone else: the id is ambiguous, stitched to nobody
    later = since + timedelta(seconds=5)
    _identify(engine, "anon-42", "C6", later)
    engine.execute(sg.parse_one(f"DELETE FROM {ANONYMOUS_IDS}"))
    touched = touched_people(engine, later - timedelta(seconds=1))
    assert engine.to_arrow(touched)["person_id"].to_pylist() == ["P2"]  # its former owner
    assert refresh_people(project.root, engine, touched, redis_url=REDIS,
                          redis_prefix=prefix) == 1
    assert decide(open_store(project), "anon-42", "home_banner", WEB).person_id is None
    assert decide(redis_store, "anon-42", "home_banner", WEB).person_id is None
    assert decide(redis_store, "P2", "home_banner", WEB).person_id == "P2"


def test_redis_keys_of_the_touched_people_are_rewritten(project):
    prefix = f"test:{uuid.uuid4().hex[:10]}:"
    try:
        refresh(project, redis_url=REDIS, redis_prefix=prefix)
        store = open_store(project, redis_url=REDIS, redis_prefix=prefix)
        assert offers(decide(store, "P6", "home_banner", WEB)) == ["everyone"]
        since = datetime.now(UTC).replace(tzinfo=None)
        _events_and_identify(project.engine, since + timedelta(seconds=1))
        n = refresh_people(project.root, project.engine,
                           touched_people(project.engine, since), redis_url=REDIS,
                           redis_prefix=prefix)
        assert n == 2
        assert offers(decide(store, "P6", "home_banner", WEB))[0] == "shoes"
        assert decide(store, "anon-42", "home_banner", WEB).person_id == "P2"
        # the profile API's documents of the touched people too
        from passerelle.personalize.redis_store import RedisProfiles, client

        pid, doc = RedisProfiles(client(REDIS), prefix).lookup("anon-42")
        assert pid == "P2" and doc["golden"]["first_name"] == "Bruno"
        _, fanny = RedisProfiles(client(REDIS), prefix).lookup("P6")
        assert fanny["traits"]["favourite_category"] == "shoes"
    finally:
        r = redis.Redis.from_url(REDIS)
        keys = list(r.scan_iter(match=f"{prefix}*"))
        if keys:
            r.delete(*keys)


def test_the_event_refresh_job_updates_the_decision_store(project):
    from passerelle.jobs.kinds import execute

    refresh(project)
    _events_and_identify(project.engine, datetime.now(UTC).replace(tzinfo=None)
                         + timedelta(seconds=5))
    result, error, code = execute("segment_refresh", {"events": True}, project, "test")
    assert error is None and code == 0
    assert result["decision_store"] == {"people": 2}
    store = open_store(project)
    assert decide(store, "anon-42", "home_banner", WEB).person_id == "P2"
