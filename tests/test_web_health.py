"""Data health pages for IT on the shared demo: jobs and runs with their steps, the check
history, tracking-plan violations, and the preview of a candidate identity.yml."""

from __future__ import annotations

import re
from datetime import datetime

import pyarrow as pa
import pytest

import passerelle
from passerelle.governance import jobs
from web_helpers import (
    IT_ADMIN,
    MARKETER,
    add_web_users,
    csrf_of,
    served_project,
    signed_in,
)

PAGES = ["/health/jobs", "/health/checks", "/health/violations", "/health/identity"]


@pytest.fixture(scope="module")
def health_app(demo_copy):
    add_web_users(demo_copy.project_dir)
    with served_project(demo_copy.project_dir) as (_, app):
        yield app


def test_a_marketer_reaches_no_health_page(health_app):
    c = signed_in(health_app, MARKETER)
    for page in PAGES:
        assert c.get(page).status_code == 403, page
    token = csrf_of(c.get("/").text)
    assert c.post("/health/identity", data={"csrf_token": token,
                                            "candidate": "keys: []\n"}).status_code == 403


def test_jobs_with_their_progress_and_runs_with_their_steps(health_app):
    db = health_app.state.app_db
    job = jobs.enqueue(db, "segment_refresh", {}, "user:1")
    jobs.progress(db, job, step="segments", fraction=0.4)
    page = signed_in(health_app, IT_ADMIN).get("/health/jobs").text
    row = re.search(rf'id="job-{job}">(.*?)</tr>', page, re.S).group(1)
    assert 'value="0.4"' in row and "40\xa0%" in row and "segment_refresh" in row
    project = health_app.state.web_project
    last = project.status(1)[0]["run_id"]
    run = re.search(rf'id="run-{last}">(.*?)</details>', page, re.S).group(1)
    steps = {r["step"] for r in project.status(200) if r["run_id"] == last} - {"run"}
    assert steps and all(f'<th scope="row">{s}</th>' in run for s in steps)


def test_check_history_has_one_row_per_check_and_one_column_per_run(health_app):
    from passerelle.staging.checks import RESULTS_TABLE

    engine = health_app.state.web_project.engine
    r = engine.table(RESULTS_TABLE)
    names = set(r.name.execute())
    page = signed_in(health_app, IT_ADMIN).get("/health/checks").text
    assert names and {n for n in names if f'id="check-{n}"' in page} == names
    runs = r.run_id.nunique().execute()
    header = re.search(r"<thead>(.*?)</thead>", page, re.S).group(1)
    assert header.count('class="num"') == min(runs, 10)


def test_tracking_plan_violations_are_listed_by_rule(health_app):
    from passerelle.collect.loader import VIOLATIONS_SCHEMA
    from passerelle.collect.plan import VIOLATIONS_TABLE

    c = signed_in(health_app, IT_ADMIN)
    engine = health_app.state.web_project.engine
    if not engine.exists(VIOLATIONS_TABLE):
        assert "Aucun écart au plan de marquage." in c.get("/health/violations").text
        engine.create_empty(VIOLATIONS_TABLE, VIOLATIONS_SCHEMA)
    rows = pa.table({"source": ["web"] * 3, "message_id": ["m1", "m2", "m3"],
                     "event": ["Order Completed"] * 3, "rule": ["required"] * 3,
                     "field": ["revenue"] * 3, "message": ["'revenue' is required"] * 3,
                     "received_at": [datetime(2026, 2, 1, 10)] * 3, "_load_id": ["l"] * 3})
    engine.append_arrow(VIOLATIONS_TABLE, rows.to_reader())
    page = c.get("/health/violations").text
    row = re.search(r"<tr><th scope=\"row\">web</th>(.*?)</tr>", page, re.S).group(1)
    assert "<code>required</code>" in row and '<td class="num">3</td>' in row


def test_an_identity_rule_change_is_previewed_and_nothing_changes(health_app):
    project = health_app.state.web_project
    root = project.root
    identity = (root / "identity.yml").read_text()
    persons = project.engine.table("person_map").person_id.nunique().execute()
    c = signed_in(health_app, IT_ADMIN)
    page = c.get("/health/identity").text
    assert "max_names: 2" in page  # starts from today's rules
    token = csrf_of(page)
    r = c.post("/health/identity", data={"csrf_token": token, "candidate": identity})
    assert r.status_code == 200
    fmt = passerelle.formatting.for_config(project.config)
    assert f'id="persons-now">{fmt.integer(persons)}<' in r.text
    assert f'id="persons-after">{fmt.integer(persons)}<' in r.text  # same rules, same people
    fewer = "keys:\n  - field: loyalty_card\n    max_names: null\nprobabilistic:\n" \
            "  enabled: false\n"
    r = c.post("/health/identity", data={"csrf_token": token, "candidate": fewer})
    after = int(re.search(r'id="persons-after">([\d\u202f\xa0 ]+)<', r.text).group(1)
                .replace("\u202f", "").replace("\xa0", "").replace(" ", ""))
    assert after > persons and "Exemples de séparations" in r.text
    assert (root / "identity.yml").read_text() == identity
    assert project.engine.table("person_map").person_id.nunique().execute() == persons
    r = c.post("/health/identity", data={"csrf_token": token, "candidate": "keys: [\n"})
    assert r.status_code == 400 and 'role="alert"' in r.text
    r = c.post("/health/identity", data={"csrf_token": "forged", "candidate": identity})
    assert r.status_code == 403
