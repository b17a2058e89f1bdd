"""Term frequencies on the postcode: an equal postcode weighs more the fewer records share
it, at every level of an equal postcode (same address, no street, another street), on
DuckDB and PostgreSQL, with and without the signature pre-pass, and in explain_pair."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import pyarrow as pa
import pytest

from passerelle.engines.base import Engine
from passerelle.identity import probabilistic as pr
from passerelle.identity import splink_settings as ss
from passerelle.project.identity_models import Probabilistic
from passerelle.reporter import SilentReporter
from splink_synthetic import cluster_pairs, precision_recall, synthetic_records, true_pairs

BASE = Probabilistic(blocking=[
    ["last_name", "birth_date"], ["first_name", "birth_date"], ["last_name", "postcode"],
    ["birth_date", "postcode"], ["first_name", "postcode"]])
# the demo's shape: the street line counts only with the postcode (levels of its own)
CONFIG = BASE.model_copy(update={"comparisons": [
    c.model_copy(update={"term_frequencies": c.field in ("first_name", "postcode"),
                         "method": "address" if c.field == "address_line1" else c.method})
    for c in BASE.comparisons]})
EQUAL = (ss.HOUSEHOLD, ss.SAME_ADDRESS, ss.NO_STREET, ss.OTHER_STREET)


def load(engine: Engine, table: pa.Table) -> None:
    engine.append_arrow("customer_records",
                        pa.RecordBatchReader.from_batches(table.schema, table.to_batches()))


def rows(engine: Engine, edges) -> list[dict]:
    return sorted(engine.to_arrow(edges).to_pylist(), key=lambda r: (r["node_a"], r["node_b"]))


def test_every_level_of_an_equal_postcode_is_adjusted() -> None:
    model = {"comparisons": [
        {"output_column_name": "postcode", "comparison_levels": [
            lv | {"u_probability": 0.01} for lv in ss._levels(
                "postcode", "postcode", ss.model_shape(CONFIG))]},
        {"output_column_name": "first_name", "comparison_levels": [
            lv | {"u_probability": 0.01} for lv in ss._levels(
                "first_name", "name", ss.model_shape(CONFIG))]}]}
    labels = {lv["label_for_charts"]: lv for lv in model["comparisons"][0]["comparison_levels"]}
    assert {k for k, lv in labels.items() if lv.get("tf_adjustment_column")} == set(EQUAL)
    assert ss.exact_level(model["comparisons"][0]) is labels[ss.OTHER_STREET]
    # the first name's frequency adjusts its exact level only: given as it is
    assert ss.relative_frequency_fields(model) == ("postcode",)
    assert ss.fingerprint(CONFIG) != ss.fingerprint(BASE)


def test_rescaled_frequencies_give_the_average_over_the_value(engine: Engine) -> None:
    """For a relative field, Splink's log2(u_exact / tf) is log2(sum(share²) / share)."""
    load(engine, pa.table({"postcode": ["75011"] * 6 + ["69003"] * 3 + ["21000"] + [None] * 2}))
    comparison = {"output_column_name": "postcode", "comparison_levels": [
        lv | {"u_probability": 0.04} for lv in ss._levels(
            "postcode", "postcode", ss.model_shape(CONFIG))]}
    model = {"comparisons": [comparison]}
    got = {r["postcode"]: r["tf_postcode"] for r in engine.to_arrow(
        pr.term_frequencies(engine.table("customer_records"), "postcode", model)).to_pylist()}
    plain = {r["postcode"]: r["tf_postcode"] for r in engine.to_arrow(
        pr.term_frequencies(engine.table("customer_records"), "postcode")).to_pylist()}
    assert plain == pytest.approx({"75011": 0.6, "69003": 0.3, "21000": 0.1})
    average = 0.6 ** 2 + 0.3 ** 2 + 0.1 ** 2
    for value, share in plain.items():
        assert math.log2(0.04 / got[value]) == pytest.approx(math.log2(average / share))


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory):
    from passerelle.engines.duckdb import DuckDBEngine

    root = tmp_path_factory.mktemp("project")
    table, truth = synthetic_records(700)
    engine = DuckDBEngine(root / "warehouse.duckdb")
    load(engine, table)
    result = pr.match(engine, engine.table("customer_records"), CONFIG, root, "r",
                      SilentReporter())
    yield engine, root, table, truth, result, rows(engine, result.edges)
    engine.close()


def test_a_rarer_postcode_weighs_more(scored) -> None:
    engine, _, _, truth, _, edges = scored
    p, r = precision_recall(cluster_pairs([(e["node_a"], e["node_b"]) for e in edges]),
                            true_pairs(truth))
    assert p >= 0.95 and r >= 0.85, (p, r)
    prepared = engine.to_arrow(pr.prepare(engine.table("customer_records"), CONFIG)).to_pylist()
    postcode = {row["node"]: row["postcode"] for row in prepared}
    counts: dict[str, int] = {}
    for value in postcode.values():
        if value is not None:
            counts[value] = counts.get(value, 0) + 1
    by_level: dict[str, dict[str, set[float]]] = {}
    for edge in edges:
        item = json.loads(edge["evidence"])["postcode"]
        if item["level"] in EQUAL:
            by_level.setdefault(item["level"], {}).setdefault(
                postcode[edge["node_a"]], set()).add(item["weight"])
    assert {ss.SAME_ADDRESS, ss.OTHER_STREET} <= set(by_level)
    for weights in by_level.values():
        assert all(len(w) == 1 for w in weights.values())  # one weight per value and level
        ranked = sorted((counts[v], w.pop()) for v, w in weights.items())
        for (n1, w1), (n2, w2) in itertools.pairwise(ranked):
            if n1 < n2:
                assert w1 >= w2 - 0.01  # rarer, heavier (weights are rounded to 0.01)
        if ranked[0][0] < ranked[-1][0]:
            assert ranked[0][1] > ranked[-1][1]


def test_prepass_and_explain_give_splinks_weights(scored, tmp_path: Path) -> None:
    """The pairs within a signature (scored by Passerelle) and explain_pair add the
    postcode's adjustment as Splink does: from the u of its exact level."""
    engine, root, _, _, _, edges = scored
    records = engine.table("customer_records")
    without = pr.match(engine, records, CONFIG, root, "r", SilentReporter(), prepass=False)
    plain = rows(engine, without.edges)
    assert [(e["node_a"], e["node_b"]) for e in edges] == [
        (e["node_a"], e["node_b"]) for e in plain]
    for x, y in zip(edges, plain, strict=True):
        assert x["weight"] == pytest.approx(y["weight"], abs=1e-6)
    edge = next(e for e in edges
                if json.loads(e["evidence"])["postcode"]["level"] == ss.SAME_ADDRESS)
    why = pr.explain_pair(engine, records, edge["node_a"], edge["node_b"], CONFIG, root)
    assert why["match_weight"] == pytest.approx(edge["weight"], abs=0.01)
    assert why["comparisons"]["postcode"]["weight"] == pytest.approx(
        json.loads(edge["evidence"])["postcode"]["weight"], abs=0.01)


@pytest.mark.postgres
def test_postgres_scores_like_duckdb(scored, tmp_path: Path) -> None:
    import shutil

    from conftest import postgres_engine
    from passerelle.engines.duckdb import DuckDBEngine

    _, root, *_ = scored
    shutil.copytree(root / "identity", tmp_path / "identity")
    table, _ = synthetic_records(150, seed=11)
    with DuckDBEngine(tmp_path / "reference.duckdb") as reference:
        load(reference, table)
        want = rows(reference, pr.match(reference, reference.table("customer_records"),
                                        CONFIG, tmp_path, "r", SilentReporter()).edges)
    engine = postgres_engine()
    try:
        load(engine, table)
        got = rows(engine, pr.match(engine, engine.table("customer_records"), CONFIG,
                                    tmp_path, "r", SilentReporter()).edges)
    finally:
        engine.drop_schema()
        engine.close()
    assert len(want) > 100
    assert [(r["node_a"], r["node_b"]) for r in got] == [(r["node_a"], r["node_b"]) for r in want]
    for x, y in zip(got, want, strict=True):
        assert x["weight"] == pytest.approx(y["weight"], abs=1e-6)
        assert json.loads(x["evidence"]) == json.loads(y["evidence"])
