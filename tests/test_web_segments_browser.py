"""A marketer's journey in Debian's Chromium against a real `passerelle serve` on a copy of
the shared demo: sign in, build a segment with the forms, watch the live count change, save
it, turn it into an audience with a holdout, export it as a job followed by its progress
bar, read the campaign results and an experiment's verdict. axe-core finds no serious or
critical violation on these pages; no request leaves 127.0.0.1."""

from __future__ import annotations

import shutil

import pytest
import yaml

from collect_helpers import Server
from test_web_browser import CHROMIUM, PageWatch, settled
from web_demo_helpers import MARKETER, PASSWORD, add_web_users


def test_build_save_export_a_segment_and_read_the_campaigns(shared_demo, tmp_path):
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: the browser tests need Debian's chromium "
                    "(apt-get install -y chromium)")
    from playwright.sync_api import expect, sync_playwright

    root = tmp_path / "demo"
    shutil.copytree(shared_demo.project_dir, root)
    add_web_users(root)
    server = Server(root, loader=False, cli=True).start()
    watch = PageWatch(server.url)
    accessible = watch.accessible

    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM))
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            watch.confine(context)
            page = context.new_page()
            page.goto(server.url + "/")
            page.get_by_label("E-mail").fill(MARKETER)
            page.get_by_label("Mot de passe").fill(PASSWORD)
            page.get_by_role("button", name="Connexion").click()

            page.get_by_role("navigation").get_by_role("link", name="Segments").click()
            accessible(page)
            page.get_by_role("link", name="Construire un nouveau segment").click()
            count = page.locator("#live-count")
            expect(count).to_be_visible()  # everyone, before any condition holds a value
            settled(page)
            page.locator("#g0_r0_name").select_option("country")
            page.locator("#g0_r0_value").fill("FR")
            expect(page.locator(".group-count")).to_have_count(1)
            french = count.inner_text()
            page.get_by_role("button", name="+ Groupe").click()
            expect(page.locator("#g1_r0_kind")).to_be_attached()
            settled(page)
            page.locator("#g1_r0_kind").select_option("did")
            expect(page.locator("#g1_r0_event")).to_be_attached()
            settled(page)
            page.locator("#g1_r0_event").select_option("Product Viewed")
            page.locator("#g1_r0_days").fill("30")
            expect(page.locator(".group-count")).to_have_count(2)
            expect(count).not_to_have_text(french)  # the second group removed people
            expect(page.locator("table.sample td.pii").first).to_contain_text("***")
            accessible(page)

            page.get_by_label("Nom (a-z, 0-9, _)").fill("visiteurs_fr")
            page.get_by_label("Qui en fait partie, en mots simples").fill(
                "Clients français ayant vu un produit ce mois-ci")
            page.get_by_label("Responsable (équipe ou personne)").fill("CRM")
            page.get_by_role("button", name="Enregistrer sous segments/NOM.yml").click()
            expect(page.get_by_role("status")).to_contain_text("segments/visiteurs_fr.yml")
            saved = yaml.safe_load((root / "segments" / "visiteurs_fr.yml").read_text())
            assert saved["where"]["all"][1] == {"did": {"event": "Product Viewed",
                                                        "in_last_days": 30}}

            page.get_by_label("Nom de l’audience (a-z, 0-9, _)").fill("visiteurs_fr_email")
            page.get_by_label("Groupe témoin", exact=False).fill("20")
            page.get_by_role("button", name="Créer l’audience").click()
            expect(page.locator("#job-status")).to_have_text("réussie", timeout=60_000)

            page.goto(server.url + "/segments/visiteurs_fr")
            page.locator("#export-destination").select_option("brevo")
            page.get_by_role("button", name="Exporter").click()
            expect(page.locator("#job-status")).to_have_text("réussie", timeout=60_000)
            expect(page.locator("#job-bar")).to_have_attribute("value", "1.0")
            accessible(page)
            assert list((root / "exports").glob("visiteurs_fr_email-*.csv"))

            page.get_by_role("link", name="Lire les résultats des campagnes").click()
            expect(page.get_by_role("heading", name="Résultats des campagnes")).to_be_visible()
            expect(page.locator("#results-table tbody tr").first).to_be_visible()
            expect(page.locator("svg.svgchart").first).to_be_visible()
            accessible(page)
            page.get_by_role("link", name="Expériences et calcul de la taille d’échantillon"
                             ).click()
            page.get_by_label("Taux de conversion actuel (%)").fill("5")
            page.get_by_label("Plus petit changement à détecter", exact=False).fill("10")
            page.get_by_role("button", name="Calculer").click()
            expect(page.locator("#sample-size")).to_contain_text("Il faut")
            accessible(page)
            page.locator("table a").first.click()
            expect(page.locator(".verdict").first).to_contain_text("entre")
            expect(page.locator("#srm")).to_be_visible()
            accessible(page)

            # the calculator's figures carried into the set-up form, saved into the project
            page.go_back()
            expect(page.locator("#x-planned")).not_to_have_value("")
            page.locator("#x-name").fill("livraison_offerte")
            page.locator("#x-description").fill("Livraison offerte dès 30 €")
            page.get_by_role("button", name="Enregistrer l’expérience").click()
            expect(page.locator("#saved")).to_contain_text("experiments/livraison_offerte.yml")
            expect(page.locator("#plan-size")).not_to_be_empty()
            accessible(page)
            assert (root / "experiments" / "livraison_offerte.yml").is_file()
            browser.close()
    finally:
        log = server.stop()
    assert "Traceback" not in log, log
    assert not watch.outside, f"the pages reached outside 127.0.0.1: {watch.outside}"
    assert not watch.problems, watch.problems
