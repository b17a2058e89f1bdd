"""A PNG of each page at 1280 px wide, so reviewers can look without running the app.

The server runs in this process on a free loopback port; the pages are seen as one existing
user (a session made for the run and revoked after it, both in the audit log), so each
page shows what that role sees: masked personal data for a marketer.
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

from passerelle.core import Project
from passerelle.errors import PasserelleError

CHROMIUM = Path("/usr/bin/chromium")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _sample_person(project: Project) -> str | None:
    """The person with the most linked records: the richest profile page."""
    import ibis

    engine = project.engine
    if not engine.exists("profiles"):
        return None
    p = engine.table("profiles")
    rows = engine.to_arrow(p.order_by([ibis.desc("record_count"), "person_id"]).limit(1)
                           .select("person_id")).column(0).to_pylist()
    return rows[0] if rows else None


def segment_and_campaign_pages(project: Project) -> list[tuple[str, str]]:
    """The segment builder (on the first saved segment), campaigns and experiments."""
    defs, exps = project.definition.segments, project.definition.experiments
    out = [("segments", "/segments")]
    if defs is not None and defs.segments:
        out.append(("segment-builder", f"/segments/{sorted(defs.segments)[0]}"))
    out += [("campaigns", "/campaigns"), ("experiments", "/experiments?baseline=5&mde=10")]
    if exps is not None and exps.experiments:
        out.append(("experiment", f"/experiments/{sorted(exps.experiments)[0]}"))
    return out


def take_screenshots(project: Project, out: Path, user_email: str, width: int = 1280,
                     chromium: Path = CHROMIUM) -> list[Path]:
    """Write one PNG per page into ``out``; returns their paths."""
    import uvicorn

    from passerelle.api.app import create_server
    from passerelle.governance import audit, users
    from passerelle.governance.db import open_app_db
    from passerelle.governance.sessions import create_session, revoke_session
    from passerelle.governance.signin import user_principal

    if not chromium.exists():
        raise PasserelleError(f"{chromium} is missing: screenshots are taken with Chromium.",
                              "Install it (Debian: apt-get install -y chromium).")
    from playwright.sync_api import sync_playwright

    app = create_server(project, loader=False)
    db = app.state.app_db = open_app_db(project)
    with db.session() as session:
        user = users.find(session, user_email)
        principal = user_principal(db, user)
        audit.record(session, audit.cli_actor(), "session.screenshots", resource=str(user.id))
    active = create_session(db, principal)
    person = _sample_person(app.state.web_project)
    pages = [("home", "/"), ("customers", "/customers?q=" + (person or "")),
             ("glossary", "/glossary")]
    if person:
        pages.append(("profile", f"/customers/{person}"))
    pages += segment_and_campaign_pages(app.state.web_project)
    if principal.can("pipeline:run"):
        pages.append(("health", "/health"))
    pages += _it_pages(principal)
    pages.append(("api-docs", "/docs"))

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise PasserelleError("The web server did not start for the screenshots.",
                                      "Run again with --debug to see why.")
            time.sleep(0.05)
        base = f"http://127.0.0.1:{port}"
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(chromium))
            viewport = {"width": width, "height": 800}
            anonymous = browser.new_page(viewport=viewport)
            anonymous.goto(base + "/login")
            written.append(_shot(anonymous, out / "login.png"))
            context = browser.new_context(viewport=viewport)
            context.add_cookies([{"name": "passerelle_session", "value": active.session_id,
                                  "url": base, "httpOnly": True, "sameSite": "Lax"}])
            page = context.new_page()
            for name, path in pages:
                page.goto(base + path, wait_until="networkidle")
                # sections loaded after the page (campaigns) show once they have arrived
                page.wait_for_selector('[aria-busy="true"]', state="detached")
                written.append(_shot(page, out / f"{name}.png"))
            browser.close()
    finally:
        revoke_session(db, active.session_id)
        server.should_exit = True
        thread.join(timeout=10)
        app.state.web_project.close()
        db.close()
    return written


def _it_pages(principal) -> list[tuple[str, str]]:
    """IT's pages (glossary review, data health, administration) this user may see."""
    pages = [("glossary-proposals", "/glossary/proposals")]
    if principal.can("pipeline:run"):
        pages += [("health-jobs", "/health/jobs"), ("health-checks", "/health/checks"),
                  ("health-violations", "/health/violations"),
                  ("health-identity", "/health/identity")]
    if principal.can("admin:users"):
        pages += [(f"admin-{s}", f"/admin/{s}") for s in ("users", "roles", "tokens",
                                                           "consent")]
    if principal.can("audit:read"):
        pages.append(("admin-audit", "/admin/audit"))
    return pages


def _shot(page, path: Path) -> Path:
    page.screenshot(path=str(path), full_page=True)
    return path
