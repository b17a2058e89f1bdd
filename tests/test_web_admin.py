"""Administration pages (IT) on the shared demo: users, roles, tokens, consent purposes and
the audit log; only admin:users / audit:read reach them, every post checks CSRF, every change
is written by the governance functions with its audit entry."""

from __future__ import annotations

import csv
import io
import re

import pytest
from fastapi.testclient import TestClient

import passerelle
from passerelle.api.app import create_server
from passerelle.governance import audit
from passerelle.governance.errors import TokenRejected
from passerelle.governance.tokens import principal_from_token
from passerelle.governance.users import list_users
from web_helpers import (
    ANALYST,
    IT_ADMIN,
    MARKETER,
    PASSWORD,
    add_web_users,
    csrf_of,
    sign_in,
)

AUDITOR = "auditor@example.fr"
PAGES = ["/admin/users", "/admin/roles", "/admin/tokens", "/admin/consent", "/admin/audit"]


@pytest.fixture(scope="module")
def admin_app(demo_copy):
    root = demo_copy.project_dir
    with (root / "passerelle.yml").open("a") as f:  # a custom role that reads the log only
        f.write("\nroles:\n  auditor: [audit:read]\n")
    add_web_users(root, ((MARKETER, "marketer"), (ANALYST, "analyst"),
                         (IT_ADMIN, "it_admin"), (AUDITOR, "auditor")))
    project = passerelle.open(root)
    app = create_server(project, loader=False)
    yield app
    app.state.web_project.close()
    app.state.app_db.close()
    project.close()


def as_(app, email: str) -> TestClient:
    return sign_in(TestClient(app, base_url="http://localhost"), email)


def test_a_marketer_or_an_analyst_reaches_no_admin_page(admin_app):
    for email in (MARKETER, ANALYST):
        c = as_(admin_app, email)
        assert 'href="/admin"' not in c.get("/").text  # not even in the menu
        for page in [*PAGES, "/admin"]:
            r = c.get(page, follow_redirects=False)
            assert r.status_code == 403, (email, page)
            assert "admin:users" in r.text or "audit:read" in r.text
        token = csrf_of(c.get("/").text)
        r = c.post("/admin/users", data={"csrf_token": token, "email": "x@example.fr",
                                         "role": "it_admin", "password": PASSWORD + "x"})
        assert r.status_code == 403
    assert "x@example.fr" not in {u.email for u in list_users(admin_app.state.app_db)}


def test_a_custom_role_with_audit_read_reads_the_log_and_nothing_else(admin_app):
    c = as_(admin_app, AUDITOR)
    assert c.get("/admin", follow_redirects=False).headers["location"] == "/admin/audit"
    assert c.get("/admin/audit").status_code == 200
    for page in ("/admin/users", "/admin/roles", "/admin/tokens", "/admin/consent"):
        assert c.get(page).status_code == 403


def test_it_adds_a_user_changes_the_role_disables_and_resets_the_password(admin_app):
    c = as_(admin_app, IT_ADMIN)
    page = c.get("/admin/users").text
    assert MARKETER in page and "Ajouter un utilisateur" in page
    token = csrf_of(page)
    r = c.post("/admin/users", data={"csrf_token": "forged", "email": "new@example.fr",
                                     "role": "analyst", "password": "another fine password"})
    assert r.status_code == 403  # CSRF checked before anything is written
    r = c.post("/admin/users", data={"csrf_token": token, "email": "new@example.fr",
                                     "role": "analyst", "password": "another fine password"})
    assert r.status_code == 200 and "new@example.fr ajouté·e avec le rôle analyst" in r.text
    r = c.post("/admin/users", data={"csrf_token": token, "email": "new@example.fr",
                                     "role": "analyst", "password": "another fine password"})
    assert r.status_code == 400 and 'role="alert"' in r.text  # already exists, said so
    new = next(u for u in list_users(admin_app.state.app_db) if u.email == "new@example.fr")
    r = c.post(f"/admin/users/{new.id}", data={"csrf_token": token, "action": "role",
                                                "role": "marketer"})
    assert "a maintenant le rôle marketer" in r.text
    r = c.post(f"/admin/users/{new.id}", data={"csrf_token": token, "action": "role",
                                                "role": "owner"})
    assert r.status_code == 400 and "is not a role of this project" in r.text
    r = c.post(f"/admin/users/{new.id}", data={"csrf_token": token, "action": "password",
                                                "password": "short"})
    assert r.status_code == 400  # the password policy of governance, not a copy of it
    r = c.post(f"/admin/users/{new.id}", data={"csrf_token": token, "action": "password",
                                                "password": "a brand new long password"})
    assert "est réinitialisé" in r.text
    r = c.post(f"/admin/users/{new.id}", data={"csrf_token": token, "action": "disable"})
    assert "est désactivé·e" in r.text
    me = c.get("/admin/users")
    it = next(u for u in list_users(admin_app.state.app_db) if u.email == IT_ADMIN)
    r = c.post(f"/admin/users/{it.id}", data={"csrf_token": csrf_of(me.text),
                                               "action": "disable"})
    assert r.status_code == 400
    entries = audit.query(admin_app.state.app_db, actor_id=str(it.id), limit=20)
    actions = [e["action"] for e in entries if e["resource"] == f"user:{new.id}"]
    assert actions == ["user.disable", "user.password_reset", "user.role", "user.add"]
    assert all(e["actor_kind"] == "user" for e in entries)


def test_a_token_is_shown_once_works_and_stops_when_revoked(admin_app):
    c = as_(admin_app, IT_ADMIN)
    token = csrf_of(c.get("/admin/tokens").text)
    r = c.post("/admin/tokens", data={"csrf_token": token, "name": "site web",
                                      "scope-collect:write": "1", "expires": "30d"})
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    secret = re.search(r'id="secret" readonly value="(psl_[^"]+)"', r.text).group(1)
    token_id = re.search(r"Jeton ([0-9a-f]+) créé", r.text).group(1)
    assert secret not in c.get("/admin/tokens").text  # never shown again
    principal = principal_from_token(admin_app.state.app_db, secret)
    assert principal.has_scope("collect:write") and not principal.has_scope("api:read")
    r = c.post("/admin/tokens", data={"csrf_token": token, "name": "x", "expires": "soon"})
    assert r.status_code == 400 and "is not a duration" in r.text
    r = c.post("/admin/tokens", data={"csrf_token": token, "name": "x"})
    assert r.status_code == 400 and "Unknown scope" in r.text  # no scope ticked
    r = c.post(f"/admin/tokens/{token_id}/revoke", data={"csrf_token": "forged"})
    assert r.status_code == 403
    r = c.post(f"/admin/tokens/{token_id}/revoke", data={"csrf_token": token})
    assert f"Le jeton {token_id} est révoqué." in r.text
    with pytest.raises(TokenRejected):
        principal_from_token(admin_app.state.app_db, secret)
    logged = [e["action"] for e in audit.query(admin_app.state.app_db, action="token.*")
              if e["resource"] == f"token:{token_id}"]
    assert logged == ["token.revoke", "token.create"]


def test_roles_list_built_in_and_custom_roles_with_their_permissions(admin_app):
    page = as_(admin_app, IT_ADMIN).get("/admin/roles").text
    marketer = re.search(r'id="role-marketer">(.*?)</tr>', page, re.S).group(1)
    assert "<code>audiences:export</code>" in marketer and "pii:read" not in marketer
    auditor = re.search(r'id="role-auditor">(.*?)</tr>', page, re.S).group(1)
    assert "personnalisé" in auditor and "<code>audit:read</code>" in auditor


def test_consent_purposes_with_the_number_of_persons_granting_each(admin_app):
    import ibis

    project = admin_app.state.web_project
    c = project.engine.table("consents")
    expected = dict(c.filter(c.granted).group_by("purpose")
                    .aggregate(n=c.person_id.nunique()).execute()
                    .itertuples(index=False, name=None))
    assert expected and ibis  # the demo built consent state
    page = as_(admin_app, IT_ADMIN).get("/admin/consent").text
    fmt = passerelle.formatting.for_config(project.config)
    for purpose in project.definition.consent.purposes:
        row = re.search(rf'id="purpose-{purpose}">(.*?)</tr>', page, re.S).group(1)
        assert f'<td class="num">{fmt.integer(expected.get(purpose, 0))}</td>' in row, row


def test_audit_search_by_user_action_and_since_and_its_csv_export(admin_app):
    c = as_(admin_app, IT_ADMIN)
    page = c.get("/admin/audit", params={"actor": IT_ADMIN, "action": "sign*",
                                         "since": "1d"})
    assert page.status_code == 200 and "<code>signin</code>" in page.text
    assert "<code>user." not in page.text  # the action filter applies
    page = c.get("/admin/audit", params={"actor": MARKETER, "action": "user.*"}).text
    assert "Aucune entrée ne correspond." in page  # a marketer changed no user
    r = c.get("/admin/audit", params={"since": "yesterday"})
    assert r.status_code == 400 and "neither a duration nor a date" in r.text
    r = c.get("/admin/audit", params={"action": "user.*", "export": "csv"})
    assert r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert rows and {row["action"][:5] for row in rows} == {"user."}
    assert as_(admin_app, AUDITOR).get("/admin/audit", params={"export": "csv"}).status_code \
        == 200
