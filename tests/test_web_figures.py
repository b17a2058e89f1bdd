"""What the pages read is prepared by the run (issue 17, page speed at 1M profiles), on a
copy of the shared demo: the stored figures are those computed on demand, pages say as of
when, a missing or stale figure is computed by a job with a progress bar; each person's
orders and events are read from tables sorted by person id, with the same rows as the scan,
and only while they are those of the data."""

from __future__ import annotations

import re

import ibis
import pytest

from figures_helpers import same, stored_differ
from passerelle.errors import PasserelleError
from passerelle.figures import store
from passerelle.figures.compute import campaigns_key, compute, home_key, run_keys
from passerelle.governance import jobs as queue
from passerelle.identity import lookups, service
from passerelle.identity.view import person_view
from passerelle.web.cache import same_tables
from passerelle.web.data import ledger_of
from web_demo_helpers import MARKETER, served_demo, signed_in, text_of


@pytest.fixture(scope="module")
def demo(demo_copy):
    with served_demo(demo_copy.project_dir) as (project, app):
        yield project, app, demo_copy.project_dir


def customers_tile(html: str) -> int:
    tile = html[html.index('id="tile-customers"'):]
    figure = re.search(r'<p class="figure">([^<]+)</p>', tile[:tile.index("</li>")])
    return int(re.sub(r"\D", "", text_of(figure.group(1))))


def run_jobs(app) -> list[int]:
    db, done = app.state.app_db, []
    while (job := queue.claim(db)) is not None:  # the server's worker, run here
        app.state.worker.run(job)
        done.append(job["job_id"])
    return done


def test_the_run_stores_the_figures_computed_on_demand(demo):
    project, _, _ = demo
    keys = run_keys(project)
    assert {"home", "campaigns/results/14", "campaigns/holdouts/14",
            "campaigns/attribution/14"} <= set(keys)
    assert any(k.startswith("experiment/") for k in keys)
    assert stored_differ(project) == []


def test_encoding_gives_back_the_values(demo):
    from datetime import date, datetime
    from decimal import Decimal

    value = {"at": datetime(2026, 1, 2, 3, 4, 5, 6), "d": date(2026, 1, 2),
             "x": Decimal("1.50"), "t": (1, "a"), "n": [None, 1.5, {"k": 2}],
             "e": PasserelleError("why", "what to do"), "__t": "not a tag", 3: "int key"}
    back = store.decode(store.encode(value))
    err = back.pop("e")
    assert (err.reason, err.instruction) == ("why", "what to do")
    del value["e"]
    assert back == value


def test_pages_read_the_stored_figures_and_say_as_of_when(demo):
    project, app, _ = demo
    client = signed_in(app, MARKETER)
    page = client.get("/")
    tiles, _ = store.read(project.engine, home_key()).value
    assert customers_tile(page.text) == next(t["value"] for t in tiles if t["key"] ==
                                             "customers")
    assert 'class="muted as-of"' in page.text and "<progress" not in page.text
    section = client.get("/campaigns/sections/results", params={"window": 14}).text
    assert 'id="results-table"' in section and 'class="muted as-of"' in section
    assert not queue.recent(app.state.app_db, 10, status="queued")


def test_a_missing_figure_is_computed_by_a_job_with_a_progress_bar(demo):
    project, app, _ = demo
    client = signed_in(app, MARKETER)
    assert store.read(project.engine, campaigns_key("results", 7)) is None
    waiting = client.get("/campaigns/sections/results", params={"window": 7}).text
    assert "<progress" in waiting and 'id="results-table"' not in waiting
    again = client.get("/campaigns/sections/results", params={"window": 7}).text
    jobs = queue.recent(app.state.app_db, 10, status="queued")
    assert len(jobs) == 1 and jobs[0]["params"] == {"keys": ["campaigns/results/7"]}
    assert f'hx-get="/jobs/{jobs[0]["job_id"]}?reload=1"' in again  # the same job, once
    assert run_jobs(app) == [jobs[0]["job_id"]]
    done = client.get(f"/jobs/{jobs[0]['job_id']}?reload=1", headers={"hx-request": "true"})
    assert done.headers.get("HX-Refresh") == "true"  # the waiting page shows its figures
    shown = client.get("/campaigns/sections/results", params={"window": 7}).text
    assert 'id="results-table"' in shown and "<progress" not in shown
    assert same(store.read(project.engine, campaigns_key("results", 7)).value,
                compute(project, campaigns_key("results", 7)))


def test_figures_of_older_data_are_shown_saying_so_then_computed_afresh(demo):
    project, app, root = demo
    client = signed_in(app, MARKETER)
    before = customers_tile(client.get("/").text)
    # A new contact loaded by a run that stops before its last steps (as if it crashed):
    # the stored tiles are those of the data before it.
    contacts = root / "data" / "crm_contacts.csv"
    with contacts.open("a", encoding="utf-8") as f:
        f.write("CRM-999999,Zéphyrine,Cachebuster,zephyrine.cachebuster@example.org,,,"
                "1 rue Neuve,,75001,Paris,FR,true,false,2026-01-01T00:00:00,"
                "2026-01-01T00:00:00\n")
    stored = store.read(project.engine, home_key())
    result = project.run()
    assert result.ok, [e.reason for e in result.errors]
    store.write(project.engine, {home_key(): stored.value}, stored.run_id, "older data")
    page = client.get("/")
    assert customers_tile(page.text) == before
    assert "the data changed since" in text_of(page.text) or "ont changé depuis" in text_of(
        page.text)
    assert "<progress" in page.text
    run_jobs(app)
    assert customers_tile(client.get("/").text) == before + 1
    # and a run's own last step stores them current: a second run leaves nothing to do
    assert project.run().ok
    assert store.read(project.engine, home_key()).current


def test_the_view_reads_the_sorted_tables_with_the_rows_the_scan_finds(demo, monkeypatch):
    project, _, _ = demo
    engine = project.engine
    assert lookups.current(engine)
    o, e = engine.table(lookups.PERSON_ORDERS), engine.table(lookups.PERSON_EVENTS)
    people = sorted(set(engine.to_arrow(o.select("person_id").distinct().order_by(
        "person_id").limit(15)).column(0).to_pylist()) | set(engine.to_arrow(
        e.select("person_id").distinct().order_by("person_id").limit(15)).column(0)
        .to_pylist()))
    assert len(people) >= 15
    sources = {k: service.customer_sources(project.definition, k) for k in ("orders",
                                                                            "events")}

    def views() -> list[dict]:
        with same_tables(engine):
            out = [person_view(engine, p, orders_sources=sources["orders"],
                               events_sources=sources["events"]) for p in people]
            for v in out:  # and the identity ledger's entries about their records
                v["ledger"] = ledger_of(project, [r["node"] for r in v["records"]])
            return out

    assert engine.exists(lookups.PERSON_RECORDS) and engine.exists(lookups.LEDGER_NODES)
    sorted_views = views()
    monkeypatch.setattr(lookups, "current", lambda engine: False)
    scanned = views()
    assert any(v["ledger"] for v in scanned)
    def entries(v: dict) -> list[str]:  # entries of one instant come in either order
        return sorted(map(repr, v["ledger"]))

    assert [entries(v) for v in sorted_views] == [entries(v) for v in scanned]
    assert [v["records"] for v in sorted_views] == [v["records"] for v in scanned]
    assert any(v["orders"]["total"] for v in scanned) and any(v["events"]["total"]
                                                              for v in scanned)
    for a, b in zip(sorted_views, scanned, strict=True):
        assert (a["orders"]["total"], a["orders"]["amount"]) == (
            b["orders"]["total"], pytest.approx(b["orders"]["amount"]))
        assert a["events"]["total"] == b["events"]["total"]
        key = lambda r: sorted((k, str(v)) for k, v in r.items())  # noqa: E731
        assert sorted(map(key, a["orders"]["recent"])) == sorted(map(key, b["orders"]["recent"]))
        assert sorted(map(key, a["events"]["recent"])) == sorted(map(key, b["events"]["recent"]))


def test_the_sorted_tables_are_used_only_while_they_are_those_of_the_data(demo):
    project, _, _ = demo
    engine = project.engine
    sources = [service.customer_sources(project.definition, k) for k in ("orders", "events")]
    assert lookups.current(engine)
    assert lookups.refresh(engine, *sources, "test-run") is None  # idempotent: nothing to do
    # one order gone (as retention would): the tables no longer say the data's truth
    staged = next(f"stg_{s.name}" for s in project.sources.values() if s.entity == "orders")
    first = engine.to_arrow(engine.table(staged).select("order_id").order_by(
        "order_id").limit(1)).column(0)[0].as_py()
    engine.delete_where_in(staged, "order_id", [first])  # `orders` is a view over them
    assert not lookups.current(engine)
    built = lookups.refresh(engine, *sources, "test-run")
    assert built and built[lookups.PERSON_ORDERS] > 0 and lookups.current(engine)
    o = engine.table(lookups.PERSON_ORDERS)
    assert engine.to_arrow(o.filter(o.order_id == first).count()).as_py() == 0


def test_same_tables_looks_each_table_up_once_within_a_page_then_lets_go(demo):
    _, app, _ = demo
    engine = app.state.web_project.engine
    with same_tables(engine):
        assert engine.exists("profiles") and not engine.exists("no_such_table")
        assert engine.table("profiles") is engine.table("profiles")
    assert "exists" not in vars(engine) and "table" not in vars(engine)
    assert engine.table("profiles") is not engine.table("profiles")  # the engine's own


def test_a_search_through_the_sorted_identifiers_finds_what_the_scan_finds(demo, monkeypatch):
    from passerelle.identity.view import find_persons

    project, _, _ = demo
    engine = project.engine
    assert lookups.current(engine)
    cr = engine.to_arrow(engine.table("customer_records").order_by("_record_id").limit(40)
                         ).to_pylist()
    pm = engine.to_arrow(engine.table("person_map").order_by("node").limit(3)).to_pylist()
    queries = [p["person_id"] for p in pm] + [p["node"] for p in pm] + ["nobody", "x@y.z"]
    for r in cr:
        queries += [str(r["_record_id"]), r.get("customer_id"), r.get("loyalty_card"),
                    (r.get("email") or "").upper(), r.get("phone"),
                    f"{r.get('last_name') or ''} {r.get('first_name') or ''}".lower()]
    if any(r.get("phone") for r in cr):  # a phone as people type it
        phone = next(r["phone"] for r in cr if r.get("phone"))
        queries.append(f"0{phone[3]} {phone[4:6]} {phone[6:8]} {phone[8:10]} {phone[10:]}")
    queries = [q for q in dict.fromkeys(queries) if q and q.strip()]
    region = project.config.default_region
    keyed = {q: find_persons(engine, q, 20, default_region=region) for q in queries}
    monkeypatch.setattr(lookups, "current", lambda engine: False)
    scanned = {q: find_persons(engine, q, 20, default_region=region) for q in queries}
    assert sum(1 for q in queries if scanned[q]) >= len(cr)  # most queries find someone
    assert keyed == scanned


def test_a_figure_that_fails_on_a_bug_is_stored_as_a_clear_error(demo, monkeypatch):
    from passerelle.figures import compute as figures
    from passerelle.reporter import SilentReporter

    project, app, _ = demo

    def broken(project, key):
        raise ZeroDivisionError("float division by zero")

    monkeypatch.setattr(figures, "compute", broken)
    done = figures.refresh(project, SilentReporter(), ["campaigns/attribution/3"])
    assert "ZeroDivisionError" in done["errors"]["campaigns/attribution/3"]
    monkeypatch.undo()
    page = signed_in(app, MARKETER).get("/campaigns/sections/attribution",
                                        params={"window": 3})
    assert page.status_code == 200 and "ZeroDivisionError" in page.text


def test_a_run_that_changed_nothing_skips_the_figures_and_keeps_them_current(demo,
                                                                            monkeypatch):
    from passerelle.figures import compute as figures

    project, _, _ = demo
    assert project.run().ok  # whatever the tests above changed, computed now
    computed = []
    real = figures.refresh
    monkeypatch.setattr(figures, "refresh", lambda *a, **k: computed.append(1) or real(*a, **k))
    again = project.run()
    assert again.ok and computed == []
    step = next(s for s in again.steps if s.step == "figures")
    assert step.status == "skipped" and "no data or definition change" in step.message
    assert stored_differ(project) == []  # still current: the run changed nothing
    # only the pages' steps: the same
    assert project.run(pages=True).ok and computed == []
    # a job's new holdout (a table outside runs) makes them stale: the next run computes
    engine = project.engine
    holdouts = engine.table("audience_holdouts")
    before = store.data_stamp(engine)[1]
    engine.con.insert("audience_holdouts", holdouts.limit(1))
    assert store.data_stamp(engine)[1] != before
    assert not store.read(engine, home_key()).current
    assert project.run().ok and computed == [1]
    assert stored_differ(project) == []


def test_the_sorted_tables_written_in_slices_are_those_written_whole(demo, monkeypatch):
    project, _, _ = demo
    engine = project.engine
    sources = [service.customer_sources(project.definition, k) for k in ("orders", "events")]
    lookups.refresh(engine, *sources, "test-run", full=True)
    whole = {t: engine.to_arrow(engine.table(t)) for t in (lookups.PERSON_ORDERS,
                                                           lookups.PERSON_EVENTS)}
    slice_rows = whole[lookups.PERSON_ORDERS].num_rows // 7 + 1
    monkeypatch.setattr(lookups, "SLICE_ROWS", slice_rows)
    assert len(lookups.slices(engine, engine.count("orders"), slice_rows)) >= 7
    lookups.refresh(engine, *sources, "test-run", full=True)
    assert lookups.current(engine)
    for name, table in whole.items():
        sliced = engine.to_arrow(engine.table(name))
        assert sliced.num_rows == table.num_rows
        # as stored: sorted by person id, slice after slice (what the zone maps need)
        assert engine._run(f'SELECT count(*) FROM (SELECT person_id, lag(person_id) OVER '
                           f'(ORDER BY rowid) AS prev FROM "{name}") WHERE prev > person_id'
                           ) == [(0,)]
        every = [(c, "ascending") for c in sliced.column_names]
        assert sliced.sort_by(every).equals(table.select(sliced.column_names).sort_by(every))


def stored_sorted(engine, table: str, column: str) -> bool:
    return engine._run(f'SELECT count(*) FROM (SELECT "{column}" AS v, lag("{column}") OVER '
                       f'(ORDER BY rowid) AS prev FROM "{table}") WHERE prev > v') == [(0,)]


def test_the_tables_the_pages_read_are_sorted_again_only_when_rewritten(demo):
    project, _, _ = demo
    engine = project.engine
    assert project.run().ok
    tables = [(t, c) for t, c in lookups.PAGE_TABLES if t in engine.base_tables()]
    assert {"profiles", "traits", "person_map", "identity_ledger"} <= {t for t, _ in tables}
    for table, column in tables:
        assert stored_sorted(engine, table, column), table
    assert lookups.sort_page_tables(engine) == {}  # nothing was rewritten
    for table, column in tables:
        assert engine.stored_sorted(table, column), table
    # a table rewritten in another order (as its step does) is sorted again, and only it
    traits = engine.table("traits")
    engine.replace_table("traits", traits.order_by(ibis.desc("person_id")))
    assert not stored_sorted(engine, "traits", "person_id")
    assert set(lookups.sort_page_tables(engine)) == {"traits"}
    assert stored_sorted(engine, "traits", "person_id")
    assert lookups.current(engine) and stored_differ(project) == []  # same rows
