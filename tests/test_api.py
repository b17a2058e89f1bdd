"""The REST API on the demo: the same verbs as the CLI, one JSON error shape everywhere."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

import passerelle
from api_helpers import authorize
from passerelle.api import create_server

ERROR_KEYS = {"success", "code", "message"}


@pytest.fixture(scope="module")
def client(demo_copy):
    project = passerelle.open(demo_copy.project_dir)
    with TestClient(create_server(project, loader=False),
                    base_url="http://localhost") as test_client:
        yield authorize(test_client, project)
    project.close()


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) >= ERROR_KEYS and body["success"] is False and body["code"] == code
    return body


def test_find_and_view_a_person(client):
    persons = client.get("/api/persons", params={"q": "crm_contacts:CRM-000001"}).json()
    assert len(persons) == 1
    person_id = persons[0]["person_id"]
    view = client.get(f"/api/persons/{person_id}").json()
    assert view["person_id"] == person_id and view["masked"] is True
    plain = client.get(f"/api/persons/{person_id}", params={"mask": False}).json()
    assert plain["masked"] is False


def test_pins_through_the_api(client):
    persons = client.get("/api/persons", params={"q": "crm_contacts:CRM-000002"}).json()
    others = client.get("/api/persons", params={"q": "crm_contacts:CRM-000003"}).json()
    a, b = persons[0]["nodes"][0], others[0]["nodes"][0]
    created = client.post("/api/identity/pins", json={
        "kind": "merge", "records": [a, b], "reason": "same customer, checked by phone"})
    assert created.status_code == 201
    pin_id = created.json()["pin_id"]
    assert pin_id in {p["pin_id"] for p in client.get("/api/identity/pins").json()}
    body = assert_error(client.post("/api/identity/pins", json={
        "kind": "split", "records": [a, b], "reason": "contradiction"}), 400, "bad_request")
    assert pin_id in body["message"]
    assert client.delete(f"/api/identity/pins/{pin_id}").json()["success"] is True


def test_metrics_and_glossary(client):
    answer = client.post("/api/metrics/query", json={
        "metrics": ["revenue", "orders"], "group_by": ["channel"]}).json()
    assert answer["columns"] == ["channel", "revenue", "orders"]
    assert {r["channel"] for r in answer["rows"]} >= {"store"}
    # amounts are JSON numbers, not strings ("1013627.20")
    assert all(isinstance(r["revenue"], float | int) for r in answer["rows"])
    names = {e["name"]: e["kind"] for e in client.get("/api/glossary").json()}
    assert names["revenue"] == "metric" and names["clv"] == "trait"


def test_segments_exports_and_experiments(client):
    status = {s["segment"]: s for s in client.get("/api/segments").json()}
    assert {"best_customers", "lapsed_home_buyers"} <= set(status)
    live = client.get("/api/segments/best_customers/count").json()["people"]
    assert live == status["best_customers"]["members"]
    sample = client.get("/api/segments/best_customers/sample", params={"n": 3}).json()
    assert len(sample) == min(3, live)
    clear = client.get("/api/segments/best_customers/sample",
                       params={"n": 3, "role": "it"}).json()
    assert [r["person_id"] for r in clear] == [r["person_id"] for r in sample]
    assert all("***" not in (r["email"] or "") for r in clear)
    assert all("***" in r["email"] for r in sample if r["email"])
    audiences = client.get("/api/audiences").json()
    assert audiences and all(not a["stale"] and a["built_at"] for a in audiences)
    overlap = client.get("/api/segments/overlap/", params={
        "names": ["best_customers", "lapsed_home_buyers"]})
    assert overlap.status_code == 200
    assert client.get("/api/exports").json() == []
    analysis = client.get("/api/experiments/checkout_express").json()
    assert analysis["verdict"] and analysis["srm"]["mismatch"] in (True, False)


def test_every_error_has_the_same_shape(client):
    assert_error(client.get("/api/persons/nobody@nowhere.example"), 404, "not_found")
    assert_error(client.get("/api/persons/P000000000000"), 404, "not_found")
    assert_error(client.get("/api/persons"), 422, "invalid_request")
    assert_error(client.post("/api/metrics/query", json={"metrics": ["nope"]}), 400,
                 "bad_request")
    assert_error(client.post("/api/metrics/query", json={
        "metrics": ["revenue"], "where": "1; drop table orders"}), 400, "bad_request")
    assert_error(client.post("/api/identity/pins", json={"kind": "merge"}), 422,
                 "invalid_request")
    assert_error(client.get("/api/no-such-route"), 404, "not_found")
    assert_error(client.get("/api/segments/nope/count"), 404, "not_found")
    # the CLI's word "by" is not the API's "group_by": refused, not silently ignored
    assert_error(client.post("/api/metrics/query", json={"metrics": ["revenue"],
                                                         "by": ["channel"]}), 422,
                 "invalid_request")
    assert_error(client.get("/api/experiments/nope"), 400, "bad_request")
    assert_error(client.delete("/api/identity/pins/pin-unknown"), 400, "bad_request")
    # the collector answers in the same shape
    assert_error(client.post("/v1/track", json={"event": "x", "userId": "u"}), 401,
                 "invalid_write_key")


def test_openapi_is_published(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/track", "/v1/batch", "/api/persons/{query}", "/api/metrics/query"} <= set(paths)
