"""The web app on a copy of the shared demo: a marketer, an IT admin and a custom role that
may export but not write segments; signed-in TestClients (base_url http://localhost)."""

from __future__ import annotations

import html as html_module
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import passerelle
from passerelle.api.app import create_server
from web_helpers import IT_ADMIN, MARKETER, PASSWORD, csrf_of, served_project, signed_in
from web_helpers import add_web_users as add_people

__all__ = ["IT_ADMIN", "MARKETER", "PASSWORD", "SENDER", "add_web_users", "csrf_of",
           "demo_server", "signed_in", "text_of"]

SENDER = "sender@example.fr"  # audiences:export without segments:write
USERS = ((MARKETER, "marketer"), (IT_ADMIN, "it_admin"), (SENDER, "sender"))


def add_web_users(root: Path) -> None:
    """The three users; the custom role is declared in passerelle.yml first."""
    config = root / "passerelle.yml"
    config.write_text(config.read_text("utf-8") + "roles:\n  sender: [audiences:export]\n",
                      "utf-8")
    add_people(root, USERS)


def demo_server(root: Path):
    """The server app of the demo copy (its worker not started: tests run jobs themselves)."""
    project = passerelle.open(root)
    return project, create_server(project, loader=False)


@contextmanager
def served_demo(root: Path) -> Iterator[tuple]:
    """The demo copy with the web users, and its server app; everything closed after."""
    add_web_users(root)
    with served_project(root) as served:
        yield served


def text_of(html: str) -> str:
    """The visible text of a page, tags removed and spaces collapsed."""
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)
    return re.sub(r"[ \t\r\n]+", " ", html_module.unescape(re.sub(r"<[^>]+>", " ", html))).strip()
