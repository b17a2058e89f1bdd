"""What an outsider sends to the server: control characters, filters and segments nested to
break the parser, unknown Host headers, a public bind address. Each is refused at the edge in
the one JSON error shape, naming what to fix; an unexpected failure is a JSON 500."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from fastapi.testclient import TestClient

import passerelle
from api_helpers import authorize, tiny_project, write_tiny_project
from passerelle.api import create_server

NUL = "\x00"
DEEP_WHERE = "(" * 60 + "channel = 'web'" + ")" * 60
HUGE_OR = " OR ".join(["a=1"] * 500)  # 500 terms within the 4000 characters a filter may have


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    proj = tiny_project(tmp_path_factory.mktemp("edges") / "project")
    yield proj
    proj.close()


@pytest.fixture(scope="module")
def client(project):
    app = create_server(project, loader=False)

    @app.get("/api/test-only/boom", include_in_schema=False)
    def boom() -> dict:
        raise RuntimeError("a bug")

    with TestClient(app, base_url="http://localhost", raise_server_exceptions=False) as c:
        yield authorize(c, project)


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "from passerelle.cli import main; main()", *args],
        capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "200"})


def error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["success"] is False and body["code"] == code, body
    return body


NUL_REQUESTS = [
    ("get", "/api/persons", {"params": {"q": f"marie{NUL}"}}, "query.q"),
    ("get", "/api/persons/P1%00", {}, "path.query"),
    ("post", "/api/identity/pins", {"json": {"kind": "merge", "records": [f"crm:C1{NUL}",
                                                                           "crm:C2"],
                                             "reason": "checked"}}, "body.records.0"),
    ("get", "/api/identity/why", {"params": {"a": "crm:C1", "b": f"crm:C2{NUL}"}}, "query.b"),
    ("get", "/api/incrementality", {"params": {"audience": f"x{NUL}"}}, "query.audience.0"),
    ("post", "/api/privacy/access", {"json": {"subject": f"a{NUL}@b.fr"}}, "body.subject"),
    ("post", "/api/privacy/erasure", {"json": {"subject": "a@b.fr",
                                               "reason": f"art. 17{NUL}"}}, "body.reason"),
    ("post", "/api/metrics/query", {"json": {"metrics": ["revenue"],
                                             "where": f"channel = 'w{NUL}'"}}, "body.where"),
    ("post", "/api/metrics/query", {"json": {"metrics": [f"revenue{NUL}"]}}, "body.metrics.0"),
    ("get", "/api/segments/in%00france/count", {}, "path.name"),
    ("delete", "/api/identity/pins/p%00", {}, "path.pin_id"),
]


@pytest.mark.parametrize(("method", "url", "kwargs", "field"), NUL_REQUESTS,
                         ids=[f"{m} {u} {f}" for m, u, _, f in NUL_REQUESTS])
def test_a_nul_byte_is_refused_naming_the_field(client, method, url, kwargs, field):
    body = error(getattr(client, method)(url, **kwargs), 422, "invalid_request")
    assert body["message"].startswith(f"{field}: ") and "U+0000" in body["message"]


def test_overlong_input_is_refused(client):
    body = error(client.get("/api/persons", params={"q": "x" * 501}), 422, "invalid_request")
    assert body["message"].startswith("query.q: ")


@pytest.mark.parametrize(("where", "why"), [(DEEP_WHERE, "nested 60 deep"),
                                            (HUGE_OR, "999 operators")])
def test_deep_or_huge_metric_filters_are_refused(client, project, where, why):
    body = error(client.post("/api/metrics/query", json={"metrics": ["revenue"],
                                                         "where": where}),
                 422, "invalid_request")
    assert body["message"].startswith("body.where: ") and why in body["message"]
    run = cli("metrics", "query", "revenue", "--where", where, "-p", str(project.root))
    assert run.returncode == 1, run.stdout + run.stderr
    assert why in run.stderr and "Traceback" not in run.stderr


def test_filters_within_the_limits_still_answer(client):
    wide = " OR ".join(["channel = 'web'"] * 100)
    answer = client.post("/api/metrics/query", json={"metrics": ["revenue"], "where": wide})
    assert answer.status_code == 200, answer.text
    assert answer.json()["rows"] == [{"revenue": 65.0}]


def test_a_type_mismatch_in_a_filter_is_the_users_to_fix(client):
    body = error(client.post("/api/metrics/query", json={
        "metrics": ["revenue"], "where": "channel = channel = channel"}), 400, "bad_request")
    assert "types do not fit" in body["message"]


def test_an_unexpected_error_answers_json(client):
    body = error(client.get("/api/test-only/boom"), 500, "internal_error")
    assert "RuntimeError" in body["message"] and "a bug" not in body["message"]


def test_a_deeply_nested_segment_is_a_located_validation_error(tmp_path):
    root = write_tiny_project(tmp_path / "p")
    lines = ["description: deep", "owner: me", "where:"]
    lines += ["  " * (i + 1) + "not:" for i in range(200)]
    lines += ["  " * 201 + "field: country", "  " * 201 + "op: '='", "  " * 201 + "value: FR"]
    (root / "segments" / "deep.yml").write_text("\n".join(lines) + "\n")
    run = cli("validate", "--offline", "-p", str(root))
    assert run.returncode == 1, run.stdout + run.stderr
    out = run.stdout + run.stderr
    assert "segments/deep.yml:3: where: conditions are nested 200 deep" in out
    assert "Internal error" not in out


@pytest.mark.parametrize("host", ["localhost", "localhost:8080", "127.0.0.1:8080",
                                  "[::1]:8080", "cdp.example.fr", "a.shop.example.fr"])
def test_known_host_names_are_answered(tmp_path, host):
    root = write_tiny_project(tmp_path / "p", "server:\n  allowed_hosts: [cdp.example.fr, "
                                              "'*.shop.example.fr']\n")
    with passerelle.open(root) as proj, TestClient(create_server(proj, loader=False)) as c:
        assert c.get("/openapi.json", headers={"host": host}).status_code == 200


@pytest.mark.parametrize("host", ["evil.example", "localhost.evil.example", "", "127.0.0.2"])
def test_other_host_names_are_refused(client, host):
    body = error(client.get("/api/runs", headers={"host": host}), 400, "invalid_host")
    assert "allowed_hosts" in body["instruction"]
    error(client.post("/v1/track", headers={"host": host}, json={}), 400, "invalid_host")


def test_a_wildcard_for_every_host_is_a_project_error(tmp_path):
    root = write_tiny_project(tmp_path / "p", "server:\n  allowed_hosts: ['*']\n")
    run = cli("validate", "--offline", "-p", str(root))
    assert run.returncode == 1 and "passerelle.yml" in run.stdout + run.stderr


def test_serving_beyond_this_machine_warns_about_tls_and_a_missing_account(project):
    from passerelle.api.hosts import bind_warnings
    from passerelle.governance.db import open_app_db
    from passerelle.governance.users import add_user

    with open_app_db(project) as db:
        assert bind_warnings("127.0.0.1", db) == [] and bind_warnings("::1", db) == []
        for address in ("0.0.0.0", "::", "192.0.2.10"):
            first, *others = bind_warnings(address, db)
            assert f"Listening on {address}" in first and "TLS" in first
            assert "trusted_proxies" in first
            assert len(others) == 1 and "users add" in others[0]
        add_user(db, "it@shop.example.fr", "it_admin", "correct horse battery",
                 ("cli", "tests"))
        assert len(bind_warnings("0.0.0.0", db)) == 1  # TLS reminder only


@pytest.mark.parametrize("trusted", [True, False])
def test_cookies_are_secure_behind_a_trusted_https_proxy_only(tmp_path, trusted):
    import threading

    import httpx
    import uvicorn

    from collect_helpers import free_port
    from passerelle.api.app import forwarding
    from passerelle.governance.db import open_app_db
    from passerelle.governance.users import add_user

    extra = "server:\n  trusted_proxies: [127.0.0.1]\n" if trusted else ""
    root = write_tiny_project(tmp_path / "p", extra)
    with passerelle.open(root) as project:
        with open_app_db(project) as db:
            add_user(db, "proxy@example.fr", "analyst", "correct horse battery", ("cli", "t"))
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(
            create_server(project, loader=False, worker=False), host="127.0.0.1", port=port,
            log_level="warning", **forwarding(project)))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        try:
            while not server.started:
                time.sleep(0.05)
            answer = httpx.post(f"http://127.0.0.1:{port}/api/session", json={
                "email": "proxy@example.fr", "password": "correct horse battery"},
                headers={"X-Forwarded-Proto": "https"})
        finally:
            server.should_exit = True
            thread.join(timeout=30)
    assert answer.status_code == 200, answer.text
    assert ("; secure" in answer.headers["set-cookie"].lower()) is trusted
