"""A broken segment, trait or metric file fails itself only (and whatever uses it); the
rest of the project validates, runs and answers. `validate` shows every problem in one
pass, the deeper checks included for the parts of a file that did parse."""

from __future__ import annotations

from pathlib import Path

import pytest

import passerelle
from passerelle.definition import load_project
from passerelle.errors import ProjectError
from passerelle.project.starter import init_project
from passerelle.segments import MEMBERSHIP
from test_cli import cli

GOOD = "description: Paris\nowner: t\nwhere: {field: city, op: '=', value: Paris}\n"
BROKEN = "description: x\nowner: t\nwhere: {field: nope, op: '=', value: 1}\n"
USES_BROKEN = "description: x\nowner: t\nwhere: {in_segment: broken}\n"
USES_BAD_TRAIT = "description: x\nowner: t\nwhere: {trait: spend, op: '>', value: 1}\n"
BAD_TRAIT = """\
traits:
  - name: spend
    type: aggregate
    description: total spent
    owner: t
    entity: orders
    function: sum
    column: amout
"""


def _project(root: Path, segments: dict[str, str], traits: str | None = None) -> Path:
    init_project(root)
    (root / "segments").mkdir()
    for name, text in segments.items():
        (root / "segments" / f"{name}.yml").write_text(text, encoding="utf-8")
    if traits is not None:
        (root / "traits").mkdir()
        (root / "traits" / "spend.yml").write_text(traits, encoding="utf-8")
    return root


def test_broken_segment_and_trait_fail_themselves_only(tmp_path):
    root = _project(tmp_path / "p", {"paris": GOOD, "broken": BROKEN,
                                     "uses_broken": USES_BROKEN, "big": USES_BAD_TRAIT},
                    BAD_TRAIT)
    project = load_project(root)  # no longer "N problems in the project; nothing was run"
    assert set(project.segments.segments) == {"paris"}
    skipped = {(s.kind, s.name): s for s in project.skipped}
    assert skipped["segment", "broken"].broken and skipped["segment", "broken"].line == 1
    assert skipped["segment", "uses_broken"].reason == (
        "it uses segment 'broken', which is skipped (segments/broken.yml:1)")
    assert skipped["segment", "big"].reason == (
        "it uses trait 'spend', which is skipped (traits/spend.yml:2)")
    assert skipped["trait", "spend"].broken

    run = cli("run", "-p", str(root))
    assert run.returncode == 4, run.stdout + run.stderr  # ran in part (docs/project.md)
    assert "Traceback" not in run.stderr and "segments/broken.yml" in run.stderr
    with passerelle.open(root) as proj:
        m = proj.engine.table(MEMBERSHIP)
        assert proj.engine.to_arrow(m.filter(m.segment == "paris")).num_rows == 1
        steps = {(r["step"], r["target"]): r for r in proj.status(1)}
    assert steps["segments", ""]["status"] == "ok"
    assert steps["segments", "broken"]["status"] == "failed"
    assert steps["segments", "broken"]["message"].startswith("segments/broken.yml:1: ")
    assert steps["segments", "uses_broken"]["status"] == "skipped"
    assert steps["traits", "spend"]["status"] == "failed"

    status = cli("status", "-p", str(root), "--limit", "1")
    assert status.returncode == 0 and "uses_broken" in status.stdout
    count = cli("segment", "count", "paris", "-p", str(root))
    assert count.returncode == 0 and "1" in count.stdout, count.stdout + count.stderr
    count = cli("segment", "count", "uses_broken", "-p", str(root))
    assert count.returncode == 1 and "is skipped: it uses segment 'broken'" in count.stderr

    validate = cli("validate", "--offline", "-p", str(root))
    assert validate.returncode == 1
    out = validate.stdout
    assert "segments/broken.yml:3: 'nope' is not a field of profiles" in out
    assert "traits/spend.yml:8" in out
    assert "segments/uses_broken.yml:1: segment 'uses_broken' is skipped: it uses segment " \
           "'broken'" in out


def test_a_quoted_property_name_runs(tmp_path):
    """The issue's case: it passed validate, then crashed the whole run with a TokenError."""
    quoted = ("description: x\nowner: t\n"
              "where: {did: {event: Viewed, properties: {\"a'b\": x}}}\n")
    root = _project(tmp_path / "p", {"paris": GOOD, "quoted": quoted})
    with passerelle.open(root) as proj:
        result = proj.run()
        assert result.ok, result.errors
        assert set(result.segments.memberships.refreshed) == {"paris", "quoted"}


def test_sources_still_stop_everything(tmp_path):
    root = _project(tmp_path / "p", {"paris": GOOD, "broken": BROKEN})
    source = root / "sources" / "contacts.yml"
    source.write_text(source.read_text().replace("entity: customers", "entity: customer"))
    with pytest.raises(ProjectError) as err:
        load_project(root)
    files = {p.file for p in err.value.problems}
    assert files == {"sources/contacts.yml", "segments/broken.yml"}  # every problem at once


def test_validate_reports_every_layer_in_one_pass(tmp_path):
    root = _project(tmp_path / "p", {"no_owner": """\
description: three problems behind a missing owner
where:
  any:
    - {field: countr, op: '=', value: FR}
    - {field: city, op: '=', value: 3}
    - {in_segment: nowhere}
"""}, BAD_TRAIT.replace("    owner: t\n", ""))
    source = root / "sources" / "contacts.yml"
    # a shape error (a bad delimiter type) and a misspelt target in the same file
    source.write_text(source.read_text().replace("delimiter: auto", "delimiter: [1]")
                      .replace("  email: email", "  emial: email"))
    result = cli("validate", "--offline", "-p", str(root))
    assert result.returncode == 1
    found = result.stdout.splitlines()  # the problems; stderr has the count
    expected = [
        "segments/no_owner.yml:1: owner: required key is missing",
        "segments/no_owner.yml:4: 'countr' is not a field of profiles",
        "segments/no_owner.yml:5: field 'city' is text and is compared with number value 3",
        "segments/no_owner.yml:6: unknown segment 'nowhere'",
        "traits/spend.yml:2: traits.0.owner: required key is missing",
        "traits/spend.yml:7: 'amout' is not a column of orders",  # behind the owner
        "sources/contacts.yml:9: connector.delimiter",
        "sources/contacts.yml:15: 'emial' is not a field of the customers entity",
    ]
    for text in expected:
        assert any(f.startswith(text) for f in found), (text, result.stderr)


def test_a_broken_file_does_not_hide_the_sources_columns(tmp_path):
    """The deeper layer (files opened, columns looked up) runs for the sources that parsed."""
    from passerelle.core import validate_folder

    root = _project(tmp_path / "p", {})
    source = root / "sources" / "contacts.yml"
    source.write_text(source.read_text().replace("delimiter: auto", "delimiter: [1]"))
    (root / "sources" / "more.yml").write_text("""\
entity: customers
connector: {type: csv, path: data/contacts.csv}
columns: {customer_id: id, email: courriel}
""")
    found = [str(p) for p in validate_folder(root)[1].errors]
    assert found[0].startswith("sources/contacts.yml:9: connector.delimiter")
    assert found[1].startswith(
        "sources/more.yml:3: column 'courriel' (mapped to email) is not in the source")
    assert len(found) == 2


def test_a_broken_metrics_file_leaves_the_others(tmp_path):
    from metrics_fixtures import write_project

    root = _project(tmp_path / "p", {})
    write_project(root)
    (root / "metrics" / "broken.yml").write_text("""\
metrics:
  - name: red_revenue
    type: simple
    type_params: {measure: revenue}
    filter: "order__colour = 'red'"
""")
    (root / "metrics" / "uses.yml").write_text("""\
metrics:
  - name: red_share
    type: ratio
    type_params: {numerator: red_revenue, denominator: revenue}
""")
    project = load_project(root)
    assert "revenue" in project.metrics.metrics and "aov" in project.metrics.metrics
    assert "red_revenue" not in project.metrics.metrics
    skipped = {s.name: s for s in project.skipped}
    assert skipped["red_revenue"].broken and skipped["red_revenue"].file == "metrics/broken.yml"
    assert skipped["red_share"].reason == (
        "it uses metric 'red_revenue', which is skipped (metrics/broken.yml:2)")
    assert [p.file for p in project.leaf_problems if p.severity == "error"] == [
        "metrics/broken.yml"]
