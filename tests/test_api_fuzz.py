"""Fuzzing (hypothesis) with SQL-injection and path-traversal payloads: the metric filter
language, person search and lookup, segment and experiment names over the API, and the
segment language compiled on the warehouse.

What must hold, whatever the input: a 4xx answers in the JSON error shape (or a plain
answer with nothing found), never a 500; no statement of the payload runs (a canary table
survives, no table ``pwned`` appears); no file outside the project is opened (a canary
file beside the project is watched with an audit hook)."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

import ibis
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

import passerelle
from api_helpers import authorize, tiny_project
from passerelle.api import create_server
from passerelle.errors import PasserelleError

SQL = ["' OR '1'='1", "'; DROP TABLE canary; --", "1; CREATE TABLE pwned AS SELECT 1",
       "x') UNION SELECT email FROM profiles --", "\" OR 1=1 --", "country = 'FR'; DELETE "
       "FROM profiles", "read_csv('/etc/passwd')", "(SELECT 1)", "1 OR sleep(5)",
       "COPY profiles TO '/tmp/out.csv'", "$$; DROP TABLE canary; $$", "' || (SELECT 1) || '",
       "getvariable('x')", "ATTACH '/tmp/x.db' AS x", "pragma database_list"]
PATHS = ["../secret.txt", "../../secret.txt", "..%2Fsecret.txt", "%2e%2e/secret.txt",
         "/etc/passwd", "....//secret.txt", "..\\secret.txt", "file:///etc/passwd",
         "~/.ssh/id_rsa", "segments/../../secret.txt"]
PAYLOAD = st.one_of(st.sampled_from(SQL + PATHS),
                    st.tuples(st.sampled_from(SQL + PATHS), st.text(max_size=20))
                    .map(lambda t: t[0] + t[1]),
                    st.text(max_size=40))
FUZZ = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))
OPENED: list[str] = []
WATCH: dict[str, str] = {}


def _audit(event: str, args: tuple) -> None:
    if event == "open" and WATCH and args and isinstance(args[0], str | bytes | Path):
        path = str(args[0] if not isinstance(args[0], bytes) else args[0].decode(
            "utf-8", "replace"))
        if "secret.txt" in path or path.startswith(("/etc/", "/root/.ssh")):
            OPENED.append(path)


sys.addaudithook(_audit)  # audit hooks stay for the process: it only records while WATCHed


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    base = tmp_path_factory.mktemp("fuzz")
    (base / "secret.txt").write_text("TOP-SECRET-CANARY")
    project = tiny_project(base / "project")
    project.engine.replace_table("canary", ibis.memtable({"answer": [42]}))
    app = create_server(project, loader=False, worker=False)
    with TestClient(app, base_url="http://localhost", raise_server_exceptions=False) as c:
        authorize(c, project)
        WATCH["on"] = "yes"
        yield {"client": c, "project": project}
        WATCH.clear()
    app.state.web_project.close()
    app.state.app_db.close()
    project.close()


def answered_safely(response) -> None:
    assert response.status_code < 500, response.text
    assert "TOP-SECRET-CANARY" not in response.text and "root:x:" not in response.text
    if response.status_code >= 400:
        body = response.json()
        assert body["success"] is False and body["code"] and body["message"], body


def untouched(project) -> None:
    engine = project.engine
    assert engine.to_arrow(engine.table("canary").answer.sum()).as_py() == 42
    assert not engine.exists("pwned")
    assert OPENED == [], OPENED


@FUZZ
@given(where=PAYLOAD)
def test_metric_filters(world, where):
    client = world["client"]
    answered_safely(client.post("/api/metrics/query", json={
        "metrics": ["revenue"], "group_by": ["channel"], "where": where}))
    answered_safely(client.post("/api/metrics/query", json={
        "metrics": ["revenue"], "where": f"channel = '{where}'"}))
    answered_safely(client.post("/api/metrics/query", json={
        "metrics": [where], "group_by": [where], "order_by": [where]}))
    untouched(world["project"])


@FUZZ
@given(text=PAYLOAD)
def test_search_and_lookup(world, text):
    client = world["client"]
    found = client.get("/api/persons", params={"q": text})
    answered_safely(found)
    if found.status_code == 200:
        assert found.json() == [] or all(set(p) == {"person_id", "matched_by", "nodes"}
                                          for p in found.json())
    answered_safely(client.get("/api/persons/" + _segment(text)))
    answered_safely(client.get("/api/identity/why", params={"a": text, "b": "crm:C1"}))
    untouched(world["project"])


@FUZZ
@given(name=PAYLOAD)
def test_names_in_paths(world, name):
    client = world["client"]
    for path in ("/api/segments/{}/count", "/api/segments/{}/sample",
                 "/api/experiments/{}"):
        answered_safely(client.get(path.format(_segment(name))))
    answered_safely(client.get("/api/segments/overlap/", params={"names": [name, name]}))
    answered_safely(client.get("/api/exports", params={"audience": name}))
    untouched(world["project"])


def _segment(text: str) -> str:
    from urllib.parse import quote

    return quote(text, safe="") or "x"


def _condition(draw_field: str, value: str) -> list[dict]:
    return [{"field": draw_field, "op": "=", "value": value},
            {"field": "country", "op": "in", "value": [value, "FR"]},
            {"field": "email", "op": "contains", "value": value},
            {"trait": draw_field, "op": ">=", "value": value},
            {"did": {"event": value, "at_least": 1, "in_last_days": 30,
                     "properties": {draw_field: value}}}]


@FUZZ
@given(field=PAYLOAD, value=PAYLOAD)
def test_the_segment_language(world, field, value):
    """Definitions as the web builder will send them: refused by the model or the compiler
    (a PasserelleError naming the problem), or counted; never run as SQL."""
    from passerelle.project.segments_models import SegmentConfig
    from passerelle.segments import compiler

    project = world["project"]
    for where in (*_condition(field, value), {"all": _condition(field, value)}):
        try:
            segment = SegmentConfig.model_validate({
                "name": "fuzzed", "description": "fuzz", "owner": "tests", "where": where})
        except ValidationError:
            continue
        try:
            people = compiler.count(project.engine, segment, None, datetime(2026, 3, 1))
        except PasserelleError as exc:
            assert exc.reason
            continue
        assert people >= 0
    untouched(project)


def test_the_payloads_reach_the_routes(world):
    """The fuzz is not vacuous: payloads are refused by the filter's checks (422 on the
    field, 400 from the parser), and a plain filter is answered."""
    client = world["client"]
    refused = client.post("/api/metrics/query", json={"metrics": ["revenue"],
                                                      "where": SQL[1]})
    assert refused.status_code == 422 and refused.json()["code"] == "invalid_request"
    concat = client.post("/api/metrics/query", json={"metrics": ["revenue"],
                                                     "where": "' || (SELECT 1) || '"})
    assert concat.status_code == 400 and concat.json()["code"] == "bad_request"
    fine = client.post("/api/metrics/query", json={"metrics": ["revenue"],
                                                   "where": "channel = 'web'"})
    assert fine.status_code == 200 and fine.json()["rows"] == [{"revenue": 65.0}]
    traversal = client.get("/api/segments/..%2F..%2Fsecret.txt/count")
    assert traversal.status_code == 404 and traversal.json()["code"] == "not_found"
    assert passerelle  # the package under test
