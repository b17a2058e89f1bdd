"""The web app's tests: the tiny API project, run once, with a marketer and an IT admin."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from argon2 import PasswordHasher

import passerelle
from api_helpers import write_tiny_project
from passerelle.governance import passwords
from passerelle.governance.db import open_app_db
from passerelle.governance.users import add_user

PASSWORD = "correct horse battery"
MARKETER = "marketer@example.fr"
IT_ADMIN = "it@example.fr"
ANALYST = "analyst@example.fr"


def web_project(root: Path) -> Path:
    """The tiny project, run, with two users (cheap Argon2 hashes: the server verifies a
    hash with the parameters written in it)."""
    write_tiny_project(root)
    with (root / "data" / "orders.csv").open("a") as f:  # one row for the quarantine
        f.write("O4,C2,2026-02-01,dix euros,web\n")
    (root / "checks").mkdir()
    (root / "checks" / "crm.yml").write_text(
        "checks:\n"
        "  - {type: unique, source: crm, column: customer_id, owner: crm-team}\n"
        "  - {type: not_null, source: crm, column: phone, severity: warn}\n")
    with passerelle.open(root) as project:
        project.run()
        saved = passwords._hasher
        passwords._hasher = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
        try:
            with open_app_db(project) as db:
                for email, role in ((MARKETER, "marketer"), (IT_ADMIN, "it_admin")):
                    add_user(db, email, role, PASSWORD, ("cli", "test"))
        finally:
            passwords._hasher = saved
    return root


def add_web_users(root: Path, people: tuple[tuple[str, str], ...] = (
        (MARKETER, "marketer"), (ANALYST, "analyst"), (IT_ADMIN, "it_admin"))) -> Path:
    """People who sign in to a project already run (the shared demo's copy)."""
    saved = passwords._hasher
    passwords._hasher = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    try:
        with passerelle.open(root) as project, open_app_db(project) as db:
            for email, role in people:
                add_user(db, email, role, PASSWORD, ("cli", "test"))
    finally:
        passwords._hasher = saved
    return root


@contextmanager
def served_project(root: Path) -> Iterator[tuple]:
    """The project at ``root`` and its server app (worker not started); all closed after."""
    from passerelle.api.app import create_server

    project = passerelle.open(root)
    app = create_server(project, loader=False)
    try:
        yield project, app
    finally:
        app.state.web_project.close()
        app.state.app_db.close()
        project.close()


def signed_in(app, email: str):
    """A test client of ``app`` signed in as ``email``."""
    from fastapi.testclient import TestClient

    return sign_in(TestClient(app, base_url="http://localhost"), email)


def sign_in(client, email: str, password: str = PASSWORD):
    """A TestClient signed in as ``email`` (the login form's CSRF token repeated)."""
    token = csrf_of(client.get("/login").text)
    done = client.post("/login", data={"csrf_token": token, "email": email,
                                       "password": password, "next": "/"},
                       follow_redirects=False)
    assert done.status_code == 303, done.text
    return client


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
