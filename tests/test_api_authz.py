"""The authorization matrix: every route of the server (the OpenAPI schema, and the web
pages) × every kind of caller, with the expected status in ONE table (TABLE). A route the
table does not list fails the test, so no route ships unprotected; so does a route whose
declared requirement (api/auth.py's registry) lets in a caller the table does not.

One app, one application database, one tiny project for the whole module: each caller
walks every route in turn (their sign-out last)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from sqlalchemy import update

import passerelle
from api_helpers import write_tiny_project
from passerelle.api import create_server
from passerelle.api.auth import Requirement, route_requirements
from passerelle.collect import DEFAULT_MAPPING
from passerelle.governance import passwords
from passerelle.governance.sessions import create_session
from passerelle.governance.signin import user_principal
from passerelle.governance.tables import ApiToken, User
from passerelle.governance.tokens import create_token, revoke_token
from passerelle.governance.users import add_user, set_disabled
from passerelle.runlog import utcnow

PASSWORD = "correct horse battery"
WRITE_KEY = "wk_matrix_1"
ACTOR = ("cli", "tests")

# ---------------------------------------------------------------- callers and groups
INVALID = ("none", "expired", "revoked", "disabled")  # no valid credential: 401
USERS = ("marketer", "analyst", "it_admin")  # signed in to the web app (session cookie)
SCOPES = ("collect:write", "profiles:read", "api:read", "api:write", "pii:read", "admin")
CALLERS = (*INVALID, *USERS, *(f"token {s}" for s in SCOPES))

ADMINS = {"it_admin", "token admin"}
READ = {*USERS, "token api:read", "token api:write", "token admin"}
PROFILES = {*READ, "token profiles:read"}
SEGMENTS_WRITE = {"marketer", "analyst", "it_admin", "token api:write", "token admin"}
PIPELINE = {"it_admin", "token api:write", "token admin"}
IDENTITY_WRITE = PRIVACY = PIPELINE
PRIVACY_PII = ADMINS  # the access report shows personal data: pii:read too
ANY = set(CALLERS) - set(INVALID)
COLLECT = {"token collect:write", "token admin"}


@dataclass(frozen=True)
class Row:
    allowed: set[str] | str  # callers let in; "public", "write key" or "page"
    ok: tuple[int, ...]  # what a caller let in gets (the request's own answer)
    request: dict  # extra arguments of the request (params, json, content...)
    forbidden: int = 403  # a known caller without the permission


def pin_body() -> dict:
    return {"kind": "merge", "records": ["crm:C1", "crm:C2"], "reason": "same person, by phone"}


P = "{person}"  # replaced by the person id of crm:C1
TABLE: dict[tuple[str, str], Row] = {
    # the REST API
    ("GET", "/api/runs"): Row(READ, (200,), {}),
    ("GET", "/api/persons"): Row(PROFILES, (200,), {"params": {"q": "crm:C1"}}),
    ("GET", "/api/persons/{query}"): Row(PROFILES, (200,), {"params": {"mask": "false"}}),
    ("GET", "/api/identity/report"): Row(READ, (200,), {}),
    ("GET", "/api/identity/pins"): Row(READ, (200,), {}),
    ("POST", "/api/identity/pins"): Row(IDENTITY_WRITE, (201, 400), {"json": pin_body()}),
    ("DELETE", "/api/identity/pins/{pin_id}"): Row(IDENTITY_WRITE, (400,), {}),
    ("GET", "/api/identity/why"): Row(READ, (200,), {"params": {"a": "crm:C1", "b": "crm:C2"}}),
    ("POST", "/api/identity/diff"): Row(IDENTITY_WRITE, (200,), {
        "content": "keys:\n  - field: email\nprobabilistic:\n  enabled: false\n",
        "headers": {"content-type": "application/yaml"}}),
    ("POST", "/api/metrics/query"): Row(READ, (200,), {"json": {"metrics": ["revenue"]}}),
    ("GET", "/api/glossary"): Row(READ, (200,), {}),
    ("GET", "/api/segments"): Row(READ, (200,), {}),
    ("GET", "/api/audiences"): Row(READ, (200,), {}),
    ("GET", "/api/segments/{name}/count"): Row(READ, (200,), {}),
    ("GET", "/api/segments/{name}/sample"): Row(READ, (200,), {"params": {"role": "it"}}),
    ("GET", "/api/segments/overlap/"): Row(READ, (200,), {
        "params": {"names": ["in_france", "in_france"]}}),
    ("GET", "/api/exports"): Row(READ, (200,), {}),
    ("GET", "/api/deliveries/dead-letters"): Row(READ, (200,), {}),
    ("GET", "/api/experiments/{name}"): Row(READ, (400,), {}),
    ("GET", "/api/experiments"): Row(READ, (200,), {}),
    ("GET", "/api/campaigns"): Row(READ, (200,), {}),
    ("GET", "/api/attribution"): Row(READ, (200,), {}),
    ("GET", "/api/incrementality"): Row(READ, (200,), {}),
    ("GET", "/api/events/violations"): Row(READ, (200,), {}),
    ("POST", "/api/privacy/access"): Row(PRIVACY_PII, (200,), {"json": {"subject": "crm:C1"}}),
    ("POST", "/api/privacy/erasure"): Row(PRIVACY, (200,), {"json": {"subject": "crm:C1"}}),
    ("GET", "/api/privacy/requests"): Row(PRIVACY, (200,), {}),
    # jobs (the worker does not run in this test: queued jobs stay queued)
    ("POST", "/api/jobs"): Row(SEGMENTS_WRITE, (202,), {
        "json": {"kind": "audience_build", "params": {"audience": "nobody"}}}),
    ("GET", "/api/jobs"): Row(READ, (200,), {}),
    ("GET", "/api/jobs/{job_id}"): Row(READ, (200,), {}),
    ("DELETE", "/api/jobs/{job_id}"): Row(PIPELINE, (200, 409), {}),  # a queued run
    ("POST", "/api/jobs/{job_id}/requeue"): Row(PIPELINE, (202, 409), {}),
    # session, administration
    ("POST", "/api/session"): Row("public", (200,), {"json": {
        "email": "victim@example.fr", "password": PASSWORD, "client": "cli"}}),
    ("GET", "/api/session"): Row(ANY, (200,), {}),
    ("DELETE", "/api/session"): Row(ANY, (200,), {}),
    ("GET", "/api/users"): Row(ADMINS, (200,), {}),
    ("POST", "/api/users"): Row(ADMINS, (201, 409), {"json": {
        "email": "new@example.fr", "role": "analyst", "password": PASSWORD}}),
    ("PATCH", "/api/users/{user}"): Row(ADMINS, (200,), {"json": {"role": "marketer"}}),
    ("POST", "/api/users/{user}/password"): Row(ADMINS, (200,), {"json": {
        "password": PASSWORD}}),
    ("GET", "/api/tokens"): Row(ADMINS, (200,), {}),
    ("POST", "/api/tokens"): Row(ADMINS, (201,), {"json": {"scopes": ["api:read"]}}),
    ("DELETE", "/api/tokens/{token_id}"): Row(ADMINS, (200,), {}),
    ("GET", "/api/audit"): Row({"it_admin", "token admin"}, (200,), {}),
    # the collector: write keys, or collect:write tokens as the Basic user or a bearer
    ("GET", "/v1/health"): Row("public", (200,), {}),
    **{("POST", f"/v1/{kind}"): Row("write key", (200,), {"json": body}) for kind, body in (
        ("track", {"userId": "u1", "event": "Matrix"}), ("identify", {"userId": "u1"}),
        ("page", {"userId": "u1"}), ("screen", {"userId": "u1"}),
        ("group", {"userId": "u1", "groupId": "g1"}),
        ("alias", {"userId": "u1", "previousId": "a1"}),
        ("batch", {"batch": [{"type": "track", "userId": "u1", "event": "M"}]}))},
    # the decision and profile APIs (tokens or sessions with the decide / profiles:read scope)
    # (this project has no offers: the store is not built, a 400 saying so)
    ("GET", "/v1/decide"): Row(PROFILES, (400,), {"params": {"person": "crm:C1",
                                                             "placement": "nowhere"}}),
    ("GET", "/v1/profiles/{person}"): Row(PROFILES, (400,), {}),
    # single sign-on: open (sign-in); this project has no `sso:`, so 404 for everyone
    # (the flow itself is tested in test_sso.py)
    ("GET", "/login/sso"): Row("public", (404,), {}),
    ("GET", "/login/sso/callback"): Row("public", (404,), {}),
    # the web pages (sessions only; a token is not a session)
    ("GET", "/"): Row("page", (200,), {}),
    ("GET", "/glossary"): Row("page", (200,), {}),
    ("GET", "/customers"): Row("page", (200,), {"params": {"q": "crm:C1"}}),
    ("GET", "/customers/{person_id}"): Row("page", (200,), {}),
    ("GET", "/health"): Row({"it_admin"}, (200,), {}),  # a page for IT (pipeline:run)
    **{("GET", path): Row("page", ok, {}) for path, ok in (
        ("/segments", (200,)), ("/segments/new", (200,)), ("/segments/{name}", (200,)),
        ("/jobs/{job_id}", (200,)), ("/campaigns", (200,)),
        ("/campaigns/sections/{section}", (200,)), ("/experiments", (200,)),
        ("/experiments/{name}", (404,)), ("/glossary/proposals", (200,)),
        ("/glossary/propose", (200,)), ("/glossary/proposals/{proposal_id}", (404,)),
        ("/glossary/lineage/{kind}/{name}", (404,)))},
    # pages for IT: administration (admin:users, audit:read), data health (pipeline:run)
    ("GET", "/admin"): Row({"it_admin"}, (303,), {}),  # to its first page
    **{("GET", path): Row({"it_admin"}, (200,), {}) for path in (
        "/admin/users", "/admin/roles", "/admin/tokens", "/admin/consent",
        "/admin/audit", "/health/jobs", "/health/checks", "/health/violations",
        "/health/identity")},
    # form posts, here without their form: a signed-in person gets the builder's read-only
    # partials (200), the form's own refusal (400, 403 for CSRF or permission, 404); their
    # permissions and CSRF are tested in test_web_*.py. No one else gets past sign-in.
    **{("POST", path): Row("page", (200, 400, 403, 404), {}) for path in (
        "/segments/builder", "/segments/preview", "/segments/why", "/segments/save",
        "/segments/{name}/audience", "/segments/{name}/export", "/admin/users",
        "/admin/users/{user_id}", "/admin/tokens", "/admin/tokens/{token_id}/revoke",
        "/glossary/proposals", "/glossary/proposals/{proposal_id}/comment",
        "/glossary/proposals/{proposal_id}/decide", "/health/identity",
        "/experiments/setup")},
}
# Routes of the web app outside the matrix: sign-in and its form posts (tested in
# test_web_pages.py), the API docs page and its schema (public), static files.
NOT_PAGES = {"/login", "/logout", "/language", "/docs"}
LAST = ("DELETE", "/api/session")  # each caller signs out last


def expected(row: Row, caller: str, route: tuple[str, str]) -> tuple[int, ...]:
    if row.allowed == "public":
        return row.ok
    if row.allowed == "write key":
        return row.ok if caller in COLLECT else (401,)
    is_page = not route[1].startswith(("/api", "/v1"))
    if is_page:
        if caller not in USERS:
            return (303,)  # to the sign-in page
        return row.ok if row.allowed == "page" or caller in row.allowed else (403,)
    if caller in INVALID:
        return (401,)
    return row.ok if caller in row.allowed else (row.forbidden,)


# ------------------------------------------------------------------------- the setup
@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = write_tiny_project(tmp_path_factory.mktemp("authz") / "project")
    with passerelle.open(root) as project:
        assert project.run().ok
    source = {"entity": "events", "connector": {
        "type": "collector", "write_keys": [WRITE_KEY], "spool": {"type": "file",
                                                                  "path": "spool"}},
        "columns": dict(DEFAULT_MAPPING), "customer_source": "crm"}
    (root / "sources" / "site.yml").write_text(yaml.safe_dump(source, sort_keys=False))
    saved = passwords._hasher
    passwords._hasher = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    project = passerelle.open(root)  # with the collector source, not run: nothing to load
    app = create_server(project, loader=False, worker=False)
    db = app.state.app_db
    creds: dict[str, dict[str, str]] = {"none": {}}
    ids: dict[str, str] = {}
    for email, role in (("marketer@example.fr", "marketer"), ("analyst@example.fr", "analyst"),
                        ("it@example.fr", "it_admin"), ("victim@example.fr", "marketer"),
                        ("gone@example.fr", "it_admin")):
        info = add_user(db, email, role, PASSWORD, ACTOR)
        ids[email] = str(info.id)
        if role in USERS and email.split("@")[0] in ("marketer", "analyst", "it"):
            with db.session() as session:
                user = session.get(User, info.id)
                active = create_session(db, user_principal(db, user))
            creds[role] = {"Cookie": f"passerelle_session={active.session_id}",
                           "X-CSRF-Token": active.csrf_token}
    for scope in SCOPES:
        creds[f"token {scope}"] = bearer(create_token(db, [scope], None, ACTOR,
                                                      name=f"matrix {scope}")[1])
    expired, secret = create_token(db, ["admin"], timedelta(days=1), ACTOR)
    with db.session() as session:
        session.execute(update(ApiToken).where(ApiToken.id == expired.id)
                        .values(expires_at=utcnow() - timedelta(minutes=1)))
    creds["expired"] = bearer(secret)
    revoked, secret = create_token(db, ["admin"], None, ACTOR)
    revoke_token(db, revoked.id, ACTOR)
    creds["revoked"] = bearer(secret)
    _, secret = create_token(db, ["admin"], None, ACTOR, owner="gone@example.fr")
    set_disabled(db, "gone@example.fr", True, ACTOR)
    creds["disabled"] = bearer(secret)
    client = TestClient(app, base_url="http://localhost", raise_server_exceptions=False)
    client.__enter__()  # the lifespan: the collector's spool opens
    admin = creds["token admin"]
    person = client.get("/api/persons", params={"q": "crm:C1"}, headers=admin).json()
    victim_token = create_token(db, ["api:read"], None, ACTOR, name="victim")[0].id
    yield {"app": app, "client": client, "creds": creds, "ids": ids, "db": db,
           "project": project, "person": person[0]["person_id"], "victim_token": victim_token}
    passwords._hasher = saved
    client.__exit__(None, None, None)
    app.state.web_project.close()
    db.close()
    project.close()


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def url_of(world, path: str) -> str:
    from passerelle.governance import jobs as queue

    db = world["db"]
    if "{job_id}" in path:  # a queued run to cancel, then to requeue
        job_id = queue.enqueue(db, "run", {}, "tests")
        if path.endswith("/requeue"):
            queue.cancel(db, job_id)
        path = path.replace("{job_id}", str(job_id))
    return (path.replace("{query}", world["person"]).replace("{person_id}", world["person"])
            .replace("{pin_id}", "pin-unknown").replace("{name}", "in_france")
            .replace("{user}", world["ids"]["victim@example.fr"])
            .replace("{user_id}", world["ids"]["victim@example.fr"])
            .replace("{proposal_id}", "999").replace("{kind}", "metric")
            .replace("{section}", "results")
            .replace("{token_id}", world["victim_token"]))


def call(world, caller: str, route: tuple[str, str], row: Row):
    client: TestClient = world["client"]
    client.cookies.clear()
    request = dict(row.request)
    headers = {**request.pop("headers", {}), **world["creds"][caller]}
    if route[1].startswith("/v1/") and route[1] != "/v1/health" and caller == "none":
        headers = {}
    return client.request(route[0], url_of(world, route[1]), headers=headers,
                          follow_redirects=False, **request)


# -------------------------------------------------------------------------- the tests
def schema_routes(app) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, ops in app.openapi()["paths"].items()
            for method in ops}


def page_routes(app) -> set[tuple[str, str]]:
    from fastapi.routing import APIRoute, iter_route_contexts

    return {(m, c.path) for c in iter_route_contexts(app.routes)
            if isinstance(c.original_route, APIRoute) and not c.include_in_schema
            and not c.path.startswith(("/api", "/v1")) and c.path not in NOT_PAGES
            for m in c.methods or ()}


def test_the_table_lists_every_route_and_only_them(world):
    app = world["app"]
    served = schema_routes(app) | page_routes(app)
    assert served - set(TABLE) == set(), "routes missing from TABLE (give them a row)"
    assert set(TABLE) - served == set(), "rows of TABLE that the server no longer has"


def test_the_registry_guards_every_schema_route_as_the_table_says(world):
    registry = route_requirements(world["app"])
    for route in schema_routes(world["app"]):
        declared = registry.get(route)
        assert declared is not None, f"{route} declares no requirement"
        row = TABLE[route]
        if isinstance(row.allowed, str):
            assert declared in (row.allowed, "sign-in" if row.allowed == "public" else None)
        else:
            assert isinstance(declared, Requirement)


def test_the_governance_page_lists_what_every_api_route_needs(world):
    """docs/governance.md's table of routes says what the registry enforces, route by route."""
    import re

    from passerelle.governance.permissions import PERMISSIONS

    page = (Path(__file__).resolve().parents[1] / "docs" / "governance.md").read_text()
    rows = {m.group(1): (m.group(2).strip(), m.group(3).strip()) for m in re.finditer(
        r"^\| `([A-Z]+ /api[^`]*)` \| ([^|]+) \| ([^|]+) \|$", page, re.M)}
    registry = {f"{m} {p}": r for (m, p), r in route_requirements(world["app"]).items()
                if p.startswith("/api")}
    assert set(rows) == set(registry)
    for route, need in registry.items():
        scope, perms = rows[route]
        named = set(re.findall(r"`([a-z]+:[a-z]+)`", perms)) & set(PERMISSIONS)
        if isinstance(need, Requirement):
            assert scope == (f"`{need.scope}`" if need.scope else "any"), route
            assert named == set(need.permissions), route
            assert ("job kind" in perms) == bool(need.note), route
        else:
            assert scope == need, route


def session_of(world, email: str) -> dict[str, str]:
    db = world["db"]
    with db.session() as session:
        user = session.query(User).filter(User.email == email).one()
        active = create_session(db, user_principal(db, user))
    return {"Cookie": f"passerelle_session={active.session_id}",
            "X-CSRF-Token": active.csrf_token}


def token_of(world, *scopes: str, owner: str | None = None) -> dict[str, str]:
    return bearer(create_token(world["db"], list(scopes), None, ACTOR, owner=owner)[1])


def get(world, path: str, headers: dict, **params):
    world["client"].cookies.clear()
    return world["client"].get(path, headers=headers, params=params)


def test_personal_data_is_unmasked_only_with_pii_read(world):
    person = f"/api/persons/{world['person']}"
    sample = "/api/segments/in_france/sample"
    for who in (session_of(world, "marketer@example.fr"), session_of(world, "analyst@example.fr"),
                token_of(world, "profiles:read"), token_of(world, "api:write"),
                token_of(world, "admin", owner="marketer@example.fr")):
        view = get(world, person, who, mask="false").json()
        assert view["masked"] is True and "***" in view["golden"]["email"]["value"], view
        shown = get(world, sample, who, role="it")
        assert shown.status_code == 403 or [r["email"] for r in shown.json()] == [
            "m***@example.fr"]
    for who in (session_of(world, "it@example.fr"), token_of(world, "api:read", "pii:read"),
                token_of(world, "admin")):
        view = get(world, person, who, mask="false").json()
        assert view["masked"] is False and view["golden"]["email"]["value"] == \
            "marie.dupont@example.fr"
        assert get(world, person, who).json()["masked"] is True  # masked unless asked
        assert [r["email"] for r in get(world, sample, who, role="it").json()] == [
            "marie.dupont@example.fr"]


def test_a_session_must_repeat_its_csrf_token_to_change_anything(world):
    who = session_of(world, "marketer@example.fr")
    body = {"kind": "audience_build", "params": {"audience": "nobody"}}
    world["client"].cookies.clear()
    refused = world["client"].post("/api/jobs", json=body, headers={"Cookie": who["Cookie"]})
    assert refused.status_code == 403 and refused.json()["code"] == "csrf_failed"
    wrong = world["client"].post("/api/jobs", json=body, headers={**who, "X-CSRF-Token": "x"})
    assert wrong.status_code == 403
    assert world["client"].post("/api/jobs", json=body, headers=who).status_code == 202
    assert get(world, "/api/jobs", {"Cookie": who["Cookie"]}).status_code == 200  # reads


def test_authors_are_the_caller_and_every_action_is_audited(world):
    from passerelle.governance import audit

    client, db = world["client"], world["db"]
    it = session_of(world, "it@example.fr")
    it_id = world["ids"]["it@example.fr"]
    client.cookies.clear()
    named = client.post("/api/identity/pins", json={**pin_body(), "author": "someone"},
                        headers=it)
    assert named.status_code == 422 and "author" in named.json()["message"]
    split = {"kind": "split", "records": ["crm:C1", "crm:C2"], "reason": "two people"}
    pin_id = client.post("/api/identity/pins", json=split, headers=it).json()["pin_id"]
    pins = {p["pin_id"]: p for p in get(world, "/api/identity/pins", it).json()}
    assert pins[pin_id]["author"] == f"user:{it_id}"
    client.cookies.clear()
    assert client.delete(f"/api/identity/pins/{pin_id}", headers=it).status_code == 200
    get(world, f"/api/persons/{world['person']}", it, mask="false")
    client.cookies.clear()
    made = client.post("/api/tokens", json={"scopes": ["profiles:read"]}, headers=it).json()
    assert made["token"].startswith("psl_")
    beyond = client.post("/api/tokens", json={"scopes": ["admin"]},
                         headers=token_of(world, "api:read", "admin", owner="it@example.fr"))
    assert beyond.status_code == 201  # an it_admin's token may make what they may do
    marketer_admin = token_of(world, "admin", owner="marketer@example.fr")
    assert client.post("/api/tokens", json={"scopes": ["pii:read"]},
                       headers=marketer_admin).status_code == 403
    assert client.post("/api/session", json={"email": "it@example.fr",
                                              "password": "not the one!!"}).status_code == 401
    entries = audit.query(db, actor_id=it_id, limit=50)
    actions = {(e["action"], e["outcome"]) for e in entries}
    assert {("pin.add", "success"), ("pin.remove", "success"), ("profile.view", "success"),
            ("token.create", "success"), ("signin", "failure")} <= actions, actions
    viewed = next(e for e in entries if e["action"] == "profile.view")
    assert viewed["resource"] == f"person:{world['person']}" and viewed["detail"] == {
        "masked": False}
    denied = audit.query(db, action="access.denied", limit=500)
    assert denied and all(e["outcome"] == "denied" and e["detail"]["needed"] for e in denied)


def test_collect_write_tokens_are_write_keys_and_keys_keep_working(world):
    import base64

    client = world["client"]
    event = {"userId": "u9", "event": "Token Sent"}
    collect = create_token(world["db"], ["collect:write"], None, ACTOR, name="site")[1]
    basic = "Basic " + base64.b64encode(f"{collect}:".encode()).decode()
    for headers in ({"Authorization": basic}, bearer(collect),
                    {"Authorization": "Basic " + base64.b64encode(
                        f"{WRITE_KEY}:".encode()).decode()}):
        client.cookies.clear()
        assert client.post("/v1/track", json=event, headers=headers).status_code == 200
    client.cookies.clear()
    assert client.post("/v1/track", json={**event, "writeKey": collect}).status_code == 200
    for headers in (token_of(world, "api:write"), bearer("psl_unknown")):
        client.cookies.clear()
        refused = client.post("/v1/track", json=event, headers=headers)
        assert refused.status_code == 401 and refused.json()["code"] == "invalid_write_key"


def test_a_write_key_over_its_rate_gets_429_with_retry_after(tmp_path):
    import base64

    from collect_helpers import KEY, write_project
    from passerelle.collect import create_app
    from passerelle.collect.app import RateLimit

    root = write_project(tmp_path / "p")
    with passerelle.open(root) as project:
        app = create_app(root, project.sources, loader=False,
                         rate_limit=RateLimit(per_second=0.5, burst=3))
        auth = {"Authorization": "Basic " + base64.b64encode(f"{KEY}:".encode()).decode()}
        with TestClient(app, base_url="http://localhost") as client:
            codes = [client.post("/v1/track", json={"userId": "u", "event": "e"},
                                 headers=auth) for _ in range(5)]
            assert [r.status_code for r in codes] == [200, 200, 200, 429, 429]
            assert codes[3].json()["code"] == "rate_limited"
            assert 1 <= int(codes[3].headers["retry-after"]) <= 2
            other = client.post("/v1/track", json={"userId": "u", "event": "e"},
                                headers={"Authorization": "Basic eDo="})
            assert other.status_code == 401  # unknown keys are refused, not counted


def test_the_cli_signs_in_for_a_token_that_acts_for_the_person(world):
    client = world["client"]
    client.cookies.clear()
    answer = client.post("/api/session", json={"email": "analyst@example.fr",
                                                "password": PASSWORD, "client": "cli"}).json()
    me = get(world, "/api/session", bearer(answer["token"])).json()
    assert me["kind"] == "token" and me["role"] == "analyst"
    assert set(me["permissions"]) == {"segments:write", "glossary:approve", "experiments:write"}
    web = client.post("/api/session", json={"email": "analyst@example.fr",
                                             "password": PASSWORD})
    assert web.status_code == 200 and "passerelle_session=" in web.headers["set-cookie"]
    assert "HttpOnly" in web.headers["set-cookie"]


@pytest.mark.parametrize("caller", CALLERS)
def test_every_route_answers_each_caller_as_the_table_says(world, caller):
    wrong = []
    for route, row in [*((r, w) for r, w in TABLE.items() if r != LAST), (LAST, TABLE[LAST])]:
        response = call(world, caller, route, row)
        want = expected(row, caller, route)
        if response.status_code not in want:
            wrong.append(f"{route[0]} {route[1]}: {response.status_code} (want {want}) "
                         f"{response.text[:160]}")
        elif response.status_code in (401, 403) and route[1].startswith("/api"):
            body = response.json()  # the API's one error shape
            assert body["success"] is False and body["code"] in (
                "not_authenticated", "forbidden"), body
    assert not wrong, f"{caller}:\n" + "\n".join(wrong)


def test_the_matrix_size(world):
    """Reported in the docs: routes × callers."""
    assert len(TABLE) >= 55 and len(CALLERS) == 13


def test_the_schema_tells_clients_what_every_route_needs(world):
    """Swagger UI's Authorize button and API clients read the security of each operation
    from the schema: derived from the registry, so it agrees with the table."""
    schema = world["app"].openapi()
    schemes = schema["components"]["securitySchemes"]
    assert schemes["apiToken"] == {**schemes["apiToken"], "type": "http", "scheme": "bearer"}
    assert schemes["sessionCookie"]["in"] == "cookie"
    for method, path in schema_routes(world["app"]):
        operation = schema["paths"][path][method.lower()]
        row, security = TABLE[(method, path)], operation.get("security")
        if row.allowed == "public":
            assert not security and "x-passerelle-requires" not in operation, (method, path)
        elif row.allowed == "write key":
            assert security == [{"writeKey": []}, {"apiToken": []}], (method, path)
        else:
            assert {"apiToken": []} in security, (method, path)
            sessions = [s for s in security if "sessionCookie" in s]
            assert sessions == ([{"sessionCookie": []}] if method == "GET" else
                                [{"sessionCookie": [], "csrfToken": []}]), (method, path)
            need = route_requirements(world["app"])[(method, path)]
            assert operation["x-passerelle-requires"] == {
                "scope": need.scope, "permissions": list(need.permissions)}
            assert "**Needs:**" in operation["description"]
    health = schema["paths"]["/v1/health"]["get"]
    assert "security" not in health
