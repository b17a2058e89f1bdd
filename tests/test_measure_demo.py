"""The measurement functions on the demo project, end to end (slow: runs the pipeline)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

import passerelle
from passerelle.measure.report import (
    analyse_experiment,
    attribution_report,
    campaign_results,
    experiments_coverage,
)


@pytest.mark.slow
def test_measurement_on_the_demo(tmp_path: Path):
    from passerelle.demo.run import run_demo

    run_demo(tmp_path / "demo", size=2000, seed=7)
    with passerelle.open(tmp_path / "demo") as project:
        engine = project.engine
        cov = experiments_coverage(project, engine)
        assert [(c["experiment"], c["status"]) for c in cov] == [
            ("checkout_express", "ok"), ("homepage_hero", "ok")]
        for name in ("checkout_express", "homepage_hero"):
            res = analyse_experiment(project, engine, name)
            assert not res["srm"]["mismatch"]
            assert all(v["people"] > 50 for v in res["variants"])
            assert res["verdict"]
        res = campaign_results(project, engine, timedelta(days=14))
        rows = {r["campaign_id"]: r for r in res.to_pylist()}
        assert rows["email_nouvelle_collection"]["reach"] > 100
        assert rows["email_nouvelle_collection"]["cpa"] is None  # e-mails have no ad spend
        assert rows["search_marque"]["spend"] > 0 and rows["search_marque"]["roas"] is not None
        att = attribution_report(project, engine, timedelta(days=30))
        conv = att["conversions"].to_pandas().set_index("channel")
        totals = conv.sum()
        assert totals.max() - totals.min() < 1e-6 * totals.max()
        assert totals["last"] == att["summary"]["attributed"]
