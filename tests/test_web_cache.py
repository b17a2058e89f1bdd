"""The pages' cache (web/cache.py) on a copy of the shared demo: the home tiles and the
campaigns sections are computed once while the warehouse has no new run, and a new run
(``passerelle run``) makes the next page compute afresh: never stale data after a run."""

from __future__ import annotations

import re

import pytest

from passerelle.web import data
from passerelle.web.cache import page_cache, run_stamp, same_tables
from web_demo_helpers import MARKETER, served_demo, signed_in, text_of


@pytest.fixture(scope="module")
def demo(demo_copy):
    with served_demo(demo_copy.project_dir) as (project, app):
        yield project, app, demo_copy.project_dir


def customers_tile(html: str) -> int:
    tile = html[html.index('id="tile-customers"'):]
    figure = re.search(r'<p class="figure">([^<]+)</p>', tile[:tile.index("</li>")])
    return int(re.sub(r"\D", "", text_of(figure.group(1))))


def test_home_is_computed_once_then_afresh_after_a_new_run(demo, monkeypatch):
    project, app, root = demo
    calls = []
    compute = data.home_tiles
    monkeypatch.setattr(data, "home_tiles", lambda p: calls.append(1) or compute(p))
    cache = page_cache(app.state)
    cache.clear()
    cache.ttl_s = 3600  # only the run may refresh it here (a run can outlast the TTL)
    client = signed_in(app, MARKETER)
    before = customers_tile(client.get("/").text)
    assert customers_tile(client.get("/").text) == before
    assert len(calls) == 1  # the second page came from the cache

    # A new contact, then a run: the page shows one more customer, at once.
    stamp = run_stamp(app.state.web_project)
    contacts = root / "data" / "crm_contacts.csv"
    with contacts.open("a", encoding="utf-8") as f:
        f.write("CRM-999999,Zéphyrine,Cachebuster,zephyrine.cachebuster@example.org,,,"
                "1 rue Neuve,,75001,Paris,FR,true,false,2026-01-01T00:00:00,"
                "2026-01-01T00:00:00\n")
    result = project.run()
    assert result.ok, [e.reason for e in result.errors]
    assert run_stamp(app.state.web_project) != stamp
    assert customers_tile(client.get("/").text) == before + 1
    assert len(calls) == 2


def test_a_campaigns_section_is_kept_until_the_next_run(demo):
    _, app, _ = demo
    cache = page_cache(app.state)
    cache.clear()
    client = signed_in(app, MARKETER)
    page = client.get("/campaigns").text
    for section in ("holdouts", "results", "attribution"):  # placeholders, loaded by HTMX
        assert f'hx-get="/campaigns/sections/{section}?window=14"' in page
    assert page.count('aria-busy="true"') == 3
    first = client.get("/campaigns/sections/results", params={"window": 7}).text
    assert 'id="results-table"' in first and 'aria-busy="false"' in first
    assert ("campaigns", "results", 7) in cache._entries
    assert client.get("/campaigns/sections/results", params={"window": 7}).text == first
    assert client.get("/campaigns/sections/nothing").status_code == 422


def test_same_tables_looks_each_table_up_once_within_a_page_then_lets_go(demo):
    _, app, _ = demo
    engine = app.state.web_project.engine
    with same_tables(engine):
        assert engine.exists("profiles") and not engine.exists("no_such_table")
        assert engine.table("profiles") is engine.table("profiles")
    assert "exists" not in vars(engine) and "table" not in vars(engine)
    assert engine.table("profiles") is not engine.table("profiles")  # the engine's own


def test_a_profile_by_person_id_is_the_view_the_identity_service_gives(demo):
    from passerelle.identity import service

    project, app, _ = demo
    pm = project.engine.table("person_map")
    row = project.engine.to_arrow(pm.order_by("node").limit(1)).to_pylist()[0]
    web = app.state.web_project
    direct = data.person_profile(web, row["person_id"], True)
    assert direct == service.profile(project.definition, project.engine, row["person_id"],
                                     mask_pii=True)
    by_node = data.person_profile(web, row["node"], False)  # any identifier, as before
    assert by_node["person_id"] == row["person_id"]
    client = signed_in(app, MARKETER)
    assert client.get(f"/customers/{row['person_id']}").status_code == 200
    assert client.get("/customers/P000000000000").status_code == 404
