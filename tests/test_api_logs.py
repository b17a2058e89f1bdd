"""The logs of a server session hold no e-mail, phone, token or password at the default
level: a session that signs in (right and wrong), looks people up by e-mail and phone,
previews an erasure, makes a token, sends events carrying personal data and runs a job,
with every log record captured (caplog, levels left as they are). Today such a session logs
nothing at that level; the test keeps it so when someone adds a log line."""

from __future__ import annotations

import logging
import re
import time

from argon2 import PasswordHasher
from fastapi.testclient import TestClient

from api_helpers import admin_token, bearer, tiny_project
from passerelle.api import create_server
from passerelle.governance import passwords
from passerelle.governance.users import add_user

EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+")
PHONE = re.compile(r"(?:\+33|0)\s?[1-9](?:[\s.-]?\d{2}){4}")
PASSWORD = "correct horse battery"


def test_a_server_session_logs_no_personal_data_nor_secret(tmp_path, caplog):
    project = tiny_project(tmp_path / "p")
    saved = passwords._hasher
    passwords._hasher = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    app = create_server(project, loader=False)
    secrets: list[str] = []
    try:
        add_user(app.state.app_db, "dpo@example.fr", "it_admin", PASSWORD, ("cli", "tests"))
        token = admin_token(project)
        secrets.append(token)
        with TestClient(app, base_url="http://localhost",
                        raise_server_exceptions=False) as client:
            assert client.post("/api/session", json={
                "email": "dpo@example.fr", "password": "wrong password!!"}).status_code == 401
            signed = client.post("/api/session", json={
                "email": "dpo@example.fr", "password": PASSWORD, "client": "cli"}).json()
            secrets.append(signed["token"])
            auth = bearer(signed["token"])
            for q in ("marie.dupont@example.fr", "06 12 34 56 78", "Dupont"):
                assert client.get("/api/persons", params={"q": q}, headers=auth).is_success
            view = client.get("/api/persons/marie.dupont@example.fr",
                              params={"mask": "false"}, headers=auth)
            assert view.is_success and view.json()["masked"] is False
            assert client.get("/api/persons/nobody@example.fr",
                              headers=auth).status_code == 404
            assert client.post("/api/privacy/erasure", json={
                "subject": "paul.martin@example.fr"}, headers=auth).is_success
            made = client.post("/api/tokens", json={"scopes": ["collect:write"]},
                               headers=auth).json()
            secrets.append(made["token"])
            sent = client.post("/v1/identify", headers=bearer(made["token"]), json={
                "userId": "C9", "traits": {"email": "new.person@example.fr",
                                           "phone": "+33 6 98 76 54 32"}})
            assert sent.status_code in (200, 401)  # no collector source in this project
            job = client.post("/api/jobs", json={"kind": "segment_refresh"},
                              headers=bearer(token)).json()["job_id"]
            deadline = time.monotonic() + 120
            while client.get(f"/api/jobs/{job}", headers=bearer(token)).json()["status"] in (
                    "queued", "running") and time.monotonic() < deadline:
                time.sleep(0.1)
            assert client.get("/api/runs", headers={"Authorization": f"Bearer {token}x"}
                              ).status_code == 401
    finally:
        passwords._hasher = saved
        app.state.web_project.close()
        project.close()
    text = "\n".join(f"{r.name} {r.levelname} {r.getMessage()} {r.exc_text or ''}"
                     for r in caplog.records)
    assert logging.getLogger().getEffectiveLevel() == logging.WARNING  # the default level
    assert not EMAIL.findall(text), EMAIL.findall(text)
    assert not PHONE.findall(text), PHONE.findall(text)
    assert "psl_" not in text and not any(s in text for s in secrets)
    assert PASSWORD not in text and "wrong password" not in text
