"""Single sign-on through OpenID Connect, against a small provider started by the test
(tests/oidc_helpers.py, on a loopback port: no network): the authorization code flow with
PKCE, state and nonce; users created or matched by e-mail with the role of their claim;
every refusal a clear page and an audit entry; the client secret in no log."""

from __future__ import annotations

import base64
import json
import logging
import os
import secrets

import httpx
import pytest
import yaml
from fastapi.testclient import TestClient
from pydantic import ValidationError

import passerelle
from api_helpers import write_tiny_project
from collect_helpers import free_port
from oidc_helpers import CLIENT_ID, Provider
from passerelle.api import create_server
from passerelle.governance import audit
from passerelle.governance.oidc import OidcClient, PendingSignIns, SsoNotConfigured, client_secret
from passerelle.governance.sso import role_of
from passerelle.governance.users import list_users, set_disabled
from passerelle.project.models import ProjectConfig
from passerelle.project.sso_models import SsoConfig
from passerelle.web.sso_pages import SingleSignOn

ENV = "PASSERELLE_TEST_SSO_SECRET"
SECRET = "sso-secret-" + secrets.token_hex(12)  # a new one each run
ROLE_MAP = {"cdp-admins": "it_admin", "cdp-analysts": "analyst", "cdp-marketing": "marketer"}


def sso_block(issuer: str, **changes) -> dict:
    return {"name": "Test IdP", "issuer": issuer, "client_id": CLIENT_ID,
            "client_secret_env": ENV, "role_claim": "roles", "role_map": ROLE_MAP,
            "allowed_domains": ["example.fr"], **changes}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    provider = Provider(SECRET).start()
    root = write_tiny_project(tmp_path_factory.mktemp("sso") / "project",
                              yaml.safe_dump({"default_region": "GB",  # pages in English
                                              "sso": sso_block(provider.issuer)}))
    os.environ[ENV] = SECRET
    project = passerelle.open(root)
    app = create_server(project, loader=False, worker=False)
    client = TestClient(app, base_url="http://localhost", raise_server_exceptions=False)
    yield {"provider": provider, "app": app, "client": client, "db": app.state.app_db}
    os.environ.pop(ENV, None)
    provider.stop()
    app.state.sso.client.close()
    app.state.web_project.close()
    app.state.app_db.close()
    project.close()


def person(email: str, *roles: str, **claims) -> dict:
    return {"email": email, "email_verified": True, **({"roles": list(roles)} if roles else {}),
            **claims}


def start(world, who: dict, next_path: str = "/") -> str:
    """Begin a sign-in and pass the provider: the callback URL the browser is sent to."""
    client = world["client"]
    client.cookies.clear()
    world["provider"].person = who
    begun = client.get("/login/sso", params={"next": next_path}, follow_redirects=False)
    assert begun.status_code == 303, begun.text
    at_provider = httpx.get(begun.headers["location"], follow_redirects=False)
    assert at_provider.status_code == 302, at_provider.text
    return at_provider.headers["location"]


def sign_in(world, who: dict, next_path: str = "/", tamper: str | None = None):
    callback = start(world, who, next_path)
    world["provider"].tamper = tamper
    return world["client"].get(callback, follow_redirects=False)


def me(world) -> dict:
    return world["client"].get("/api/session").json()


def last_signin(world) -> dict:
    return audit.query(world["db"], action="signin", limit=1)[0]


@pytest.fixture
def swapped(world):
    """Run one test with other ``sso:`` settings (restored after)."""
    saved = world["app"].state.sso

    def use(**changes):
        config = SsoConfig.model_validate(sso_block(world["provider"].issuer, **changes))
        world["app"].state.sso = SingleSignOn(OidcClient(config, SECRET), PendingSignIns())
    yield use
    world["app"].state.sso.client.close()
    world["app"].state.sso = saved


# ---------------------------------------------------------------------------- the flow
def test_the_sign_in_page_offers_the_provider(world):
    world["client"].cookies.clear()
    page = world["client"].get("/login", params={"next": "/segments"})
    assert "Sign in with Test IdP" in page.text
    assert 'href="/login/sso?next=/segments"' in page.text or \
        'href="/login/sso?next=%2Fsegments"' in page.text


def test_a_first_sign_in_creates_the_user_with_the_claimed_role(world):
    answer = sign_in(world, person("Ada@Example.fr", "cdp-analysts"), "/segments")
    assert answer.status_code == 303 and answer.headers["location"] == "/segments"
    assert "passerelle_session=" in answer.headers["set-cookie"]
    assert "httponly" in answer.headers["set-cookie"].lower()
    assert me(world)["role"] == "analyst" and me(world)["name"] == "ada@example.fr"
    again = world["client"].get("/login/sso", params={"next": "/glossary"},
                                follow_redirects=False)  # signed in: no new sign-in
    assert (again.status_code, again.headers["location"]) == (303, "/glossary")
    created = {u.email: u for u in list_users(world["db"])}["ada@example.fr"]
    assert created.role == "analyst" and created.created_by == "sso"
    entry = last_signin(world)
    assert (entry["outcome"], entry["actor_id"], entry["detail"]) == (
        "success", str(created.id), {"method": "sso"})
    # what the provider was sent: PKCE (S256 checked by the provider), the secret by Basic
    sent = world["provider"].token_requests[-1]
    assert sent["code_verifier"] and sent["authorization"].startswith("Basic ")
    # the password form does not open the account: it has no password
    world["client"].cookies.clear()
    assert world["client"].post("/api/session", json={
        "email": "ada@example.fr", "password": "!sso"}).status_code == 401


def test_a_role_changed_at_the_provider_applies_at_the_next_sign_in(world):
    assert sign_in(world, person("bob@example.fr", "cdp-marketing")).status_code == 303
    assert me(world)["role"] == "marketer"
    # several values: role_map's order decides (cdp-admins is listed first)
    assert sign_in(world, person("bob@example.fr", "cdp-marketing", "cdp-admins")
                   ).status_code == 303
    assert me(world)["role"] == "it_admin"
    changes = audit.query(world["db"], action="user.role", limit=1)[0]
    assert changes["detail"] == {"from": "marketer", "to": "it_admin", "via": "sso"}


def test_a_disabled_user_stays_refused(world):
    assert sign_in(world, person("carl@example.fr", "cdp-analysts")).status_code == 303
    set_disabled(world["db"], "carl@example.fr", True, ("cli", "tests"))
    answer = sign_in(world, person("carl@example.fr", "cdp-admins"))
    assert answer.status_code == 403 and "account is disabled" in answer.text
    assert "passerelle_session=" not in answer.headers.get("set-cookie", "")
    entry = last_signin(world)
    assert entry["outcome"] == "failure" and entry["detail"]["reason"] == "disabled"
    assert {u.email: u.role for u in list_users(world["db"])}["carl@example.fr"] == "analyst"


def test_a_wrong_or_missing_state_is_refused(world):
    callback = start(world, person("dora@example.fr", "cdp-analysts"))
    forged = callback.replace("state=", "state=forged")
    answer = world["client"].get(forged, follow_redirects=False)
    assert answer.status_code == 400 and "no sign-in of this browser is waiting" in answer.text
    assert last_signin(world)["detail"] == {"method": "sso", "reason": "bad_state"}
    # the flow is used up: the genuine answer, replayed, is refused too
    assert world["client"].get(callback, follow_redirects=False).status_code == 400
    # an answer that no sign-in of this browser started (no cookie): refused
    callback = start(world, person("dora@example.fr", "cdp-analysts"))
    world["client"].cookies.clear()
    answer = world["client"].get(callback, follow_redirects=False)
    assert answer.status_code == 400 and "Start the sign-in again" in answer.text
    assert "dora@example.fr" not in {u.email for u in list_users(world["db"])}


@pytest.mark.parametrize("tamper", ["signature", "foreign key", "nonce", "audience"])
def test_a_spoiled_id_token_is_refused(world, tamper):
    answer = sign_in(world, person("eve@example.fr", "cdp-marketing"), tamper=tamper)
    assert answer.status_code == 401, answer.text
    assert "answer could not be verified" in answer.text and "Traceback" not in answer.text
    assert last_signin(world)["detail"] == {"method": "sso", "reason": "bad_token"}
    assert "eve@example.fr" not in {u.email for u in list_users(world["db"])}


def test_rotated_keys_and_the_secret_posted_in_the_body(world, swapped):
    assert sign_in(world, person("ivy@example.fr", "cdp-analysts")).status_code == 303
    fetched = world["provider"].key_fetches  # the server keeps the keys it fetched...
    assert sign_in(world, person("ivy@example.fr", "cdp-analysts")).status_code == 303
    assert world["provider"].key_fetches == fetched
    world["provider"].rotate()  # ...until a token names a key it does not have
    assert sign_in(world, person("ivy@example.fr", "cdp-analysts")).status_code == 303
    assert world["provider"].key_fetches == fetched + 1
    swapped(client_auth="client_secret_post")
    assert sign_in(world, person("ivy@example.fr", "cdp-analysts")).status_code == 303
    sent = world["provider"].token_requests[-1]
    assert sent["client_secret"] == SECRET and not sent["authorization"]
    assert me(world)["role"] == "analyst"


def test_a_missing_role_claim_gets_the_default_role_or_is_refused(world, swapped):
    answer = sign_in(world, person("fred@example.fr"))  # no default_role: refused
    assert answer.status_code == 403 and "carries no role for Passerelle" in answer.text
    assert last_signin(world)["detail"]["reason"] == "no_role"
    swapped(default_role="marketer")
    assert sign_in(world, person("fred@example.fr")).status_code == 303
    assert me(world)["role"] == "marketer"


def test_an_unknown_role_value_a_foreign_domain_and_an_unverified_email_are_refused(world):
    for who, status, code in (
            (person("gus@example.fr", "cdp-interns"), 403, "unknown_role"),
            (person("gus@elsewhere.com", "cdp-admins"), 403, "domain_refused"),
            (person("gus@example.fr", "cdp-admins", email_verified=False), 403,
             "email_unverified"),
            ({"roles": ["cdp-admins"]}, 403, "no_email")):
        answer = sign_in(world, who)
        assert answer.status_code == status and "Single sign-on failed" in answer.text
        assert last_signin(world)["detail"]["reason"] == code
    assert not {"gus@example.fr", "gus@elsewhere.com"} & {u.email for u in
                                                          list_users(world["db"])}


def test_a_provider_that_does_not_answer_gives_a_clear_page(world, swapped):
    saved = world["provider"].issuer
    world["provider"].port, port = free_port(), world["provider"].port  # nobody listens
    try:
        swapped()
    finally:
        world["provider"].port = port
    assert world["provider"].issuer == saved
    world["client"].cookies.clear()
    answer = world["client"].get("/login/sso", follow_redirects=False)
    assert answer.status_code == 502 and "did not answer" in answer.text
    assert last_signin(world)["detail"] == {"method": "sso", "reason": "provider_unreachable"}


def test_the_client_secret_is_in_no_log_page_or_audit_entry(world, caplog):
    caplog.set_level(logging.DEBUG)
    pages = [sign_in(world, person("hal@example.fr", "cdp-admins")),
             sign_in(world, person("hal@example.fr", "cdp-admins"), tamper="signature"),
             sign_in(world, person("hal@example.fr", "cdp-interns"))]
    basic = base64.b64encode(f"{CLIENT_ID}:{SECRET}".encode()).decode()
    logged = caplog.text + "".join(r.getMessage() for r in caplog.records)
    trail = json.dumps(audit.query(world["db"], limit=1000), default=str)
    for text in (logged, trail, *(p.text for p in pages), repr(world["app"].state.sso.client)):
        assert SECRET not in text and basic not in text
    assert "hal@example.fr" not in trail  # the audit log names people by id


# ------------------------------------------------------------------ settings, mapping
def test_the_roles_of_a_claim():
    config = SsoConfig.model_validate(sso_block("https://idp.example.fr", role_claim=(
        "realm_access.roles"), default_role="analyst"))
    assert role_of(config, {"realm_access": {"roles": ["x", "cdp-marketing"]}}) == "marketer"
    assert role_of(config, {"realm_access": {}}) == "analyst"
    assert role_of(config, {"realm_access.roles": "cdp-admins"}) == "it_admin"  # namespaced
    config = SsoConfig.model_validate(sso_block("https://idp.example.fr", role_claim="group"))
    assert role_of(config, {"group": "cdp-analysts"}) == "analyst"


def test_sso_settings_are_checked_when_the_project_loads():
    base = {"name": "p"}
    good = sso_block("https://login.example.fr/tenant/v2.0")
    assert ProjectConfig.model_validate({**base, "sso": good}).sso.discovery == (
        "https://login.example.fr/tenant/v2.0/.well-known/openid-configuration")
    assert ProjectConfig.model_validate({**base, "roles": {"crm_team": ["segments:write"]},
                                         "sso": {**good, "default_role": "crm_team"}})
    for bad, said in (
            ({**good, "role_map": {"x": "superuser"}}, "unknown role"),
            ({**good, "client_secret": "hunter2"}, "Extra inputs"),
            ({**good, "client_secret_env": "hunter2 hunter3"}, "NAME of an environment"),
            ({**good, "issuer": "http://idp.example.fr"}, "https://"),
            ({**good, "scopes": ["email"]}, "openid"),
            ({**good, "allowed_domains": ["not a domain"]}, "not e-mail domains")):
        with pytest.raises(ValidationError, match=said):
            ProjectConfig.model_validate({**base, "sso": bad})


def test_a_server_without_its_client_secret_does_not_start():
    config = SsoConfig.model_validate(sso_block("https://idp.example.fr"))
    with pytest.raises(SsoNotConfigured, match=ENV):
        client_secret(config, {})
    assert client_secret(config, {ENV: " s3 "}) == "s3"
    assert client_secret(config.model_copy(update={"client_secret_env": None}), {}) is None
