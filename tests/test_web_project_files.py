"""Project files written from the web app, on a copy of the shared demo: an experiment set
up under the sample-size calculator (experiments/NAME.yml, read back by the loader); a
segment saved from the builder keeps the comments and key order of its file, and refuses
to overwrite a change made since the builder opened it; a segment nested deeper than the
builder is shown read-only, with its file and where to edit it."""

from __future__ import annotations

import re

import pytest
import yaml

from passerelle.governance.audit import query
from passerelle.measure.design import sample_size_proportions
from passerelle.project.experiments_models import load_experiments
from passerelle.web.segment_data import reload_definitions
from web_demo_helpers import (
    MARKETER,
    SENDER,
    csrf_of,
    served_demo,
    signed_in,
    text_of,
)

SETUP = {"name": "free_shipping", "description": "Free shipping from 30 € on the e-shop",
         "hypothesis": "A lower threshold turns more baskets into orders",
         "owner": "E-commerce", "v0_name": "control", "v0_weight": "50",
         "v1_name": "free_30", "v1_weight": "50", "metric_name": "conversion_14d",
         "metric_type": "conversion", "window_days": "14", "mde": "10",
         "planned_people": "31000", "start": "2026-12-14"}


@pytest.fixture(scope="module")
def demo(demo_copy):
    with served_demo(demo_copy.project_dir) as (project, app):
        yield project, app


def _reload(app) -> None:
    reload_definitions(app.state.web_project, app.state.server_project)


# ------------------------------------------------------------------------ experiment set-up
def test_the_calculator_fills_the_set_up_form(demo):
    _, app = demo
    page = signed_in(app, MARKETER).get("/experiments", params={
        "metric": "conversion", "baseline": "4", "mde": "10", "variant_share": "40"})
    size = sample_size_proportions(0.04, 0.10, True, 0.05, 0.8, 40 / 60)
    form = page.text[page.text.index('id="setup-form"'):]
    assert f'name="planned_people" type="text" inputmode="numeric" ' \
           f'value="{size.control + size.variant}"' in form
    assert 'name="mde" type="text" inputmode="decimal" value="10"' in form
    assert 'name="v0_weight" type="text" inputmode="decimal" size="5" value="60"' in form
    assert 'name="v1_weight" type="text" inputmode="decimal" size="5" value="40"' in form


def test_set_up_writes_the_file_the_loader_reads_and_asks_before_replacing(demo):
    project, app = demo
    root = project.root
    c = signed_in(app, MARKETER)
    token = csrf_of(c.get("/experiments").text)
    audience = sorted(app.state.web_project.definition.segments.segments)[0]
    form = {"csrf_token": token, **SETUP, "audience": audience}
    r = c.post("/experiments/setup", data=form, follow_redirects=False)
    assert r.status_code == 303, text_of(r.text)
    assert r.headers["location"] == "/experiments/free_shipping?saved=1"
    path = root / "experiments" / "free_shipping.yml"
    cfg = load_experiments(root).experiments["free_shipping"]  # the CLI's loader reads it
    assert (cfg.hypothesis, cfg.audience, cfg.planned_people) == (
        SETUP["hypothesis"], audience, 31000)
    assert cfg.mde == pytest.approx(0.10) and cfg.control == "control"
    assert [v.weight for v in cfg.variants] == [50, 50] and str(cfg.start) == "2026-12-14"
    assert cfg.primary_metric.type == "conversion" and cfg.primary_metric.window_days == 14
    assert path.read_text("utf-8").startswith("# Set up from the web app by ")
    entry = query(app.state.app_db, action="experiment.save", limit=1)[0]
    assert entry["resource"] == "experiments/free_shipping.yml"
    page = c.get("/experiments/free_shipping?saved=1")
    assert page.status_code == 200 and "experiments/free_shipping.yml" in page.text
    assert SETUP["hypothesis"] in text_of(page.text)

    # the same name again: replaced only when ticked
    before = path.read_text("utf-8")
    r = c.post("/experiments/setup", data={**form, "mde": "5"})
    assert r.status_code == 409 and "Remplacer le fichier existant" in r.text
    assert path.read_text("utf-8") == before
    r = c.post("/experiments/setup", data={**form, "mde": "5", "overwrite": "1"},
               follow_redirects=False)
    assert r.status_code == 303
    assert yaml.safe_load(path.read_text("utf-8"))["mde"] == pytest.approx(0.05)


def test_set_up_refuses_what_the_loader_refuses_and_writes_nothing(demo):
    project, app = demo
    c = signed_in(app, MARKETER)
    token = csrf_of(c.get("/experiments").text)
    base = {"csrf_token": token, **SETUP, "name": "refused"}
    cases = [({"v1_weight": "-5"}, "variants.1.weight"),  # the model's own check, located
             ({"metric_name": "Conversion 14 j"}, "primary_metric.name"),
             ({"v1_name": ""}, "deux variantes"),
             ({"audience": "no_such_segment"}, "no_such_segment"),
             ({"name": "../evil"}, "a-z"),
             ({"start": "14/12/2026"}, "AAAA-MM-JJ")]
    for change, said in cases:
        r = c.post("/experiments/setup", data={**base, **change})
        assert r.status_code == 400 and said in text_of(r.text), (change, text_of(r.text))
    assert not (project.root / "experiments" / "refused.yml").exists()
    assert not (project.root / "evil.yml").exists()


def test_set_up_needs_the_permission_and_the_form_token(demo):
    project, app = demo
    sender = signed_in(app, SENDER)
    page = sender.get("/experiments")
    assert "experiments:write" in text_of(page.text) and 'id="setup-form"' not in page.text
    r = sender.post("/experiments/setup", data={"csrf_token": csrf_of(page.text), **SETUP,
                                                "name": "not_allowed"})
    assert r.status_code == 403
    r = signed_in(app, MARKETER).post("/experiments/setup",
                                      data={"csrf_token": "forged", **SETUP, "name": "forged"})
    assert r.status_code == 403
    assert not any((project.root / "experiments" / f"{n}.yml").exists()
                   for n in ("not_allowed", "forged"))


# ------------------------------------------------------------------- segments' own files
def _builder_fields(html: str) -> dict[str, str]:
    """The builder form's fields as the page filled them (inputs and selected options)."""
    form = html[html.index('id="builder"'):] if 'id="builder"' in html else html
    fields = {}
    for tag in re.findall(r"<input[^>]*>", form):
        named, valued = re.search(r'name="([^"]+)"', tag), re.search(r'value="([^"]*)"', tag)
        if named and valued and ('type="checkbox"' not in tag or " checked" in tag):
            fields[named.group(1)] = valued.group(1)
    for name, body in re.findall(r'<select[^>]*name="([^"]+)"[^>]*>(.*?)</select>', form,
                                 flags=re.S):
        chosen = re.search(r'<option value="([^"]*)"[^>]*selected', body)
        if chosen:
            fields[name] = chosen.group(1)
    return fields


def test_saving_an_existing_segment_keeps_its_comments_and_key_order(demo):
    project, app = demo
    path = project.root / "segments" / "best_customers.yml"
    original = path.read_text("utf-8")
    commented = original.replace("owner: CRM team", "owner: CRM team  # answers for it") \
        .replace("  all:\n", "  all:\n    # IT: orders first, then spend (ticket CRM-12)\n", 1)
    path.write_text(commented, "utf-8")
    c = signed_in(app, MARKETER)
    page = c.get("/segments/best_customers")
    fields = _builder_fields(page.text)
    assert fields["base_hash"] and fields["g1_r0_value"] == "300"
    r = c.post("/segments/save", data={**fields, "g1_r0_value": "400"},
               follow_redirects=False)
    assert r.status_code == 303, text_of(r.text)
    saved = path.read_text("utf-8")
    for line in commented.splitlines():
        if "#" in line:
            assert line in saved.splitlines()
    keys = [line.split(":")[0] for line in saved.splitlines() if re.match(r"^\w", line)]
    assert keys == [line.split(":")[0] for line in commented.splitlines()
                    if re.match(r"^\w", line)]  # no key added (not even name), none moved
    assert yaml.safe_load(saved)["where"]["all"][1]["value"] == 400


def test_a_change_made_since_the_builder_opened_the_file_is_not_overwritten(demo):
    project, app = demo
    path = project.root / "segments" / "best_customers.yml"
    c = signed_in(app, MARKETER)
    fields = _builder_fields(c.get("/segments/best_customers").text)
    theirs = path.read_text("utf-8").replace("refresh_every: 1d", "refresh_every: 6h")
    path.write_text(theirs, "utf-8")  # IT changes the file meanwhile
    r = c.post("/segments/save", data={**fields, "g1_r0_value": "500"})
    assert r.status_code == 409 and "a changé depuis" in text_of(r.text)
    assert path.read_text("utf-8") == theirs
    r = c.post("/segments/save", data={**fields, "g1_r0_value": "500", "overwrite": "1"},
               follow_redirects=False)
    assert r.status_code == 303
    assert yaml.safe_load(path.read_text("utf-8"))["where"]["all"][1]["value"] == 500


DEEP = """# Reviewed by IT: three levels, edited in git.
description: Paris or Lyon among the French, or Belgians
owner: IT
where:
  any:
    - all:
        - {field: country, op: "=", value: FR}
        - any:
            - {field: city, op: "=", value: Paris}
            - {field: city, op: "=", value: Lyon}
    - {field: country, op: "=", value: BE}
"""


def test_a_segment_deeper_than_the_builder_is_shown_read_only_with_its_file(demo):
    project, app = demo
    (project.root / "segments" / "deep_cities.yml").write_text(DEEP, "utf-8")
    _reload(app)
    c = signed_in(app, MARKETER)
    page = c.get("/segments/deep_cities")
    assert page.status_code == 200
    text = text_of(page.text)
    assert "En lecture seule ici." in text and "segments/deep_cities.yml" in text
    assert "Reviewed by IT: three levels" in text and "value: Lyon" in text
    assert 'id="builder"' not in page.text and "edit-in-git" not in page.text
    server = app.state.web_project.config.server
    server.repository_url = "https://git.example.fr/crm/cdp/-/blob/main"
    try:
        page = c.get("/segments/deep_cities")
    finally:
        server.repository_url = None
    assert 'href="https://git.example.fr/crm/cdp/-/blob/main/segments/deep_cities.yml"' \
        in page.text
