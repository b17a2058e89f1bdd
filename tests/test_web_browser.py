"""The web app in Debian's Chromium against a real `passerelle serve`: sign in, read the
home tiles, find a customer by name, open the profile (masked for a marketer, plain for IT),
a wrong password refused; no request leaves 127.0.0.1, and axe-core finds no serious or
critical accessibility violation on any page.

Needs /usr/bin/chromium and npm (axe-core is pinned in tests/browser/package.json).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from browser_helpers import npm_package
from collect_helpers import Server
from web_helpers import IT_ADMIN, MARKETER, PASSWORD

CHROMIUM = Path("/usr/bin/chromium")
SEVERE = """async () => { const r = await axe.run(); return {passes: r.passes.length,
    severe: r.violations.filter(v => ["serious", "critical"].includes(v.impact))
        .map(v => `${v.id}: ${v.nodes.map(n => n.target.join(" ")).join(", ")}`)}; }"""


class PageWatch:
    """What a browser journey checks on every page: axe-core finds no serious or critical
    violation (``accessible``), and no request leaves the server (``confine``)."""

    def __init__(self, server_url: str) -> None:
        self.server_url = server_url
        self.axe = axe_source()
        self.outside: list[str] = []
        self.problems: dict[str, list[str]] = {}

    def confine(self, context) -> None:
        context.route("**/*", lambda route: route.continue_()
                      if route.request.url.startswith(self.server_url)
                      else (self.outside.append(route.request.url), route.abort()))

    def accessible(self, page) -> None:
        page.add_script_tag(content=self.axe)
        found = page.evaluate(SEVERE)
        assert found["passes"] > 10, found
        if found["severe"]:
            self.problems[page.url] = found["severe"]


def settled(page) -> None:
    """Wait until htmx has wired the content it swapped in. htmx 2 attaches its listeners
    in the settle step (20 ms after the swap, later on a loaded machine): an element is in
    the page, with the class ``htmx-added``, before a change on it does anything."""
    page.wait_for_function("() => !document.querySelector('.htmx-added, .htmx-request')")


def axe_source() -> str:
    return (npm_package("axe-core") / "axe.min.js").read_text()


def test_sign_in_find_a_customer_and_read_the_profile(web_tiny):
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: the browser tests need Debian's chromium "
                    "(apt-get install -y chromium)")
    from playwright.sync_api import expect, sync_playwright

    axe = axe_source()
    server = Server(web_tiny, loader=False, cli=True).start()
    outside: list[str] = []
    problems: dict[str, list[str]] = {}

    def accessible(page) -> None:
        page.add_script_tag(content=axe)
        found = page.evaluate(SEVERE)
        assert found["passes"] > 10, found  # axe really checked the page
        if found["severe"]:
            problems[page.url] = found["severe"]

    def sign_in(page, email: str, password: str = PASSWORD) -> None:
        page.goto(server.url + "/")
        page.get_by_label("E-mail").fill(email)
        page.get_by_label("Mot de passe").fill(password)
        page.get_by_role("button", name="Connexion").click()

    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM))
            for_marketer = browser.new_context()
            for_marketer.route("**/*", lambda route: route.continue_()
                               if route.request.url.startswith(server.url)
                               else (outside.append(route.request.url), route.abort()))
            page = for_marketer.new_page()

            sign_in(page, MARKETER, "not the password")
            expect(page.get_by_role("alert")).to_contain_text("mot de passe est incorrect")
            accessible(page)

            sign_in(page, MARKETER)
            expect(page.locator(".tile")).to_have_count(7)
            expect(page.locator("#tile-customers .figure")).to_have_text("2")
            accessible(page)

            page.get_by_role("navigation").get_by_role("link", name="Clients", exact=True).click()
            page.get_by_label("Nom, e-mail, téléphone ou identifiant source").fill(
                "dupont marie")
            page.get_by_role("button", name="Rechercher").click()  # HTMX swaps the results
            result = page.get_by_role("link", name="Marie Dupont")
            expect(result).to_be_visible()
            assert "q=dupont" in page.url  # the search is in the address, shareable
            accessible(page)

            result.click()
            expect(page.get_by_role("heading", level=1)).to_contain_text("Marie Dupont")
            email = page.locator('td[data-field="email"]')
            expect(email).to_have_text("m***@example.fr")
            profile_url = page.url
            accessible(page)
            page.goto(server.url + "/glossary")
            accessible(page)

            for_it = browser.new_context()
            for_it.route("**/*", lambda route: route.continue_()
                         if route.request.url.startswith(server.url)
                         else (outside.append(route.request.url), route.abort()))
            page = for_it.new_page()
            sign_in(page, IT_ADMIN)
            page.goto(profile_url)
            expect(page.locator('td[data-field="email"]')).to_have_text(
                "marie.dupont@example.fr")
            page.get_by_role("navigation").get_by_role("link", name="Santé des données").click()
            expect(page.get_by_role("heading", level=1)).to_have_text("Santé des données")
            accessible(page)
            page.goto(server.url + "/docs")
            expect(page.locator(".swagger-ui")).to_be_visible()
            browser.close()
    finally:
        log = server.stop()
    assert "Traceback" not in log, log
    assert not outside, f"the pages reached outside 127.0.0.1: {outside}"
    assert not problems, problems
