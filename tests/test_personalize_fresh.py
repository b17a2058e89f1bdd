"""`passerelle serve` keeps the decision store fresh: an event posted to the collector makes
a person eligible, and /v1/decide shows it within seconds (the loader commits the event, the
freshener stages it, refreshes the segment over events and the serving store of the person),
with the warehouse store and with Redis. The wiring, not the timing (benchmarks/freshness.py
measures that)."""

from __future__ import annotations

import base64
import shutil
import time
import uuid

import pytest
import redis
import yaml
from fastapi.testclient import TestClient

import passerelle
from passerelle.api.app import create_server
from passerelle.collect import DEFAULT_MAPPING
from passerelle.governance.db import open_app_db
from passerelle.governance.tokens import create_token
from passerelle.personalize import refresh_decision_store
from passerelle.project.starter import init_project

REDIS = "redis://127.0.0.1:6379/0"
KEY = "wk_fresh_test"
WRITE = {"Authorization": "Basic " + base64.b64encode(f"{KEY}:".encode()).decode()}
FILES = {
    "segments/keen.yml": """\
        description: Viewed a product this week
        owner: tests
        where:
          did: {event: Product Viewed, at_least: 1, in_last_days: 7}
        """,
    "placements/home_banner.yml": """\
        description: banner of the home page
        channels: [web]
        holdout_percent: 0
        max_messages: 1
        default:
          content: {title: Our new collection}
        """,
    "offers/keen.yml": """\
        description: for people who just looked
        placements: [home_banner]
        priority: 50
        consent: none
        eligibility: {segment: keen}
        fields: [first_name]
        content: {title: "{{ first_name|default('Hello', true) }}, still looking?"}
        """,
    "offers/everyone.yml": """\
        description: free delivery for everyone
        placements: [home_banner]
        priority: 0
        consent: none
        content: {title: Free delivery}
        """,
}


def _project(root):
    import textwrap

    init_project(root)
    source = {"name": "web", "entity": "events", "customer_source": "contacts",
              "connector": {"type": "collector", "write_keys": [KEY],
                            "spool": {"type": "file", "path": "spool"}},
              "columns": dict(DEFAULT_MAPPING)}
    (root / "sources" / "web.yml").write_text(yaml.safe_dump(source, sort_keys=False))
    for name, text in FILES.items():
        (root / name).parent.mkdir(exist_ok=True)
        (root / name).write_text(textwrap.dedent(text), encoding="utf-8")


def _poll(what, deadline_s: float = 60.0):
    """``what()`` until it returns something true, at most ``deadline_s`` seconds."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        got = what()
        if got:
            return got
        time.sleep(0.1)
    raise AssertionError(f"not within {deadline_s}s: {what.__doc__}")


def _first_events(project, write: dict) -> None:
    """The collector's first event loaded (`passerelle run` needs raw_web), before any
    decision store exists."""
    with TestClient(create_server(project, loader_interval=0.05),
                    base_url="http://localhost") as client:
        r = client.post("/v1/track", headers=write, json={
            "type": "track", "event": "Signed Up", "userId": "C003", "messageId": "m-0"})
        assert r.status_code == 200, r.text

        def loaded() -> bool:
            """the loader committed the first event"""
            return client.get("/v1/health").json()["backlog"] == {"web": 0}

        _poll(loaded)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The project after its first collected event and `passerelle run` (decision store
    in the warehouse); tests work on copies."""
    root = tmp_path_factory.mktemp("fresh") / "shop"
    _project(root)
    with passerelle.open(root) as project:
        _first_events(project, WRITE)
        result = project.run()
        assert result.ok, [e.reason for e in result.errors]
    return root


def _copy(built, target, redis_prefix: str | None = None):
    shutil.copytree(built, target)
    if redis_prefix is not None:  # the same store, served from Redis
        with (target / "passerelle.yml").open("a", encoding="utf-8") as f:
            f.write(f"\npersonalisation:\n  redis_url: {REDIS}\n"
                    f"  redis_prefix: \"{redis_prefix}\"\n")
    project = passerelle.open(target)
    if redis_prefix is not None:
        refresh_decision_store(project)
    return project


def _decide_bearer(project: passerelle.Project) -> dict[str, str]:
    """The header of a new API token allowed to decide."""
    db = open_app_db(project)
    _, token = create_token(db, ["decide"], None, ("cli", "test"), name="site")
    db.close()
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize("store", ["warehouse", "redis"])
def test_an_event_posted_to_the_collector_changes_the_decision(built, tmp_path, store):
    prefix = f"test:{uuid.uuid4().hex[:10]}:" if store == "redis" else None
    project = _copy(built, tmp_path / "shop", prefix)
    write = WRITE
    try:
        app = create_server(project, loader_interval=0.05)
        bearer = _decide_bearer(project)
        with TestClient(app, base_url="http://localhost") as client:
            def decision(person: str) -> dict:
                r = client.get("/v1/decide", headers=bearer, params={
                    "person": person, "placement": "home_banner", "channel": "web"})
                assert r.status_code == 200, r.text
                return r.json()

            before = decision("C001")
            assert [m["offer"] for m in before["messages"]] == ["everyone"]
            assert decision("anon-7")["person_id"] is None

            # a page view makes Hélène (C001) enter `keen`; an identify call ties the
            # browser anon-7 to Jean-Pierre (C002)
            r = client.post("/v1/batch", headers=write, json={"batch": [
                {"type": "track", "event": "Product Viewed", "userId": "C001",
                 "messageId": "m-1", "properties": {"sku": "A1"}},
                {"type": "identify", "userId": "C002", "anonymousId": "anon-7",
                 "messageId": "m-2", "traits": {}}]})
            assert r.status_code == 200, r.text

            def changed() -> dict | None:
                """C001's decision shows the offer of the segment over events"""
                d = decision("C001")
                return d if d["messages"][0]["offer"] == "keen" else None

            after = _poll(changed)
            assert after["messages"][0]["content"]["title"] == "Hélène, still looking?"
            assert after["person_id"] == before["person_id"]

            def stitched() -> dict | None:
                """anon-7 is known as C002's person"""
                d = decision("anon-7")
                return d if d["person_id"] is not None else None

            assert _poll(stitched)["person_id"] == decision("C002")["person_id"]
            assert app.state.freshener.wait_idle(60)
            health = client.get("/v1/health").json()
            fresh = health["freshness"]
            assert fresh["ok"] and fresh["error"] is None and fresh["refreshes"] >= 1
            assert fresh["last"]["people"] >= 1 and fresh["last"]["staged"] == ["web"]
            assert health["decisions"]["ok"] and health["decisions"]["store"] == store
    finally:
        project.close()
        if prefix is not None:
            r = redis.Redis.from_url(REDIS)
            keys = list(r.scan_iter(match=f"{prefix}*"))
            if keys:
                r.delete(*keys)


def test_without_segments_over_events_new_events_are_still_staged(built, tmp_path):
    """Offers but no segment (over events, or at all): the server still stages the new
    events and stitches their anonymous ids, so an identify call reaches the decision
    store."""
    root = tmp_path / "shop"
    shutil.copytree(built, root)
    (root / "segments" / "keen.yml").unlink()
    (root / "offers" / "keen.yml").unlink()
    project = passerelle.open(root)
    try:
        app = create_server(project, loader_interval=0.05)
        bearer = _decide_bearer(project)
        with TestClient(app, base_url="http://localhost") as client:
            def person_of(who: str) -> str | None:
                r = client.get("/v1/decide", headers=bearer, params={
                    "person": who, "placement": "home_banner", "channel": "web"})
                assert r.status_code == 200, r.text
                return r.json()["person_id"]

            assert person_of("anon-9") is None
            r = client.post("/v1/identify", headers=WRITE, json={
                "type": "identify", "userId": "C002", "anonymousId": "anon-9",
                "messageId": "m-9", "traits": {}})
            assert r.status_code == 200, r.text

            def stitched() -> str | None:
                """anon-9 is known as C002's person"""
                return person_of("anon-9")

            assert _poll(stitched) == person_of("C002")
            assert app.state.freshener.wait_idle(60)
            fresh = client.get("/v1/health").json()["freshness"]
            assert fresh["ok"] and fresh["last"]["staged"] == ["web"]
            assert fresh["last"]["changed"] == 0 and fresh["last"]["audiences"] == []
    finally:
        project.close()


def test_a_failed_refresh_is_reported_and_retried(built, tmp_path, monkeypatch):
    """A refresh that fails shows in the health part and the run log; the loads it missed
    stay pending and are refreshed once the warehouse answers again."""
    from passerelle.jobs.worker import WarehouseLock
    from passerelle.personalize import freshen

    with _copy(built, tmp_path / "shop") as project:
        f = freshen.Freshener(project, WarehouseLock(), min_interval=0.0)
        broken = {"yes": True}
        real = freshen.refresh_after_events

        def flaky(proj):
            if broken["yes"]:
                raise RuntimeError("warehouse away")
            return real(proj)

        monkeypatch.setattr(freshen, "refresh_after_events", flaky)
        try:
            f.notify(3)

            def failed() -> dict | None:
                """the health part says the refresh failed"""
                h = f.health()
                return h if h["error"] else None

            health = _poll(failed)
            assert not health["ok"] and "warehouse away" in health["error"]
            assert health["failures"] >= 1 and health["pending"] + health["running"] >= 1
            runs = [r for r in project.status() if r["step"] == "freshen"]
            assert runs and runs[0]["status"] == "failed"
            assert "warehouse away" in runs[0]["message"]
            broken["yes"] = False
            f.notify(1)
            assert f.wait_idle(30)
            health = f.health()
            assert health["ok"] and health["error"] is None
            assert health["refreshes"] == 1 and health["last"]["rows"] == 4
        finally:
            f.stop()
