"""The web app on a copy of the shared demo: a marketer, an IT admin and a custom role that
may export but not write segments; signed-in TestClients (base_url http://localhost)."""

from __future__ import annotations

import re
from pathlib import Path

from argon2 import PasswordHasher
from fastapi.testclient import TestClient

import passerelle
from passerelle.api.app import create_server
from passerelle.governance import passwords
from passerelle.governance.db import open_app_db
from passerelle.governance.users import add_user

PASSWORD = "correct horse battery"
MARKETER = "marketer@example.fr"
IT_ADMIN = "it@example.fr"
SENDER = "sender@example.fr"  # audiences:export without segments:write
USERS = ((MARKETER, "marketer"), (IT_ADMIN, "it_admin"), (SENDER, "sender"))


def add_web_users(root: Path) -> None:
    """The three users (cheap Argon2 hashes: the server verifies a hash with the parameters
    written in it); the custom role is declared in passerelle.yml first."""
    config = root / "passerelle.yml"
    config.write_text(config.read_text("utf-8") + "roles:\n  sender: [audiences:export]\n",
                      "utf-8")
    with passerelle.open(root) as project:
        saved = passwords._hasher
        passwords._hasher = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
        try:
            with open_app_db(project) as db:
                for email, role in USERS:
                    add_user(db, email, role, PASSWORD, ("cli", "test"))
        finally:
            passwords._hasher = saved


def demo_server(root: Path):
    """The server app of the demo copy (its worker not started: tests run jobs themselves)."""
    project = passerelle.open(root)
    return project, create_server(project, loader=False)


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def signed_in(app, email: str) -> TestClient:
    c = TestClient(app, base_url="http://localhost")
    token = csrf_of(c.get("/login").text)
    r = c.post("/login", data={"csrf_token": token, "email": email, "password": PASSWORD,
                               "next": "/"}, follow_redirects=False)
    assert r.status_code == 303, r.text
    return c


def text_of(html: str) -> str:
    """The visible text of a page, tags removed and spaces collapsed."""
    import html as _html

    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)
    return re.sub(r"[ \t\r\n]+", " ", _html.unescape(re.sub(r"<[^>]+>", " ", html))).strip()
