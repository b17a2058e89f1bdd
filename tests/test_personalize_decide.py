"""Decisions on a tiny project: eligibility, consent, context, holdout, caps and budgets
(also under concurrency), the Redis store and Redis down, and batch decisions."""

from __future__ import annotations

import subprocess
import sys
import threading
import uuid
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta

import ibis
import pytest
import redis

from conftest import postgres_engine
from passerelle.measure.design import assign_expr
from passerelle.personalize import ContextError, PersonalizeError, decide, open_store
from passerelle.personalize import refresh_decision_store as refresh
from passerelle.personalize.caps import Counter
from passerelle.personalize.decide import group_of, holdout_salt
from passerelle.personalize.redis_store import RedisCaps, client
from passerelle.personalize.store import DecisionStore, WarehouseCaps, WarehousePeople
from passerelle.personalize.tables import ensure_counters
from personalize_helpers import (
    make_project,
    redis_prefix,  # noqa: F401 - the fixture "prefix"
)
from segments_helpers import NOW

WEB = {"channel": "web", "device": "mobile"}
SOON = datetime.now(UTC) + timedelta(days=1)  # a counter's window end, in the future
REDIS = "redis://127.0.0.1:6379/0"
CAPPED = {"offers/everyone.yml": """\
    placements: [home_banner]
    consent: none
    caps: [{at_most: 1, per: 1d}]
    budget: 3
    content: {title: Free delivery}
    """}


def offers(decision):
    return [m.offer for m in decision.messages]


@pytest.fixture
def project(tmp_path):
    proj = make_project(tmp_path)
    refresh(proj, now=NOW)
    yield proj
    proj.close()


def test_eligibility_consent_and_context_rules(project):
    store = open_store(project)
    # Alice: shoe lover with e-mail consent, Paris, on mobile: both, best first
    assert offers(decide(store, "P1", "home_banner", WEB, now=NOW)) == ["shoes", "paris_store"]
    # on desktop the Paris offer's context rule fails
    desktop = decide(store, "P1", "home_banner", {**WEB, "device": "desktop"}, now=NOW)
    assert offers(desktop) == ["shoes", "everyone"]
    # David is in Paris but has no e-mail consent: no shoes offer even if he liked shoes
    assert offers(decide(store, "P4", "home_banner", WEB, now=NOW)) == ["paris_store",
                                                                       "everyone"]
    d = decide(store, "alice@example.fr", "home_banner", WEB, now=NOW)
    assert d.person_id == "P1" and d.group == "treated" and not d.default
    first = d.messages[0]
    assert first.content == {"title": "Alice, summer shoes are here",
                             "url": "https://shop.example.fr/shoes"}
    assert first.reason["eligibility"] == "segment shoe_lovers"
    assert first.probability == 1.0
    assert d.messages[1].reason["context_rules"] == ["device = mobile"]
    uuid.UUID(d.decision_id)


def test_unknown_person_and_bad_context(project):
    store = open_store(project)
    d = decide(store, "nobody@nowhere", "home_banner", WEB, now=NOW)
    assert d.person_id is None and d.default
    assert d.messages[0].content["title"] == "Our new collection"
    assert d.messages[0].reason == {"rule": "default", "why": "unknown person"}
    with pytest.raises(ContextError) as exc:
        decide(store, "P1", "home_banner", {"cart_value": "lots"}, now=NOW)
    assert exc.value.field == "cart_value"
    with pytest.raises(ContextError) as exc:
        decide(store, "P1", "home_banner", {"device": "watch"}, now=NOW)
    assert exc.value.field == "device"
    with pytest.raises(ContextError) as exc:
        decide(store, "P1", "home_banner", {"weather": "sun"}, now=NOW)
    assert exc.value.field == "weather"
    with pytest.raises(ContextError) as exc:
        decide(store, "P1", "home_banner", {"channel": "email"}, now=NOW)
    assert exc.value.field == "channel"
    # text from a query string is typed
    assert decide(store, "P1", "home_banner", {"cart_value": "12.5"}, now=NOW).context[
        "cart_value"] == 12.5
    with pytest.raises(PersonalizeError, match="no placement named"):
        decide(store, "P1", "nowhere", now=NOW)


def test_time_rules_use_the_project_time_zone(tmp_path):
    proj = make_project(tmp_path, {"offers/evening.yml": """\
        placements: [home_banner]
        priority: 99
        consent: none
        context: [{context: hour, op: ">=", value: 20}, {context: weekday, op: in,
                   value: [sat, sun]}]
        content: {title: Evening deal}
        """})
    refresh(proj, now=NOW)
    store = open_store(proj)
    # NOW is Saturday 2024-06-01 12:00 UTC = 14:00 in Paris; 18:30 UTC = 20:30 in Paris
    assert "evening" not in offers(decide(store, "P5", "home_banner", now=NOW))
    late = NOW + timedelta(hours=6, minutes=30)
    assert offers(decide(store, "P5", "home_banner", now=late))[0] == "evening"
    assert "evening" not in offers(decide(store, "P5", "home_banner",
                                          now=late + timedelta(days=1, hours=6)))  # Monday
    proj.close()


def test_failing_template_falls_to_the_next_message(tmp_path):
    proj = make_project(tmp_path, {"offers/broken.yml": """\
        placements: [home_banner]
        priority: 99
        consent: none
        fields: [birth_date]
        content: {title: "{{ birth_date|int + 1 }}", url: "{{ birth_date|default('', true) }}"}
        """})
    refresh(proj, now=NOW)
    store = open_store(proj)
    d = decide(store, "P3", "home_banner", now=NOW)  # Chloé has no birth date: url empty
    assert "broken" not in offers(d) and d.messages
    assert any("broken" in f for f in d.failures)
    proj.close()


def test_holdout_is_stable_and_near_its_rate(tmp_path):
    proj = make_project(tmp_path, {"placements/home_banner.yml": """\
        holdout_percent: 20
        context: {device: text, cart_value: number}
        default: {content: {title: Default}}
        """})
    refresh(proj, now=NOW)
    place = open_store(proj).definitions.placements["home_banner"]
    ids = [f"person-{i}" for i in range(10_000)]
    groups = [group_of(i, place) for i in ids]
    share = groups.count("holdout") / len(ids)
    assert 0.19 < share < 0.21
    # the warehouse draws the same groups in SQL
    t = ibis.memtable({"person_id": ids})
    sql = proj.engine.to_arrow(t.select(
        g=assign_expr(t.person_id, holdout_salt(place), {"holdout": 20, "treated": 80})))
    assert sql["g"].to_pylist() == groups
    # and another process too (no per-process hash seed)
    code = ("from passerelle.project.offers_models import PlacementConfig;"
            "from passerelle.personalize.decide import group_of;"
            "p = PlacementConfig(name='home_banner', holdout_percent=20,"
            " default={'content': {'title': 'x'}});"
            "print(''.join(group_of(f'person-{i}', p)[0] for i in range(200)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "".join(g[0] for g in groups[:200])
    store = open_store(proj)
    held = [p for p in ("P1", "P2", "P3", "P4", "P5", "P6") if group_of(p, place) == "holdout"]
    for pid in held:
        d = decide(store, pid, "home_banner", now=NOW)
        assert d.group == "holdout" and d.default and d.messages[0].reason["why"] == "holdout"
    proj.close()


def test_caps_and_budget_in_the_warehouse(tmp_path):
    proj = make_project(tmp_path, CAPPED)
    refresh(proj, now=NOW)
    store = open_store(proj)
    assert offers(decide(store, "P5", "home_banner", now=NOW)) == ["everyone"]
    again = decide(store, "P5", "home_banner", now=NOW)
    assert again.default  # capped at one a day
    next_day = NOW + timedelta(days=1)
    assert offers(decide(store, "P5", "home_banner", now=next_day)) == ["everyone"]
    # budget of 3 sends in all: the third send goes out, the fourth never
    assert offers(decide(store, "P6", "home_banner", now=NOW)) == ["everyone"]
    assert decide(store, "P2", "home_banner", now=NOW).messages[-1].offer is None
    proj.close()


def test_two_concurrent_decisions_never_both_pass_a_cap_of_one(tmp_path):
    proj = make_project(tmp_path, CAPPED)
    refresh(proj, now=NOW)
    store = open_store(proj)
    results: list[list] = []
    barrier = threading.Barrier(8)

    def one() -> None:
        barrier.wait()
        results.append(offers(decide(store, "P5", "home_banner", now=NOW)))

    threads = [threading.Thread(target=one) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r == ["everyone"] for r in results) == 1
    proj.close()


@pytest.mark.postgres
def test_warehouse_caps_are_atomic_across_connections_on_postgres():
    first = postgres_engine()
    ensure_counters(first)
    engines = [first] + [postgres_engine() for _ in range(5)]
    for e in engines[1:]:
        e.schema = first.schema
    taken: list[bool] = []
    barrier = threading.Barrier(len(engines))

    def one(engine) -> None:
        caps = WarehouseCaps(engine, threading.Lock())  # own connection, own lock
        barrier.wait()
        taken.append(caps.take([Counter("budget:x", 3, None),
                                Counter("cap:o:x:1:1:P", 1, SOON)]))

    try:
        threads = [threading.Thread(target=one, args=(e,)) for e in engines]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert taken.count(True) == 1
        c = first.table("decision_counters")
        assert first.to_arrow(c.filter(c.key == "budget:x").n).to_pylist() == [1]
    finally:
        first.drop_schema()
        for e in engines:
            e.close()


def test_redis_store_decides_like_the_warehouse(project, prefix):
    summary = refresh(project, now=NOW, redis_url=REDIS, redis_prefix=prefix)
    assert summary.redis
    store = open_store(project, redis_url=REDIS, redis_prefix=prefix)
    warehouse = open_store(project)
    for who in ("P1", "alice@example.fr", "crm:C3", "P4", "P5", "nobody"):
        assert offers(decide(store, who, "home_banner", WEB, now=NOW)) == offers(
            decide(warehouse, who, "home_banner", WEB, now=NOW))
    assert decide(store, "P1", "home_banner", WEB, now=NOW).messages[0].content["title"] \
        == "Alice, summer shoes are here"
    # a second refresh switches generation and removes the first one's keys
    refresh(project, now=NOW, redis_url=REDIS, redis_prefix=prefix)
    r = redis.Redis.from_url(REDIS)
    gens = {k.decode().split(":")[2] for k in r.scan_iter(match=f"{prefix}*:id:*")}
    assert len(gens) == 1
    assert store.health()["ok"]


def _take_in_process(prefix: str) -> bool:
    caps = RedisCaps(client(REDIS), prefix)
    return caps.take([Counter("budget:x", 5, None), Counter("cap:o:x:1:1:P", 1, SOON)])


def test_redis_caps_are_atomic_across_processes(prefix):
    with ProcessPoolExecutor(4) as pool:
        taken = list(pool.map(_take_in_process, [prefix] * 8))
    assert taken.count(True) == 1
    assert int(redis.Redis.from_url(REDIS).get(f"{prefix}cap:budget:x")) == 1


def test_the_messages_of_a_decision_take_their_caps_in_turn(project, prefix):
    """One decision's messages take their counters in one call: each message all of its
    counters or none, in turn, until enough passed; Redis (one round trip) and the
    warehouse (one transaction a message) agree."""
    groups = [[Counter("budget:a", 1, None)],
              [Counter("cap:p:home:1440:1:P1", 2, SOON), Counter("budget:b", 5, None)],
              [],
              [Counter("budget:c", 1, None)]]
    expected = [[True, True, None, None], [False, True, True, None],
                [False, False, True, True]]
    redis_caps = RedisCaps(client(REDIS), prefix)
    assert [redis_caps.take_first(groups, 2) for _ in range(3)] == expected
    assert int(redis.Redis.from_url(REDIS).get(f"{prefix}cap:budget:b")) == 2
    ensure_counters(project.engine)
    warehouse_caps = WarehouseCaps(project.engine, threading.Lock())
    assert [warehouse_caps.take_first(groups, 2) for _ in range(3)] == expected
    assert redis_caps.take_first(groups, 0) == [None] * 4


def test_redis_down_fails_closed_and_says_so(project):
    down = "redis://127.0.0.1:6399/0"  # nothing listens there
    store = open_store(project, redis_url=down)
    d = decide(store, "P1", "home_banner", WEB, now=NOW)
    assert d.default and d.messages[0].reason["why"] == "store unavailable"
    assert store.health()["ok"] is False and "people" in store.health()["problems"]
    # people from the warehouse, caps in a Redis that is down: uncapped offers only
    lock = threading.Lock()
    defs = open_store(make_capped_defs(project)).definitions
    mixed = DecisionStore(defs, WarehousePeople(project.engine, lock),
                          RedisCaps(client(down), "x:"))
    got = decide(mixed, "P1", "home_banner", WEB, now=NOW)
    assert offers(got) == ["shoes", "paris_store"]  # neither is capped
    got = decide(mixed, "P5", "home_banner", WEB, now=NOW)
    assert got.default and any("caps cannot be counted" in f for f in got.failures)
    assert mixed.health()["problems"].keys() == {"caps"}


def make_capped_defs(project):
    from personalize_helpers import write

    write(project.root, CAPPED)
    return project


def test_batch_decision_in_sql(tmp_path):
    from passerelle.personalize.batch import BATCH, decide_batch
    from passerelle.segments import service

    proj = make_project(tmp_path, {
        "segments/everyone.yml": """\
            description: everyone
            owner: crm
            where: {field: person_id, op: not_null}
            audiences: [{name: newsletter, channel: email, holdout_percent: 0}]
            """,
        "placements/newsletter_hero.yml": """\
            channels: [email]
            holdout_percent: 0
            default: {content: {subject: Our news}}
            """,
        "offers/news_all.yml": """\
            placements: [newsletter_hero]
            priority: 9
            consent: email
            budget: 2
            content: {subject: For all}
            """,
        "offers/news_shoes.yml": """\
            placements: [newsletter_hero]
            priority: 5
            consent: email
            eligibility: {segment: shoe_lovers}
            caps: [{at_most: 1, per: 7d}]
            content: {subject: Shoes}
            """})
    service.refresh(proj)  # builds the audience: e-mail consent and address: P1, P2, P6
    s = decide_batch(proj, "newsletter_hero", "newsletter", {"channel": "email"}, now=NOW)
    assert s.people == 3 and s.holdout == 0
    assert s.offers["news_all"] == 2  # its budget
    rows = proj.engine.to_arrow(proj.engine.table(BATCH)).to_pylist()
    by = {r["person_id"]: r for r in rows}
    assert set(by) == {"P1", "P2", "P6"}
    left = [p for p, r in by.items() if r["offer"] != "news_all"]
    assert len(left) == 1
    assert by[left[0]]["offer"] == ("news_shoes" if left[0] == "P1" else None)
    assert all(r["group"] == "treated" and r["probability"] == 1.0 for r in rows)
    assert len({r["decision_id"] for r in rows}) == 3
    # the sends were counted: the budget is spent, and the shoes cap holds for a week
    again = decide_batch(proj, "newsletter_hero", "newsletter", {"channel": "email"},
                         now=NOW + timedelta(hours=1))
    assert "news_all" not in again.offers
    assert again.offers.get("news_shoes", 0) == (0 if left[0] == "P1" else 1)
    assert proj.engine.count(BATCH) == 3  # rows of the same send replaced
    proj.close()


def test_cli_decides_for_one_person_and_validates(project):
    import json

    from typer.testing import CliRunner

    from passerelle.cli import app

    root = str(project.root)
    project.close()  # the CLI opens the warehouse itself
    runner = CliRunner()
    out = runner.invoke(app, ["offers", "validate", "-p", root])
    assert out.exit_code == 0 and "3 offer(s)" in out.output
    out = runner.invoke(app, ["decide", "--placement", "home_banner", "--person", "P5",
                              "--context", "channel=web", "-p", root, "--json"])
    assert out.exit_code == 0, out.output
    assert [m["offer"] for m in json.loads(out.stdout)["messages"]] == ["everyone"]
    readable = runner.invoke(app, ["decide", "--placement", "home_banner", "--person", "P5",
                                   "--context", "channel=web", "-p", root])
    assert readable.exit_code == 0 and "Decision for P5 on home_banner" in readable.stdout
    assert "everyone" in readable.stdout and not readable.stdout.lstrip().startswith("{")
