"""Personalisation wired into the project: `passerelle run` refreshes the decision store,
`passerelle validate` reports offer problems file by file, the CSV export carries the
batch decision's offer, and passerelle.yml names the Redis the store lives in."""

from __future__ import annotations

import csv

import redis

from passerelle.activation import export_csv, parse_destination
from passerelle.definition import read_project
from passerelle.personalize import decide, open_store
from passerelle.personalize import refresh_decision_store as refresh
from passerelle.personalize.log import POSTERIORS
from passerelle.personalize.tables import PEOPLE
from personalize_helpers import (
    FILES,
    LEARNED,
    WEB,
    make_project,
    redis_prefix,  # noqa: F401 - the fixture "prefix"
    write,
)
from segments_helpers import NOW

REDIS = "redis://127.0.0.1:6379/0"


def test_run_refreshes_the_decision_store(tmp_path):
    proj = make_project(tmp_path, LEARNED)
    assert not proj.engine.exists(PEOPLE)
    result = proj.run()
    assert result.decision_store is not None and result.decision_store.people == 6
    assert proj.engine.exists(PEOPLE) and proj.engine.exists(POSTERIORS)
    runs = proj.engine.table("_passerelle_runs")
    step = proj.engine.to_arrow(runs.filter(
        (runs.run_id == result.run_id) & (runs.step == "personalise"))).to_pylist()
    assert step and step[0]["status"] == "ok" and "6 people" in step[0]["message"]
    assert decide(open_store(proj), "P1", "home_banner", WEB, now=NOW).ranking == "learned"
    proj.close()


def test_validate_reports_offer_problems_file_by_file(tmp_path):
    write(tmp_path, {**FILES, "offers/bad.yml": """\
        placements: [home_banner]
        consent: none
        fields: [frist_name]
        content: {title: "{{ frist_name }}"}
        """, "offers/broken.yml": "placements: [home_banner\n"})
    definition, problems = read_project(tmp_path)
    assert not problems.errors  # offers never stop the rest of the project
    found = {(p.file, p.line, p.message) for p in definition.leaf_problems}
    assert ("offers/bad.yml", 3, "'frist_name' is not a field of the golden record") in found
    assert any(f == "offers/broken.yml" for f, _, _ in found)
    skipped = {(s.kind, s.name, s.file) for s in definition.skipped}
    assert skipped == {("offer", "bad", "offers/bad.yml"),
                       ("offer", "broken", "offers/broken.yml")}


def test_csv_export_carries_the_batch_decisions_offer(tmp_path):
    from passerelle.personalize.batch import decide_batch
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
        "offers/news_shoes.yml": """\
            placements: [newsletter_hero]
            consent: email
            eligibility: {segment: shoe_lovers}
            content: {subject: Shoes}
            """})
    service.refresh(proj)  # the audience: P1, P2, P6 (P1 loves shoes)
    dest = parse_destination({"type": "csv", "format": "generic", "path": "out.csv"})
    export_csv(proj.engine, "newsletter", dest, root=tmp_path)
    with (tmp_path / "out.csv").open() as f:
        assert "offer" not in next(csv.reader(f))  # no batch decision yet: no column
    decide_batch(proj, "newsletter_hero", "newsletter", {"channel": "email"}, now=NOW)
    (tmp_path / "out.csv").unlink()
    export_csv(proj.engine, "newsletter", dest, root=tmp_path)
    with (tmp_path / "out.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert {r["person_id"]: r["offer"] for r in rows} == {"P1": "news_shoes", "P2": "",
                                                          "P6": ""}
    proj.close()


def test_redis_is_configured_in_passerelle_yml(tmp_path, prefix):
    proj = make_project(tmp_path, {"passerelle.yml": f"""\
        name: shop
        timezone: Europe/Paris
        personalisation: {{redis_url: "{REDIS}", redis_prefix: "{prefix}"}}
        """})
    assert proj.config.personalisation.redis == REDIS
    assert refresh(proj, now=NOW).redis
    store = open_store(proj)
    assert store.kind == "redis"
    assert [m.offer for m in decide(store, "P1", "home_banner", WEB, now=NOW).messages] == [
        "shoes", "paris_store"]
    assert redis.Redis.from_url(REDIS).get(f"{prefix}gen") is not None
    proj.close()
    write(tmp_path, {"passerelle.yml": "name: shop\npersonalisation: {redis_url: localhost}\n"})
    _, problems = read_project(tmp_path)
    assert any("redis://" in p.message for p in problems.errors)
