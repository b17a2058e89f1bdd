"""The glossary's review flow on the shared demo: a marketer proposes, a reviewer comments and
approves or rejects; approval writes the YAML (checked by the project's loader first, the
file's other definitions kept); lineage drawn down to the source columns."""

from __future__ import annotations

import re

import pytest
import yaml
from fastapi.testclient import TestClient

from passerelle.governance import audit
from passerelle.leaves import load_leaves
from web_helpers import (
    ANALYST,
    IT_ADMIN,
    MARKETER,
    add_web_users,
    csrf_of,
    served_project,
    signed_in,
)


@pytest.fixture(scope="module")
def glossary_app(demo_copy):
    add_web_users(demo_copy.project_dir)
    with served_project(demo_copy.project_dir) as (_, app):
        yield app


def _propose(c: TestClient, kind: str, name: str, text: str, note: str = "") -> object:
    token = csrf_of(c.get("/glossary/propose").text)
    return c.post("/glossary/proposals", data={"csrf_token": token, "kind": kind,
                                               "name": name, "yaml_text": text, "note": note},
                  follow_redirects=False)


def test_a_marketer_proposes_a_change_and_an_analyst_approves_it(glossary_app):
    root = glossary_app.state.web_project.root
    before = yaml.safe_load((root / "metrics" / "sales.yml").read_text())
    marketer = signed_in(glossary_app, MARKETER)
    form = marketer.get("/glossary/propose", params={"kind": "metric", "name": "aov"}).text
    assert "Panier moyen TTC (chiffre d" in form  # starts from today's definition
    current = re.search(r'<textarea id="p-yaml"[^>]*>(.*?)</textarea>', form, re.S).group(1)
    import html

    changed = html.unescape(current).replace("Panier moyen TTC", "Panier moyen TTC, hors frais")
    r = _propose(marketer, "metric", "aov", changed, "les frais de port faussent le panier")
    assert r.status_code == 303
    url = r.headers["location"]
    page = marketer.get(url).text
    assert "hors frais" in page and "Approuver" not in page  # a marketer cannot approve
    token = csrf_of(page)
    r = marketer.post(url + "/decide", data={"csrf_token": token, "decision": "approve"})
    assert r.status_code == 403 and "glossary:approve" in r.text
    assert yaml.safe_load((root / "metrics" / "sales.yml").read_text()) == before

    analyst = signed_in(glossary_app, ANALYST)
    page = analyst.get(url).text
    r = analyst.post(url + "/comment", data={"csrf_token": csrf_of(page),
                                             "text": "OK pour moi"})
    assert r.status_code == 200 and "OK pour moi" in r.text
    r = analyst.post(url + "/decide", data={"csrf_token": "forged", "decision": "approve"})
    assert r.status_code == 403
    r = analyst.post(url + "/decide", data={"csrf_token": csrf_of(page), "decision": "approve"})
    assert r.status_code == 200 and "écrite dans metrics/sales.yml" in r.text
    after = yaml.safe_load((root / "metrics" / "sales.yml").read_text())
    new = {m["name"]: m for m in after["metrics"]}
    old = {m["name"]: m for m in before["metrics"]}
    assert new["aov"]["definition"].startswith("Panier moyen TTC, hors frais")
    assert {k: v for k, v in new.items() if k != "aov"} == \
        {k: v for k, v in old.items() if k != "aov"}  # the others are kept as they were
    assert after["semantic_models"] == before["semantic_models"]
    assert "# The shared glossary of metrics" in (root / "metrics" / "sales.yml").read_text()
    assert "hors frais" in marketer.get("/glossary").text  # the web app reads it again
    r = analyst.post(url + "/decide", data={"csrf_token": csrf_of(page), "decision": "reject"})
    assert r.status_code == 400 and "already approved" in r.text
    logged = [e["action"] for e in audit.query(glossary_app.state.app_db, action="glossary.*")]
    assert logged[:3] == ["glossary.approve", "glossary.comment", "glossary.propose"]


def test_a_definition_the_loader_refuses_is_never_proposed_nor_written(glossary_app):
    root = glossary_app.state.web_project.root
    marketer = signed_in(glossary_app, MARKETER)
    r = _propose(marketer, "trait", "big_basket",
                 "name: big_basket\ntype: aggregate\nentity: baskets\nfunction: sum\n")
    assert r.status_code == 400 and "traits/customer.yml:" in r.text  # file:line said
    assert "big_basket" not in (root / "traits" / "customer.yml").read_text()
    r = _propose(marketer, "metric", "m", "name: other\n")
    assert r.status_code == 400 and "not &#39;m&#39;" in r.text
    r = _propose(marketer, "metric", "m", "name: [m\n")
    assert r.status_code == 400 and "not valid YAML" in r.text


def test_a_new_trait_is_added_to_the_file_and_a_rejected_one_is_not(glossary_app):
    root = glossary_app.state.web_project.root
    text = ("name: big_basket\ndescription: Largest order\nowner: CRM team\n"
            "type: aggregate\nentity: orders\nfunction: max\ncolumn: amount\n")
    marketer, it = signed_in(glossary_app, MARKETER), signed_in(glossary_app, IT_ADMIN)
    first = _propose(marketer, "trait", "big_basket", text).headers["location"]
    second = _propose(marketer, "trait", "small_basket",
                      text.replace("big_basket", "small_basket").replace("max", "min")
                      ).headers["location"]
    listing = it.get("/glossary/proposals").text
    assert first in listing and second in listing
    token = csrf_of(it.get(first).text)
    assert "Rejetée." in it.post(second + "/decide", data={"csrf_token": token,
                                                          "decision": "reject"}).text
    assert it.post(first + "/decide", data={"csrf_token": token,
                                            "decision": "approve"}).status_code == 200
    written = (root / "traits" / "customer.yml").read_text()
    assert "name: big_basket" in written and "small_basket" not in written
    leaves = load_leaves(root)
    assert not [p for p in leaves.problems if p.severity == "error"]
    assert {"big_basket", "total_spend", "orders_90d"} <= {t.name for t in leaves.traits.traits}


def test_lineage_is_drawn_down_to_the_source_columns(glossary_app):
    c = signed_in(glossary_app, MARKETER)
    page = c.get("/glossary/lineage/trait/total_spend").text
    assert "<svg" in page and "<title id=\"lineage-title\">" in page
    assert "eshop_orders · total_paid_tax_incl" in page  # PrestaShop's own column
    assert "stg_eshop_orders.amount" in page
    page = c.get("/glossary/lineage/metric/aov").text
    assert "metric revenue" in page and "measure revenue (sum)" in page
    assert "orders.amount" in page
    assert c.get("/glossary/lineage/metric/nothing_here").status_code == 404
    assert c.get("/glossary/lineage/table/x").status_code == 404
