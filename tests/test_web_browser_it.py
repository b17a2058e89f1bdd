"""IT's journey in Debian's Chromium against a real `passerelle serve` on a copy of the demo:
approve a glossary proposal, preview an identity rule change, read the quarantine, create
and revoke an API token. axe-core finds no serious or critical violation on any page, and no
request leaves 127.0.0.1."""

from __future__ import annotations

import re

import pytest
import yaml

import passerelle
from collect_helpers import Server
from passerelle.governance import proposals
from passerelle.governance.db import open_app_db
from test_web_browser import CHROMIUM, PageWatch
from web_helpers import IT_ADMIN, PASSWORD, add_web_users

FEWER_RULES = "keys:\n  - field: loyalty_card\n    max_names: null\nprobabilistic:\n" \
              "  enabled: false\n"


def test_it_approves_a_proposal_previews_identity_reads_quarantine_and_handles_tokens(
        demo_copy):
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: the browser tests need Debian's chromium "
                    "(apt-get install -y chromium)")
    from playwright.sync_api import expect, sync_playwright

    root = demo_copy.project_dir
    add_web_users(root)
    with passerelle.open(root) as project, open_app_db(project) as db:
        text = ("name: big_basket\ndescription: Largest order\nowner: CRM team\n"
                "type: aggregate\nentity: orders\nfunction: max\ncolumn: amount\n")
        proposal = proposals.propose(db, "trait", "big_basket", text, "panier record",
                                     ("user", "1"))
    server = Server(root, loader=False, cli=True).start()
    watch = PageWatch(server.url)
    accessible = watch.accessible

    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
            context = browser.new_context()
            watch.confine(context)
            page = context.new_page()
            page.goto(server.url + "/")
            page.get_by_label("E-mail").fill(IT_ADMIN)
            page.get_by_label("Mot de passe").fill(PASSWORD)
            page.get_by_role("button", name="Connexion").click()

            # the glossary: the proposal waiting, approved, written to the project
            page.get_by_role("navigation").get_by_role("link", name="Glossaire").click()
            page.get_by_role("link", name="Propositions en relecture").click()
            accessible(page)
            page.get_by_role("link", name=f"#{proposal.id}").click()
            expect(page.locator("#proposal-status")).to_have_text("ouverte")
            accessible(page)
            page.get_by_role("button", name="Approuver et écrire dans le projet").click()
            expect(page.get_by_role("status")).to_contain_text("traits/customer.yml")
            expect(page.locator("#proposal-status")).to_have_text("approuvée")
            written = yaml.safe_load((root / "traits" / "customer.yml").read_text())
            assert "big_basket" in {t["name"] for t in written["traits"]}
            page.goto(server.url + "/glossary/lineage/trait/total_spend")
            expect(page.locator("svg.lineage")).to_be_visible()
            accessible(page)

            # data health: the identity preview, then the quarantine
            page.get_by_role("navigation").get_by_role("link", name="Santé des données").click()
            expect(page.get_by_role("heading", name="Quarantaine")).to_be_visible()
            assert page.locator("#main table").count() >= 2
            accessible(page)
            page.get_by_role("link", name="Aperçu des règles d’identité").click()
            page.get_by_label("identity.yml proposé").fill(FEWER_RULES)
            page.get_by_role("button", name="Prévisualiser les changements").click()
            expect(page.locator("#splits")).to_contain_text("personne(s) en")
            accessible(page)
            for section in ("Tâches et exécutions", "Historique des contrôles",
                            "Plan de marquage"):
                page.get_by_role("link", name=section).click()
                accessible(page)

            # administration: a token created (shown once) and revoked
            page.get_by_role("navigation").get_by_role("link", name="Administration").click()
            accessible(page)
            page.get_by_role("link", name="Jetons d’API").click()
            page.get_by_label("Nom", exact=True).fill("site web")
            page.get_by_label("collect:write").check()
            page.get_by_role("button", name="Créer le jeton").click()
            secret = page.get_by_label("Secret").input_value()
            assert re.fullmatch(r"psl_[\w-]{40,}", secret)
            accessible(page)
            token_id = re.search(r"Jeton ([0-9a-f]+) créé",
                                 page.get_by_role("status").inner_text()).group(1)
            row = page.locator(f"#token-{token_id}")
            row.get_by_role("button", name="Révoquer").click()
            expect(page.locator(f"#token-{token_id}")).to_contain_text("révoqué")
            assert secret not in page.content()
            for section in ("Utilisateurs", "Rôles", "Finalités de consentement",
                            "Journal d’audit"):
                page.get_by_role("link", name=section, exact=True).click()
                accessible(page)
            expect(page.locator("#main")).to_contain_text("token.revoke")
            browser.close()
    finally:
        log = server.stop()
    assert "Traceback" not in log, log
    assert not watch.outside, f"the pages reached outside 127.0.0.1: {watch.outside}"
    assert not watch.problems, watch.problems
