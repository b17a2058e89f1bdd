"""`passerelle identity blocking` and `passerelle identity suggest` on the demo, as a user
runs them: JSON that adds up, a table that fits 80 columns, a proposal that validates."""

from __future__ import annotations

import json

import yaml

from passerelle.project.identity_models import IdentityConfig
from test_cli import cli


def test_blocking_report_of_the_demo(demo_copy):
    project = demo_copy.project_dir
    done = cli("identity", "blocking", "--json", "--project", str(project))
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    config = yaml.safe_load((project / "identity.yml").read_text())
    assert [r["rule"] for r in report["rules"]] == config["probabilistic"]["blocking"]
    cumulative = [r["cumulative"] for r in report["rules"]]
    assert cumulative == sorted(cumulative) and report["total"] == cumulative[-1]
    assert sum(r["marginal"] for r in report["rules"]) == report["total"]
    for r in report["rules"]:
        assert r["only_here"] <= r["marginal"] <= r["comparisons"]
    keys = report["recall_ceiling"]["deterministic_links"]
    assert keys["of"] > 0 and 0 < keys["share"] <= 1  # the demo's keys linked pairs
    model = report["recall_ceiling"]["model_sample"]
    assert model is not None and model["compared"] <= model["of"]
    table = cli("identity", "blocking", "--project", str(project), columns=80)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines)
    body = [line for line in lines if line.startswith("│")]
    assert len(body) == len(report["rules"])  # one line a rule
    assert "Recall ceiling" in table.stdout and "Traceback" not in table.stderr


def test_suggest_on_the_demo(demo_copy):
    project = demo_copy.project_dir
    done = cli("identity", "suggest", "--project", str(project))
    assert done.returncode == 0, done.stderr
    config = IdentityConfig.model_validate(yaml.safe_load(done.stdout))
    assert {"email", "phone"} <= {k.field for k in config.keys}
    assert config.probabilistic.blocking == "auto"
    again = cli("identity", "suggest", "--project", str(project), "--out", "identity.yml")
    assert again.returncode != 0 and "--force" in again.stdout + again.stderr
    assert "Traceback" not in again.stderr
