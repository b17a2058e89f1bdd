"""Identity on person lists the demo did not generate (German lists drawn with Faker's de_DE
provider: no e-mail, no phone, a hashed tax id with typos, duplicates across and within two
lists), with the configuration the docs recommend (`blocking: auto`): pairwise precision
and recall against the truth. The benchmark benchmarks/identity_foreign.py measures the
same at scale against Splink alone."""

from __future__ import annotations

import pytest
import yaml

import passerelle
from foreign_people import RECOMMENDED_IDENTITY, write_project
from passerelle.identity.report import truth_scores


@pytest.mark.slow  # a full run of ~3,000 records takes about a minute on two cores
def test_recommended_configuration_on_foreign_lists(tmp_path):
    truth = write_project(tmp_path, 2000)
    with passerelle.open(tmp_path) as project:
        result = project.run()
        scores = truth_scores(project.engine, truth)["overall"]
        staged = project.engine.table("customer_records")
        hashed = project.engine.to_arrow(staged.filter(staged.national_id.notnull())
                                         .select("national_id").limit(5)).to_pylist()
    assert result is not None
    assert scores["recall"] >= 0.97, scores
    assert scores["precision"] >= 0.97, scores
    # the tax id reached the warehouse as a salted SHA-256 only
    assert all(len(r["national_id"]) == 64 for r in hashed)


def test_the_recommended_configuration_is_the_docs_one():
    from pathlib import Path

    page = (Path(__file__).parents[1] / "docs" / "identity-matching.md").read_text()
    start = page.index("# The configuration Passerelle recommends")
    block = page[start:page.index("```", start)]
    assert yaml.safe_load(block) == yaml.safe_load(RECOMMENDED_IDENTITY)
