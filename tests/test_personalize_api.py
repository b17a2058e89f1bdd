"""The decision and profile APIs over HTTP, on the tiny offers project: tokens and scopes,
typed context (422 naming the value), unknown person and placement, a failing template, the
holdout, consent, masking, caps under concurrent requests (warehouse and real Redis) and
Redis down (caps fail closed, /v1/health says so)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from passerelle.api import create_server
from passerelle.governance.tokens import create_token, revoke_token
from passerelle.personalize import refresh_decision_store as refresh
from personalize_helpers import (
    make_project,
    redis_prefix,  # noqa: F401 - the fixture "prefix"
    write,
)
from segments_helpers import NOW

REDIS = "redis://127.0.0.1:6379/0"
ADMIN = ("cli", "test")
WEB = {"channel": "web", "device": "mobile"}
CAPPED = {"offers/everyone.yml": """\
    placements: [home_banner]
    consent: none
    caps: [{at_most: 1, per: 1d}]
    content: {title: Free delivery}
    """}
BROKEN = {"offers/broken.yml": """\
    placements: [home_banner]
    priority: 99
    consent: none
    fields: [birth_date]
    content: {title: "{{ birth_date|int + 1 }}", url: "{{ birth_date|default('', true) }}"}
    """}


def serve(project):
    return TestClient(create_server(project, loader=False, worker=False),
                      base_url="http://localhost", raise_server_exceptions=False)


def token(client, *scopes: str) -> dict[str, str]:
    _, secret = create_token(client.app.state.app_db, list(scopes), timedelta(days=1), ADMIN)
    return {"Authorization": f"Bearer {secret}"}


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    proj = make_project(tmp_path_factory.mktemp("api") / "shop")
    refresh(proj, now=NOW)
    yield proj
    proj.close()


@pytest.fixture(scope="module")
def client(project):
    with serve(project) as c:
        yield c


def decide(client, headers, person, **context):
    return client.get("/v1/decide", params={"person": person, "placement": "home_banner",
                                            **WEB, **context}, headers=headers)


def test_decide_ranks_renders_and_explains(client):
    r = decide(client, token(client, "decide"), "alice@example.fr")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["person_id"] == "P1" and body["group"] == "treated" and not body["default"]
    assert [m["offer"] for m in body["messages"]] == ["shoes", "paris_store"]
    first = body["messages"][0]
    assert first["content"]["title"] == "Alice, summer shoes are here"
    assert first["reason"]["eligibility"] == "segment shoe_lovers"
    assert first["decision_id"] == body["decision_id"] and first["group"] == "treated"
    assert first["probability"] == 1.0
    # consent: David has no e-mail consent, so no shoes offer for him
    david = decide(client, token(client, "decide"), "P4").json()
    assert [m["offer"] for m in david["messages"]] == ["paris_store", "everyone"]


def test_tokens_and_scopes(client):
    r = decide(client, {}, "P1")
    assert r.status_code == 401 and r.json()["code"] == "not_authenticated"
    r = decide(client, {"Authorization": "Bearer psl_nope"}, "P1")
    assert r.status_code == 401 and r.json()["success"] is False
    collect_only = token(client, "collect:write")
    r = decide(client, collect_only, "P1")
    assert r.status_code == 403 and "decide" in r.json()["message"]
    assert decide(client, token(client, "profiles:read"), "P1").status_code == 200
    info, secret = create_token(client.app.state.app_db, ["decide"], None, ADMIN)
    revoke_token(client.app.state.app_db, info.id, ADMIN)
    r = decide(client, {"Authorization": f"Bearer {secret}"}, "P1")
    assert r.status_code == 401 and "revoked" in r.json()["message"]
    r = client.get("/v1/profiles/P1", headers=token(client, "decide"))
    assert r.status_code == 403


def test_a_revoked_token_stops_within_the_memo_time(client, monkeypatch):
    from passerelle.api.personalize import TokenMemo

    monkeypatch.setattr(TokenMemo, "TTL", 0.3)
    info, secret = create_token(client.app.state.app_db, ["decide"], None, ADMIN)
    bearer = {"Authorization": f"Bearer {secret}"}
    assert decide(client, bearer, "P1").status_code == 200
    revoke_token(client.app.state.app_db, info.id, ADMIN)
    deadline = time.monotonic() + 10
    while decide(client, bearer, "P1").status_code == 200:  # trusted a moment, then not
        assert time.monotonic() < deadline, "a revoked token still works"
        time.sleep(0.05)
    r = decide(client, bearer, "P1")
    assert r.status_code == 401 and "revoked" in r.json()["message"]


def test_decisions_do_not_wait_for_the_warehouse_lock(client):
    """A refresh or a job holding the server's warehouse connection: decisions (DuckDB
    store) read on a connection of their own and answer meanwhile."""
    import threading

    headers = token(client, "decide")
    assert decide(client, headers, "P1").status_code == 200  # the store is open
    lock = client.app.state.worker.lock
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with lock:
            held.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(10)
        r = decide(client, headers, "alice@example.fr")
        assert holder.is_alive()  # answered while the lock was held
        assert r.status_code == 200 and r.json()["person_id"] == "P1"
    finally:
        release.set()
        holder.join()


def test_bad_input_is_a_json_422_naming_it(client):
    h = token(client, "decide")
    r = decide(client, h, "P1", cart_value="lots")
    assert r.status_code == 422
    assert r.json()["code"] == "invalid_context" and "cart_value" in r.json()["message"]
    assert r.json()["details"][0]["where"] == "query.cart_value"
    r = decide(client, h, "P1", colour="red")
    assert r.status_code == 422 and "colour" in r.json()["message"]
    r = decide(client, h, "P1", device="fridge")
    assert r.status_code == 422 and "device" in r.json()["message"]
    r = decide(client, h, "P1", cart_value="x" * 600)
    assert r.status_code == 422 and r.json()["code"] == "invalid_request"
    r = decide(client, h, "P1", **{f"c{i}": "1" for i in range(40)})
    assert r.status_code == 422 and "at most 30" in r.json()["message"]
    r = decide(client, h, "P\x00")
    assert r.status_code == 422 and "U+0000" in r.json()["message"]
    r = client.get("/v1/decide", params={"person": "P1", "placement": "nowhere"}, headers=h)
    assert r.status_code == 404 and r.json()["code"] == "unknown_placement"
    # a number passed as text is parsed in its declared type
    assert decide(client, h, "P1", cart_value="12.5").status_code == 200


def test_unknown_person_gets_the_default(client):
    body = decide(client, token(client, "decide"), "nobody@example.org").json()
    assert body["person_id"] is None and body["default"]
    assert body["messages"][0]["offer"] is None
    assert body["messages"][0]["content"]["title"] == "Our new collection"
    assert body["messages"][0]["reason"] == {"rule": "default", "why": "unknown person"}


def test_profiles(client):
    masked = client.get("/v1/profiles/alice@example.fr", headers=token(client, "profiles:read"))
    assert masked.status_code == 200, masked.text
    body = masked.json()
    assert body["person_id"] == "P1" and body["masked"]
    assert body["golden"]["email"] == "a***@example.fr"
    assert body["golden"]["first_name"] == "Alice"
    assert body["traits"]["favourite_category"] == "shoes"
    assert set(body) == {"person_id", "masked", "golden", "traits", "segments", "consents"}
    clear = client.get("/v1/profiles/P1", headers=token(client, "profiles:read", "pii:read"))
    assert clear.json()["golden"]["email"] == "alice@example.fr" and not clear.json()["masked"]
    some = client.get("/v1/profiles/P1?include=traits", headers=token(client, "api:read"))
    assert set(some.json()) == {"person_id", "masked", "traits"}
    r = client.get("/v1/profiles/P1?include=traits,passwords",
                   headers=token(client, "profiles:read"))
    assert r.status_code == 422 and "passwords" in r.json()["message"]
    r = client.get("/v1/profiles/nobody@example.org", headers=token(client, "profiles:read"))
    assert r.status_code == 404 and r.json()["code"] == "not_found"


def test_health_reports_the_decision_store(client):
    body = client.get("/v1/health").json()
    assert body["decisions"] == {"store": "warehouse", "ok": True, "problems": {}}


def test_failing_template_falls_to_the_next_message(tmp_path):
    proj = make_project(tmp_path / "shop", BROKEN)
    refresh(proj, now=NOW)
    try:
        with serve(proj) as c:
            # Chloé has no birth date: the url renders empty, never a blank message
            body = decide(c, token(c, "decide"), "P3").json()
        assert [m["offer"] for m in body["messages"]] == ["shoes", "everyone"]
        assert any("broken" in f for f in body["failures"])
    finally:
        proj.close()


def test_holdout_gets_the_default_and_stays_there(tmp_path):
    proj = make_project(tmp_path / "shop")
    write(proj.root, {"placements/home_banner.yml": """\
        channels: [web, app]
        context: {device: {type: text, values: [mobile, desktop]}}
        holdout_percent: 50
        default: {content: {title: Our new collection}}
        """})
    refresh(proj, now=NOW)
    try:
        with serve(proj) as c:
            h = token(c, "decide")
            groups = {}
            for pid in ("P1", "P2", "P3", "P4", "P5", "P6"):
                first = decide(c, h, pid).json()
                again = decide(c, h, pid).json()
                assert first["group"] == again["group"]
                assert first["decision_id"] != again["decision_id"]
                groups[pid] = first["group"]
                if first["group"] == "holdout":
                    assert first["default"] and first["messages"][0]["reason"]["why"] == \
                        "holdout"
        assert set(groups.values()) == {"holdout", "treated"}
    finally:
        proj.close()


def _cap_race(c, h) -> list[list[str | None]]:
    def one(_):
        return [m["offer"] for m in decide(c, h, "P5").json()["messages"]]

    with ThreadPoolExecutor(16) as pool:
        return list(pool.map(one, range(32)))


def test_a_cap_of_one_holds_under_concurrent_requests(tmp_path):
    proj = make_project(tmp_path / "shop", CAPPED)
    refresh(proj, now=NOW)
    try:
        with serve(proj) as c:
            answers = _cap_race(c, token(c, "decide"))
        # Eva (no consent, not in Paris) is eligible for the capped offer only
        assert sum(a == ["everyone"] for a in answers) == 1
        assert sum(a == [None] for a in answers) == 31
    finally:
        proj.close()


def _with_redis(root, url, prefix) -> None:
    write(root, {"passerelle.yml": f"name: shop\ntimezone: Europe/Paris\npersonalisation:\n"
                                   f"  redis_url: {url}\n  redis_prefix: \"{prefix}\"\n"})


def test_redis_caps_under_concurrency_and_redis_down(tmp_path, prefix):
    import passerelle

    root = tmp_path / "shop"
    proj = make_project(root, CAPPED)
    refresh(proj, now=NOW)
    proj.close()
    with passerelle.open(root) as proj, serve(proj) as c:  # the warehouse's, to compare
        warehouse = c.get("/v1/profiles/alice@example.fr",
                          headers=token(c, "profiles:read")).json()
    _with_redis(root, REDIS, prefix)
    with passerelle.open(root) as proj:
        assert refresh(proj, now=NOW).redis
        with serve(proj) as c:
            answers = _cap_race(c, token(c, "decide"))
            assert sum(a == ["everyone"] for a in answers) == 1
            assert c.get("/v1/health").json()["decisions"]["store"] == "redis"
            # profiles come from Redis too, masked as the token requires
            h = token(c, "profiles:read")
            redis_body = c.get("/v1/profiles/alice@example.fr", headers=h).json()
            assert redis_body["golden"]["email"] == "a***@example.fr"
            assert redis_body["traits"]["favourite_category"] == "shoes"
            assert redis_body == warehouse
            clear = c.get("/v1/profiles/P1?include=golden",
                          headers=token(c, "profiles:read", "pii:read")).json()
            assert clear == {"person_id": "P1", "masked": False,
                             "golden": {**clear["golden"], "email": "alice@example.fr"}}
            assert c.get("/v1/profiles/nobody", headers=h).status_code == 404
    _with_redis(root, "redis://127.0.0.1:6399/0", prefix)  # nothing listens there
    with passerelle.open(root) as proj, serve(proj) as c:
        body = decide(c, token(c, "decide"), "P1").json()
        # people cannot be read: the default experience, and the failure said
        assert body["default"] and body["messages"][0]["reason"]["why"] == "store unavailable"
        health = c.get("/v1/health").json()["decisions"]
        assert health["store"] == "redis" and not health["ok"] and "redis" in health["problems"]
