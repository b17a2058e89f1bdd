"""Identity through `passerelle run` on the demo: stable ids, pins, diff, the 360° view."""

from __future__ import annotations

from pathlib import Path

import pytest

import passerelle
from conftest import copy_demo
from passerelle.errors import PasserelleError
from passerelle.identity import service


@pytest.fixture(scope="module")
def demo(shared_demo):
    """The session's demo, read only; tests that change it work on a copy."""
    return shared_demo


def copy_of(demo, tmp_path):
    return copy_demo(demo, tmp_path / "demo").project_dir


def person_map(project):
    rows = project.engine.to_arrow(project.engine.table("person_map")).to_pylist()
    return {r["node"]: r["person_id"] for r in rows}


def test_run_resolves_every_record_to_a_person(demo):
    identity = demo.result.identity
    assert identity.records > 300 and 0 < identity.persons < identity.records
    with passerelle.open(demo.project_dir) as project:
        pm = person_map(project)
        records = project.engine.count("customer_records")
        profiles = project.engine.count("profiles")
    assert len(pm) == records == identity.records
    assert profiles == len(set(pm.values())) == identity.persons


def test_ids_are_stable_and_a_rerun_changes_nothing(demo, tmp_path):
    project_dir = copy_of(demo, tmp_path)
    with passerelle.open(project_dir) as project:
        before = person_map(project)
        result = project.run(full=True)  # re-stage and re-resolve everything
        assert result.ok
        assert person_map(project) == before
        changes = project.engine.table("person_id_changes")
        mine = changes.filter(changes.run_id == result.run_id)
        assert mine.count().to_pyarrow().as_py() == 0
        # with nothing new, a plain run does not redo identity at all
        quiet = project.run()
        [step] = [s for s in quiet.steps if s.step == "identity"]
        assert step.status == "skipped" and quiet.identity is None
        assert person_map(project) == before


def test_pins_merge_and_split_survive_runs(demo, tmp_path):
    project_dir = copy_of(demo, tmp_path)
    with passerelle.open(project_dir) as project:
        pm = person_map(project)
        by_person: dict[str, list[str]] = {}
        for node, person in pm.items():
            by_person.setdefault(person, []).append(node)
        together = next(sorted(nodes) for nodes in by_person.values() if len(nodes) >= 2)
        apart = sorted(by_person)[:2]
        a, b = together[0], together[1]
        c, d = by_person[apart[0]][0], by_person[apart[1]][0]

        service.pin(project.definition, project.engine, "split", a, b, "two cousins")
        service.pin(project.definition, project.engine, "merge", c, d, "same client, confirmed")
        with pytest.raises(PasserelleError, match=r"conflict|contradict"):
            service.pin(project.definition, project.engine, "merge", a, b, "changed my mind")
        applied = project.run()  # new pins are new inputs: identity runs again
        assert applied.identity is not None
        after = person_map(project)
        assert after[a] != after[b]
        assert after[c] == after[d]
        # pins survive every later run
        project.run(full=True)
        again = person_map(project)
        assert again[a] != again[b] and again[c] == again[d]
        path = service.why(project.engine, c, d)
        assert any(step["rule"] == "pin" for step in path)
        ledger = project.engine.to_arrow(project.engine.table("identity_ledger")).to_pylist()
        assert {"pin_merge", "pin_split"} <= {r["action"] for r in ledger}


def test_diff_previews_a_rule_change(demo, tmp_path):
    project_dir = copy_of(demo, tmp_path)
    candidate = tmp_path / "identity-candidate.yml"
    text = (project_dir / "identity.yml").read_text()
    candidate.write_text(text.replace("  - field: phone\n    max_names: 2\n", ""))
    with passerelle.open(project_dir) as project:
        before = person_map(project)
        diff = service.diff(project.definition, project.engine, candidate, project.reporter)
        assert diff["persons_now"] == len(set(before.values()))
        # dropping a key can only split persons, never merge them
        assert diff["merges"]["groups"] == 0
        assert diff["splits"]["groups"] >= 1
        assert diff["persons_after"] > diff["persons_now"]
        assert person_map(project) == before  # a preview changes nothing


def test_profile_by_any_identifier(demo):
    with passerelle.open(demo.project_dir) as project:
        profiles = project.engine.table("profiles")
        row = project.engine.to_arrow(
            profiles.filter(profiles.email.notnull() & (profiles.record_count > 1))
            .order_by("person_id").limit(1)).to_pylist()[0]
        by_email = service.profile(project.definition, project.engine, row["email"].upper())
        by_id = service.profile(project.definition, project.engine, row["person_id"])
        masked = service.profile(project.definition, project.engine, row["person_id"],
                                 mask_pii=True)
    assert by_email["person_id"] == by_id["person_id"] == row["person_id"]
    assert len(by_id["records"]) == row["record_count"]
    assert row["email"] not in str(masked)
    with pytest.raises(PasserelleError, match="No person matches"), passerelle.open(
            demo.project_dir) as project:
        service.profile(project.definition, project.engine, "nobody@nowhere.example")


def test_identity_report_scores_against_the_demo_truth(demo):
    with passerelle.open(demo.project_dir) as project:
        report = service.report(project.engine, demo.truth_dir / "records.csv")
    overall = report["truth"]["overall"]
    assert report["profiles"] == demo.result.identity.persons
    # the shared 300-person demo (seed 7) measures P 0.9254, R 0.9644 (2,000 people: 0.9915,
    # 0.9753); the floors sit just under, so a matching regression fails here
    assert overall["precision"] > 0.92 and overall["recall"] > 0.96


def test_with_term_frequencies_every_run_is_a_full_run(demo, tmp_path):
    project_dir = copy_of(demo, tmp_path)  # the demo compares names with term frequencies
    crm = project_dir / "data" / "crm_contacts.csv"
    crm.write_text(crm.read_text(encoding="utf-8") + crm.read_text(
        encoding="utf-8").splitlines()[1].replace("CRM-", "CRM-NEW-") + "\n", encoding="utf-8")
    with passerelle.open(project_dir) as project:
        result = project.run()
        assert result.ok and result.identity.mode == "full"
        assert "how frequent a value is" in result.identity.mode_reason


def without_term_frequencies(project_dir: Path) -> None:
    """The demo's rules without term frequencies, and a first full run with them."""
    identity = project_dir / "identity.yml"
    identity.write_text(identity.read_text(encoding="utf-8").replace(
        ", term_frequencies: true", ""), encoding="utf-8")
    with passerelle.open(project_dir) as project:
        assert project.run(retrain=True).ok


def test_new_records_take_the_incremental_path_and_match_a_full_rebuild(demo, tmp_path):
    project_dir = copy_of(demo, tmp_path)
    without_term_frequencies(project_dir)
    crm = project_dir / "data" / "crm_contacts.csv"
    lines = crm.read_text(encoding="utf-8").splitlines()
    header, first = lines[0].split(","), lines[1].split(",")
    # the same person typed again under a new contact id, and someone new
    again = dict(zip(header, first, strict=True)) | {"contact_id": "CRM-NEW-1"}
    stranger = dict(again, contact_id="CRM-NEW-2", first_name="Zéphyrin",
                    last_name="Quasimodo", email="zq@example.org", phone="", birth_date="")
    lines += [",".join(row[h] for h in header) for row in (again, stranger)]
    crm.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with passerelle.open(project_dir) as project:
        before = person_map(project)
        result = project.run()
        assert result.ok and result.identity.mode == "incremental"
        assert result.identity.new_records == 2
        [step] = [s for s in result.steps if s.step == "identity"]
        assert step.message.startswith("incremental")
        after = person_map(project)
        assert after["crm_contacts:CRM-NEW-1"] == after[f"crm_contacts:{first[0]}"]
        assert after["crm_contacts:CRM-NEW-2"] not in set(before.values())
        assert {n: p for n, p in after.items() if n in before} == before
        rebuilt = project.run(full=True)
        assert rebuilt.identity.mode == "full"
        assert person_map(project) == after
