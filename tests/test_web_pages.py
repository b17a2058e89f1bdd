"""The web app over HTTP in-process: sign-in and CSRF, masking per role, the pages' text in
both languages, formatting per locale, the API docs page without a CDN."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import passerelle
from passerelle.api.app import create_server
from passerelle.formatting import Formatter, for_config, for_language
from passerelle.web.i18n import FR
from web_helpers import IT_ADMIN, MARKETER, PASSWORD, csrf_of, web_project

TEMPLATES = Path(passerelle.__file__).parent / "web" / "templates"
WEB_CODE = Path(passerelle.__file__).parent / "web"


@pytest.fixture(scope="module")
def server_app(tmp_path_factory):
    root = web_project(tmp_path_factory.mktemp("web") / "proj")
    project = passerelle.open(root)
    app = create_server(project, loader=False)
    yield app
    app.state.web_project.close()
    app.state.app_db.close()
    project.close()


def client(app) -> TestClient:
    return TestClient(app, base_url="http://localhost")


def signed_in(app, email: str) -> TestClient:
    c = client(app)
    token = csrf_of(c.get("/login").text)
    r = c.post("/login", data={"csrf_token": token, "email": email, "password": PASSWORD,
                               "next": "/"}, follow_redirects=False)
    assert r.status_code == 303, r.text
    return c


def test_pages_need_a_session_and_sign_in_sets_a_strict_cookie(server_app):
    c = client(server_app)
    r = c.get("/customers?q=x", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login?next=/customers%3Fq%3Dx"
    token = csrf_of(c.get("/login").text)
    r = c.post("/login", data={"csrf_token": token, "email": MARKETER, "password": PASSWORD,
                               "next": "https://evil.example/"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/"  # never an open redirect
    cookie = next(v for v in r.headers.get_list("set-cookie")
                  if v.startswith("passerelle_session="))
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie
    assert c.get("/").status_code == 200


def test_a_login_post_without_its_csrf_token_is_refused(server_app):
    c = client(server_app)
    c.get("/login")
    r = c.post("/login", data={"csrf_token": "forged", "email": MARKETER,
                               "password": PASSWORD})
    assert r.status_code == 403 and "passerelle_session" not in r.headers.get("set-cookie", "")


def test_a_wrong_password_is_refused_politely(server_app):
    c = client(server_app)
    token = csrf_of(c.get("/login").text)
    r = c.post("/login", data={"csrf_token": token, "email": MARKETER, "password": "nope"})
    assert r.status_code == 401
    assert "L’e-mail ou le mot de passe est incorrect." in r.text  # a French project
    assert 'role="alert"' in r.text


def test_sign_out_needs_the_session_csrf_token_then_ends_the_session(server_app):
    c = signed_in(server_app, MARKETER)
    assert c.post("/logout", data={"csrf_token": "forged"}).status_code == 403
    assert c.get("/", follow_redirects=False).status_code == 200
    token = csrf_of(c.get("/").text)
    assert c.post("/logout", data={"csrf_token": token},
                  follow_redirects=False).headers["location"] == "/login"
    assert c.get("/", follow_redirects=False).status_code == 303


def test_home_tiles_and_their_glossary_entries(server_app):
    c = signed_in(server_app, MARKETER)
    home = c.get("/").text
    tiles = re.findall(r'<li class="tile" id="tile-([a-z_]+)">', home)
    assert len(tiles) == 7
    glossary = c.get("/glossary").text
    for key in tiles:
        assert f'href="/glossary#indicator-{key}"' in home
        assert f'id="indicator-{key}"' in glossary
    assert 'id="metric-revenue"' in glossary  # the project's own metric
    # 2 customers; orders of the last 90 days to 12 Feb 2026: 65 € + 20 €, by 2 people
    assert re.search(r'id="tile-customers">.*?<p class="figure">2</p>', home, re.S)
    assert re.search(r'id="tile-revenue">.*?<p class="figure">85\xa0€</p>', home, re.S)
    assert "jusqu’au 2026-02-12" in home  # the last order's day in Paris, not in UTC
    assert re.search(r'id="tile-data_quality">.*?<p class="figure">100\xa0%</p>', home, re.S)


def test_the_profile_masks_personal_data_unless_the_role_may_read_it(server_app):
    marketer, admin = signed_in(server_app, MARKETER), signed_in(server_app, IT_ADMIN)
    found = marketer.get("/customers", params={"q": "dupont marie"}).text
    person = re.search(r'href="/customers/(P[0-9a-f]+)"', found).group(1)
    assert "m***@example.fr" in found and "marie.dupont@example.fr" not in found
    page = marketer.get(f"/customers/{person}").text
    assert "m***@example.fr" in page and "marie.dupont" not in page
    assert "06 12 34 56 78" not in page and "+33 6 12 34 56 78" not in page
    page = admin.get(f"/customers/{person}").text
    assert "marie.dupont@example.fr" in page
    assert "Données personnelles visibles" in page


def test_data_health_is_for_it_only(server_app):
    assert signed_in(server_app, MARKETER).get("/health").status_code == 403
    page = signed_in(server_app, IT_ADMIN).get("/health")
    assert page.status_code == 200
    # the quarantined order counted by reason, with its file, row and rejected value
    assert re.search(r"<th scope=\"row\">orders</th><td>amount: not a valid number</td>"
                     r"<td class=\"num\">1</td>", page.text), page.text
    assert "ligne 4 de data/orders.csv" in page.text and "dix euros" in page.text
    assert page.text.count("réussi</span>") == 2  # both checks of the last run passed


def test_htmx_search_answers_the_results_fragment(server_app):
    c = signed_in(server_app, MARKETER)
    r = c.get("/customers", params={"q": "PAUL.MARTIN@example.fr"}, headers={"HX-Request": "true"})
    assert "<html" not in r.text and "Paul Martin" in r.text


def test_language_switch_needs_csrf_and_is_kept(server_app):
    c = signed_in(server_app, MARKETER)
    token = csrf_of(c.get("/").text)
    assert c.post("/language", data={"csrf_token": "x", "lang": "en"}).status_code == 403
    c.post("/language", data={"csrf_token": token, "lang": "en", "next": "/glossary"})
    page = c.get("/").text
    assert '<html lang="en">' in page and "The indicators that matter" in page
    assert "85 €" not in page and "€85" in page


def test_api_docs_are_served_without_a_cdn(server_app):
    page = client(server_app).get("/docs").text
    scripts = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert scripts and all(s.startswith("/static/") or s.startswith("/openapi")
                           for s in scripts), scripts
    c = client(server_app)
    assert all(c.get(s).status_code == 200 for s in scripts if s.startswith("/static/"))
    assert c.get("/redoc").status_code == 404  # its page loads from a CDN


def test_every_template_message_has_its_french():
    """The catalogue covers every message the templates and page code write."""
    messages: set[str] = set()
    sources = [*TEMPLATES.glob("*.html"), *WEB_CODE.glob("*.py")]
    for path in sources:
        text = path.read_text(encoding="utf-8")
        messages |= set(re.findall(r'_\(\s*"((?:[^"\\]|\\.)+)"', text))
        messages |= set(re.findall(r"_\(\s*'((?:[^'\\]|\\.)+)'", text))
    from passerelle.web import data

    messages |= {label for _k, label, _kind in data.INDICATORS}
    messages |= set(data.DEFINITIONS.values())
    messages |= {"No profile yet: run the pipeline.", "No check has run yet.",
                 "No audience with a holdout has been sent yet."}
    missing = sorted(m for m in messages if m not in FR)
    assert not missing, missing


def test_numbers_money_and_dates_follow_the_locale():
    fr, en = Formatter("fr_FR", "Europe/Paris"), Formatter("en_GB", "Europe/Paris")
    assert fr.money(98930.1) == "98\u202f930,10\xa0€"
    assert en.money(98930.1) == "€98,930.10"
    assert fr.money(84.6, cents=False) == "85\xa0€" and en.money(84.6, cents=False) == "€85"
    assert fr.percent(0.253) == "25,3\xa0%"
    assert en.percent(0.05, sign=True) == "+5.0%"
    assert fr.integer(1234.6) == "1\u202f235"
    assert fr.date(datetime(2026, 2, 11, 23, 30)) == "2026-02-12"  # the day in Paris
    assert en.timestamp("2026-02-11T23:30:00", seconds=False) == "2026-02-12 00:30 CET"
    assert fr.value(None) == "—"


def test_the_web_reads_figures_in_the_project_locale_or_the_chosen_language(server_app):
    config = server_app.state.web_project.config
    assert for_language("fr", config).locale == for_config(config).locale  # a French project
    assert str(for_language("en", config).locale) == "en_GB"
    assert for_language("fr", config).value(True) == "oui"
    assert for_language("en", config).value(True) == "yes"


def test_the_cli_and_the_web_write_a_profile_s_figures_alike(server_app):
    """The same person's revenue, orders and first day: one string in the terminal and on
    the page, because both go through passerelle.formatting."""
    from typer.testing import CliRunner

    from passerelle.cli import app as cli

    web = signed_in(server_app, IT_ADMIN)
    found = web.get("/customers", params={"q": "dupont marie"}).text
    person = re.search(r'href="/customers/(P[0-9a-f]+)"', found).group(1)
    page = web.get(f"/customers/{person}").text
    project = server_app.state.web_project
    from passerelle.identity import service

    summary = service.profile(project.definition, project.engine, person)["summary"]
    fmt = for_config(project.config)
    expected = [fmt.money(summary["revenue"]),
                fmt.timestamp(summary["first_seen_at"], seconds=False)]
    root = project.root
    done = CliRunner().invoke(cli, ["profile", person, "--project", str(root)],
                              env={"COLUMNS": "200"})
    assert done.exit_code == 0, done.output
    for text in expected:
        assert text in page and text in done.output, (text, done.output)
    assert "€" in expected[0] and "," in expected[0]  # French: 65,00 €, not 65.00
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2} CES?T", expected[1])  # Paris time


def test_splink_evidence_becomes_one_bar_per_comparison():
    from passerelle.web.data import link_evidence

    edges = [{"node_a": "crm:1", "node_b": "shop:9", "rule": "probabilistic", "weight": 11.2,
              "evidence": {"last_name": {"level": "exact", "weight": 8.5},
                           "birth_date": {"level": "different", "weight": -3.1}}},
             {"node_a": "crm:1", "node_b": "crm:2", "rule": "email",
              "evidence": {"field": "email"}}]
    splink, rule = link_evidence(edges)
    assert splink["comparisons"] == [
        {"name": "last_name", "level": "exact", "weight": 8.5},
        {"name": "birth_date", "level": "different", "weight": -3.1}]
    assert rule["comparisons"] == [] and rule["field"] == "email"
