"""What a browser tag needs from `passerelle serve`: CORS on every /v1 answer (allowed origins
per write key), analytics-next's one-letter paths, and quiet logs when a client goes away."""

from __future__ import annotations

import logging
import socket
import threading
import time

import httpx
import orjson
import pytest
import uvicorn
import yaml
from fastapi.testclient import TestClient
from pydantic import ValidationError

import passerelle
from collect_helpers import KEY, auth, free_port, write_project
from passerelle.api import create_server
from passerelle.collect import create_app
from passerelle.project.models import CollectorConnector

SHOP, BLOG, EVIL = "https://shop.example.fr", "https://blog.example.fr", "https://evil.example"
BLOG_KEY = "wk_blog_456"
POST_PATHS = ["/v1/track", "/v1/identify", "/v1/page", "/v1/screen", "/v1/group", "/v1/alias",
              "/v1/batch", "/v1/import", "/v1/t", "/v1/i", "/v1/p", "/v1/s", "/v1/g", "/v1/a",
              "/v1/b", "/v1/m"]


def add_blog_source(root):
    """A second collector source, whose key only the blog's pages may use."""
    source = yaml.safe_load((root / "sources" / "web_tracking.yml").read_text())
    source["name"] = "blog_tracking"
    source["connector"].update(write_keys=[BLOG_KEY], allowed_origins=[BLOG + "/"],
                               spool={"type": "file", "path": "spool_blog"})
    (root / "sources" / "blog_tracking.yml").write_text(yaml.safe_dump(source))


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    root = write_project(tmp_path_factory.mktemp("cors") / "proj",
                         extra_connector={"allowed_origins": [SHOP]})
    add_blog_source(root)
    project = passerelle.open(root)
    with TestClient(create_server(project, loader=False),
                    base_url="http://localhost") as test_client:
        yield test_client
    project.close()


def post(client, path, body, origin=SHOP, key=KEY, **headers):
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    sent = {"Content-Type": "text/plain", **auth(key), **headers}
    if origin is not None:
        sent["Origin"] = origin
    return client.post(path, content=data, headers=sent)


def test_preflight_of_every_post_route(client):
    paths = client.get("/openapi.json").json()["paths"]
    schema_paths = set(paths)
    v1_posts = {p for p, ops in paths.items() if p.startswith("/v1/") and "post" in ops}
    assert v1_posts <= set(POST_PATHS)
    assert not {"/v1/t", "/v1/b", "/v1/m"} & schema_paths  # aliases stay out of the schema
    for path in POST_PATHS:
        for origin in (SHOP, BLOG):  # no key in a preflight: any origin of any source
            r = client.options(path, headers={"Origin": origin,
                                              "Access-Control-Request-Method": "POST",
                                              "Access-Control-Request-Headers":
                                              "authorization,content-type"})
            assert r.status_code == 204, (path, r.text)
            assert r.headers["access-control-allow-origin"] == origin
            assert r.headers["access-control-allow-methods"] == "POST"
            assert {"authorization", "content-type"} <= {
                h.strip() for h in r.headers["access-control-allow-headers"].split(",")}
            assert int(r.headers["access-control-max-age"]) > 0
    r = client.options("/v1/t", headers={"Origin": EVIL, "Access-Control-Request-Method": "POST"})
    assert r.status_code == 403 and r.json()["code"] == "origin_not_allowed"
    assert "access-control-allow-origin" not in r.headers


def cors_of(response, origin=SHOP):
    assert response.headers.get("access-control-allow-origin") == origin, response.headers
    assert "Origin" in response.headers["vary"]
    return response


def test_every_v1_answer_carries_the_origin(client):
    ok = cors_of(post(client, "/v1/track", {"userId": "u1", "event": "Viewed"}))
    assert ok.status_code == 200
    assert cors_of(post(client, "/v1/track", {"userId": "u1", "event": "x"},
                        key="nope")).status_code == 401
    assert cors_of(post(client, "/v1/track", b"{not json")).status_code == 400
    assert cors_of(post(client, "/v1/track", {"userId": "u1"})).json()["code"] == "missing_event"
    big = {"userId": "u1", "event": "x", "properties": {"a": "x" * 40_000}}
    assert cors_of(post(client, "/v1/t", big)).status_code == 413
    assert cors_of(client.get("/v1/health", headers={"Origin": SHOP})).status_code == 200
    assert cors_of(client.post("/v1/nowhere", headers={"Origin": SHOP})).status_code == 404
    # the write key in the body instead of the header: same rule
    r = client.post("/v1/track", headers={"Origin": BLOG}, content=orjson.dumps(
        {"writeKey": BLOG_KEY, "anonymousId": "a1", "event": "Read"}))
    assert cors_of(r, BLOG).status_code == 200


def test_origin_not_listed_for_the_write_key_is_refused(client):
    r = post(client, "/v1/track", {"userId": "u1", "event": "x"}, origin=BLOG)  # shop's key
    assert r.status_code == 403 and r.json()["code"] == "origin_not_allowed"
    assert "access-control-allow-origin" not in r.headers
    r = client.post("/v1/track", headers={"Origin": SHOP}, content=orjson.dumps(
        {"writeKey": BLOG_KEY, "anonymousId": "a1", "event": "Read"}))
    assert r.status_code == 403 and "access-control-allow-origin" not in r.headers
    # servers send no Origin: never refused for it
    assert post(client, "/v1/track", {"userId": "u1", "event": "x"}, origin=None).status_code \
        == 200


def test_no_cors_on_the_rest_api(client):
    r = client.options("/api/persons", headers={"Origin": SHOP,
                                               "Access-Control-Request-Method": "GET"})
    assert "access-control-allow-origin" not in r.headers


def test_one_letter_paths_are_the_full_routes(client):
    def code(path, body):
        return post(client, path, body).json().get("code")

    assert code("/v1/t", {"userId": "u"}) == "missing_event"
    assert code("/v1/g", {"userId": "u"}) == "missing_id"  # a group needs groupId
    assert code("/v1/a", {"userId": "u"}) == "missing_id"  # an alias needs previousId
    for path in ("/v1/t", "/v1/i", "/v1/p", "/v1/s"):
        assert post(client, path, {"userId": "u", "event": "e"}).json() == {"success": True}
    r = post(client, "/v1/b", {"batch": [{"type": "page", "anonymousId": "a"},
                                         {"type": "track", "userId": "u", "event": "e"}]})
    assert r.json() == {"success": True, "accepted": 2}


def test_tag_metrics_are_read_and_dropped(client):
    spools = client.app.state.collector.spools
    before = [s.backlog() for s in spools]
    metrics = {"series": [{"type": "Counter", "metric": "analytics_js.invoke", "value": 1,
                           "tags": {"method": "track"}}]}
    assert cors_of(client.post("/v1/m", content=orjson.dumps(metrics),
                               headers={"Origin": SHOP})).json() == {"success": True}
    assert client.post("/v1/m", content=b"x" * 40_000).status_code == 413
    assert [s.backlog() for s in spools] == before


def test_backpressure_reaches_the_page(tmp_path):
    root = write_project(tmp_path / "proj", extra_connector={"max_backlog": 1000})
    project = passerelle.open(root)
    with TestClient(create_server(project, loader=False),
                    base_url="http://localhost") as test_client:
        events = [{"type": "page", "anonymousId": f"a{i}"} for i in range(1001)]
        assert post(test_client, "/v1/b", {"batch": events}).status_code == 200
        r = cors_of(post(test_client, "/v1/t", {"userId": "u", "event": "e"}))
        assert r.status_code == 503 and r.headers["retry-after"]
        assert "Retry-After" in r.headers["access-control-expose-headers"]
    project.close()


def test_allowed_origins_must_be_origins():
    ok = CollectorConnector.model_validate(
        {"type": "collector", "write_keys": ["k"], "allowed_origins": ["HTTPS://Shop.fr/"]})
    assert ok.allowed_origins == ["https://shop.fr"]
    with pytest.raises(ValidationError, match="without a path"):
        CollectorConnector.model_validate(
            {"type": "collector", "write_keys": ["k"], "allowed_origins": ["https://a.fr/x"]})


def test_a_client_leaving_mid_request_is_one_debug_line(tmp_path, caplog):
    project = passerelle.open(write_project(tmp_path / "proj"))
    port = free_port()
    # no log_config: uvicorn's records reach the root logger, hence caplog
    server = uvicorn.Server(uvicorn.Config(create_app(project.root, project.sources,
                                                      loader=False),
                                           port=port, log_config=None, lifespan="on"))
    thread = threading.Thread(target=server.run)
    caplog.set_level(logging.DEBUG)
    thread.start()
    try:
        while not server.started:
            time.sleep(0.01)
        for _ in range(3):
            with socket.create_connection(("127.0.0.1", port)) as conn:
                conn.sendall(b"POST /v1/track HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                             + f"Authorization: {auth()['Authorization']}\r\n".encode()
                             + b"Content-Length: 1000\r\n\r\n{\"userId\": ")
                time.sleep(0.05)
        assert httpx.post(f"http://127.0.0.1:{port}/v1/track", headers=auth(),
                          json={"userId": "u", "event": "e"}).status_code == 200
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        project.close()
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.WARNING]
    gone = [r for r in caplog.records if "disconnected" in r.getMessage()]
    assert len(gone) == 3 and all(r.levelno == logging.DEBUG for r in gone)
