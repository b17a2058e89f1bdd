"""The segment builder over HTTP on a copy of the shared demo: the live count and the count
per group (checked against the segment compiler on the same conditions written as YAML),
the sample masked per role, overlap, breakdown, why in or out; Save writes a file the
project's loader reads back, never over another without confirmation, and only with
segments:write; an audience with its holdout and purpose; its export run as a job."""

from __future__ import annotations

import re
from datetime import datetime

import pytest
import yaml

from passerelle.governance import jobs as queue
from passerelle.project.segments_models import SegmentConfig
from passerelle.segments import compiler
from passerelle.segments.kinds import trait_kinds
from passerelle.web.segment_form import builder_of, parse_form, where_of
from web_demo_helpers import (
    IT_ADMIN,
    MARKETER,
    SENDER,
    csrf_of,
    served_demo,
    signed_in,
    text_of,
)

# Group 1: French customers. Group 2: viewed a product but bought nothing in 30 days.
FORM = {"top": "all", "g0_match": "all", "g0_r0_kind": "field", "g0_r0_name": "country",
        "g0_r0_op": "=", "g0_r0_value": "FR",
        "g1_match": "all", "g1_r0_kind": "did", "g1_r0_event": "Product Viewed",
        "g1_r0_at_least": "1", "g1_r1_kind": "bought", "g1_r1_not": "1", "g1_r1_days": "30"}
SAME_AS_YAML = """
all:
  - {field: country, op: "=", value: FR}
  - all:
      - did: {event: Product Viewed}
      - not: {bought: {in_last_days: 30}}
"""


@pytest.fixture(scope="module")
def demo(demo_copy):
    with served_demo(demo_copy.project_dir) as (project, app):
        yield project, app


def _reference_count(project, where_yaml: str) -> int:
    seg = SegmentConfig(name="reference", description="d", owner="o",
                        where=yaml.safe_load(where_yaml))
    defs = project.definition.segments.segments
    return compiler.count(project.engine, seg, defs, datetime.utcnow(),
                          trait_kinds(project.definition.traits))


def _preview(c, form, **extra):
    page = c.get("/segments/new")
    r = c.post("/segments/preview", data={"csrf_token": csrf_of(page.text), **form, **extra},
               headers={"hx-request": "true"})
    assert r.status_code == 200, r.text
    return r.text


def _figure(text: str) -> int:
    return int(re.sub(r"\D", "", text))


def test_the_live_count_and_the_count_per_group_match_the_compiler(demo):
    project, app = demo
    c = signed_in(app, MARKETER)
    html = _preview(c, FORM)
    whole = _reference_count(project, SAME_AS_YAML)
    french = _reference_count(project, '{field: country, op: "=", value: FR}')
    assert 0 < whole < french  # the second group removes people: the count says how many
    count = re.search(r'id="live-count">([^<]+)<', html).group(1)
    assert _figure(count) == whole
    so_far = [_figure(m) for m in re.findall(r'class="num group-count">([^<]+)<', html)]
    assert so_far == [french, whole]
    assert "%s" % (french - whole) in re.sub(r"\D", "", text_of(html))


def test_the_sample_is_masked_for_a_marketer_and_plain_for_it(demo):
    project, app = demo
    marketer = _preview(signed_in(app, MARKETER), FORM)
    it = _preview(signed_in(app, IT_ADMIN), FORM)
    person = re.search(r'href="/customers/([^"]+)"', marketer).group(1)
    p = project.engine.table("profiles")
    email = project.engine.to_arrow(p.filter(p.person_id == person).select("email")
                                    ).column(0)[0].as_py()
    assert email and email not in marketer and "***@" in marketer
    assert email in it and "***@" not in it


def test_overlap_breakdown_and_a_bad_value_explained(demo):
    project, app = demo
    c = signed_in(app, MARKETER)
    html = _preview(c, FORM, overlap_0="best_customers", breakdown="country")
    seg = SegmentConfig(name="web_builder_draft", description="d", owner="o",
                        where=yaml.safe_load(SAME_AS_YAML))
    defs = project.definition.segments.segments
    both = compiler.overlap(project.engine, [seg, defs["best_customers"]], defs,
                            datetime.utcnow(), trait_kinds(project.definition.traits))
    expected = next(i["people"] for i in both["intersections"] if len(i["segments"]) == 2)
    row = re.search(r"ce segment ∩ best_customers</th><td class=\"num\">([^<]+)<", html)
    assert row and _figure(row.group(1)) == expected
    assert "Membres par country" in html and re.search(r'<th scope="row">FR</th>', html)
    bad = _preview(c, {**FORM, "g0_r0_name": "record_count", "g0_r0_value": "beaucoup"})
    assert 'role="alert"' in bad and "beaucoup" in bad and "live-count" not in bad


def test_why_a_person_is_in_or_out_names_the_condition_they_miss(demo):
    project, app = demo
    c = signed_in(app, MARKETER)
    token = csrf_of(c.get("/segments/new").text)
    seg = SegmentConfig(name="reference", description="d", owner="o",
                        where=yaml.safe_load(SAME_AS_YAML))
    members = compiler.compile_segment(project.engine, seg,
                                       project.definition.segments.segments,
                                       datetime.utcnow(), trait_kinds(project.definition.traits))
    p = project.engine.table("profiles")
    outsider = project.engine.to_arrow(p.anti_join(members, "person_id").select("person_id")
                                       .order_by("person_id").limit(1)).column(0)[0].as_py()
    r = c.post("/segments/why", data={"csrf_token": token, **FORM, "person_id": outsider})
    text = text_of(r.text)
    assert f"{outsider} est HORS du segment." in text
    assert "remplit groupe 1" in text and "ne remplit pas groupe 2" in text  # all are FR
    member = re.search(r'href="/customers/([^"]+)"', _preview(c, FORM)).group(1)
    r = c.post("/segments/why", data={"csrf_token": token, **FORM, "person_id": member})
    assert f"{member} est DANS le segment." in text_of(r.text)
    assert "ne remplit pas" not in text_of(r.text).split("DANS le segment.")[1].split(
        "condition 2")[0]


def test_save_writes_a_file_the_loader_reads_and_asks_before_overwriting(demo):
    project, app = demo
    root = project.root
    c = signed_in(app, MARKETER)
    token = csrf_of(c.get("/segments/new").text)
    named = {"csrf_token": token, **FORM, "name": "fr_browsers",
             "description": "French visitors who did not buy lately", "owner": "CRM"}
    r = c.post("/segments/save", data=named, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/segments/fr_browsers?saved=1"
    written = yaml.safe_load((root / "segments" / "fr_browsers.yml").read_text("utf-8"))
    assert written["where"] == yaml.safe_load(SAME_AS_YAML)
    from passerelle.definition import load_project

    assert "fr_browsers" in load_project(root).segments.segments  # the loader reads it
    assert "fr_browsers" in app.state.server_project.definition.segments.segments
    page = c.get("/segments/fr_browsers")
    assert page.status_code == 200 and 'value="fr_browsers"' in page.text
    from passerelle.governance.audit import query

    entry = query(app.state.app_db, action="segment.save", limit=1)[0]
    assert entry["resource"] == "segments/fr_browsers.yml" and entry["actor_kind"] == "user"

    # the same name from a new builder: another segment's file, replaced only when ticked
    before = (root / "segments" / "fr_browsers.yml").read_text("utf-8")
    r = c.post("/segments/save", data={**named, "g0_r0_value": "BE"})
    assert r.status_code == 409 and "Remplacer le fichier existant" in r.text
    assert (root / "segments" / "fr_browsers.yml").read_text("utf-8") == before
    r = c.post("/segments/save", data={**named, "g0_r0_value": "BE", "overwrite": "1"},
               follow_redirects=False)
    assert r.status_code == 303
    assert "BE" in (root / "segments" / "fr_browsers.yml").read_text("utf-8")

    # a name that leaves the folder, an unknown trait: refused, nothing written
    files = sorted(p.name for p in (root / "segments").iterdir())
    r = c.post("/segments/save", data={**named, "name": "../evil"})
    assert r.status_code == 400 and "a-z" in r.text
    r = c.post("/segments/save", data={**named, "name": "bad_trait", "g0_r0_kind": "trait",
                                       "g0_r0_name": "no_such_trait", "g0_r0_op": ">",
                                       "g0_r0_value": "1"})
    assert r.status_code == 400 and "segments/bad_trait.yml" in r.text
    assert "no_such_trait" in text_of(r.text)
    assert sorted(p.name for p in (root / "segments").iterdir()) == files


def test_saving_needs_segments_write(demo):
    project, app = demo
    c = signed_in(app, SENDER)
    page = c.get("/segments/new")
    assert page.status_code == 200 and "segments:write" in text_of(page.text)
    r = c.post("/segments/save", data={"csrf_token": csrf_of(page.text), **FORM,
                                       "name": "not_allowed", "description": "d",
                                       "owner": "o"})
    assert r.status_code == 403 and not (project.root / "segments" / "not_allowed.yml").exists()
    r = c.post("/segments/save", data={"csrf_token": "forged", **FORM, "name": "x"})
    assert r.status_code == 403
    marketer = signed_in(app, MARKETER)  # every post of the builder checks its token
    for path in ("/segments/preview", "/segments/why", "/segments/builder", "/segments/save"):
        r = marketer.post(path, data={"csrf_token": "forged", **FORM})
        assert r.status_code == 403 and "live-count" not in r.text, path


def test_an_audience_with_holdout_then_its_export_run_as_jobs(demo):
    project, app = demo
    db, worker = app.state.app_db, app.state.worker
    c = signed_in(app, MARKETER)
    token = csrf_of(c.get("/segments/new").text)
    c.post("/segments/save", data={"csrf_token": token, **FORM, "name": "fr_export",
                                   "description": "d", "owner": "CRM"})
    r = c.post("/segments/fr_export/audience", data={
        "csrf_token": token, "audience": "fr_export_email", "channel": "email",
        "purpose": "email_marketing", "holdout": "20"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/jobs/")
    written = yaml.safe_load((project.root / "segments" / "fr_export.yml").read_text("utf-8"))
    assert written["audiences"] == [{"name": "fr_export_email", "channel": "email",
                                     "holdout_percent": 20.0, "purpose": "email_marketing"}]
    while (job := queue.claim(db)) is not None:  # the server's worker, run here
        worker.run(job)
    build = int(r.headers["location"].rsplit("/", 1)[1])
    assert queue.get(db, build)["status"] == "succeeded", queue.get(db, build)

    r = c.post("/segments/fr_export/export", data={
        "csrf_token": token, "audience": "fr_export_email", "destination": "brevo"},
        follow_redirects=False)
    job_id = int(r.headers["location"].rsplit("/", 1)[1])
    waiting = c.get(f"/jobs/{job_id}")
    assert 'hx-trigger="every 1s"' in waiting.text and "<progress" in waiting.text
    worker.run(queue.claim(db))
    done = c.get(f"/jobs/{job_id}", headers={"hx-request": "true"})
    assert queue.get(db, job_id)["status"] == "succeeded", queue.get(db, job_id)
    assert "réussie" in done.text and "every 1s" not in done.text
    assert 'value="1.0"' in done.text
    assert list((project.root / "exports").glob("fr_export_email-*.csv"))

    sender = signed_in(app, SENDER)  # may export, may not add an audience
    r = sender.post("/segments/fr_export/audience", data={
        "csrf_token": csrf_of(sender.get("/segments").text), "audience": "x",
        "channel": "email", "holdout": "10"})
    assert r.status_code == 403


def test_a_saved_segment_opens_in_the_builder_as_written(demo):
    project, _ = demo
    for seg in project.definition.segments.segments.values():
        b = builder_of(seg, None)
        if b is None:
            continue
        again = where_of(parse_form(_fields(b)), {}, trait_kinds(project.definition.traits))
        assert SegmentConfig(name="x", description="d", owner="o", where=again).where \
            == seg.where, seg.name


def _fields(b) -> dict[str, str]:
    """The form a browser posts for builder ``b``."""
    out = {"top": b.top}
    for gi, g in enumerate(b.groups):
        out[f"g{gi}_match"] = g.match
        if g.negate:
            out[f"g{gi}_not"] = "1"
        for ri, r in enumerate(g.rows):
            p = f"g{gi}_r{ri}_"
            out.update({p + "kind": r.kind, p + "name": r.name, p + "op": r.op,
                        p + "value": r.value, p + "value2": r.value2, p + "event": r.event,
                        p + "at_least": str(r.at_least), p + "days": str(r.days or ""),
                        p + "prop": r.prop, p + "propval": r.propval,
                        p + "category": r.category})
            if r.negate:
                out[p + "not"] = "1"
    return out


def test_the_segments_list_links_each_segment(demo):
    _, app = demo
    html = signed_in(app, MARKETER).get("/segments").text
    assert 'href="/segments/best_customers"' in html and 'href="/segments/new"' in html
