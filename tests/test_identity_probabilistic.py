"""Splink matching on real engines, against synthetic records with a known truth."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import pyarrow as pa
import pytest

from passerelle.engines.base import Engine
from passerelle.engines.duckdb import DuckDBEngine
from passerelle.errors import PasserelleError
from passerelle.identity import probabilistic as pr
from passerelle.identity import splink_settings as ss
from passerelle.project.identity_models import Comparison, Probabilistic
from passerelle.reporter import SilentReporter
from splink_synthetic import (
    cluster_pairs,
    precision_recall,
    synthetic_records,
    true_pairs,
)

# The default blocking plus two rules that catch typos in both names (the synthetic
# variants carry up to four mistakes); the test measures the model, not the blocking.
CONFIG = Probabilistic(blocking=[
    ["last_name", "birth_date"], ["first_name", "birth_date"], ["last_name", "postcode"],
    ["birth_date", "postcode"], ["first_name", "postcode"]])


def load(engine: Engine, table: pa.Table, name: str = "customer_records") -> None:
    engine.append_arrow(name, pa.RecordBatchReader.from_batches(table.schema, table.to_batches()))


def edge_rows(engine: Engine, edges) -> list[dict]:
    return sorted(engine.to_arrow(edges).to_pylist(), key=lambda r: (r["node_a"], r["node_b"]))


FIRST_RUN_EDGES: list[dict] = []


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    """One DuckDB warehouse with ~1,300 synthetic records and a model trained on them."""
    root = tmp_path_factory.mktemp("project")
    table, truth = synthetic_records(700)
    engine = DuckDBEngine(root / "warehouse.duckdb")
    load(engine, table)
    reporter = SilentReporter()
    result = pr.match(engine, engine.table("customer_records"), CONFIG, root, "run-1", reporter)
    # later tests rewrite identity_edges_splink: keep the first run's edges
    FIRST_RUN_EDGES[:] = edge_rows(engine, result.edges)
    yield engine, root, table, truth, result, reporter
    engine.close()


def test_training_saves_a_model_that_finds_the_duplicates(trained) -> None:
    engine, root, table, truth, result, reporter = trained
    assert table.num_rows == 1294
    assert result.model is not None and result.model.trained
    model_file = root / "identity" / "model.json"
    assert result.model.path == model_file
    saved = json.loads(model_file.read_text())
    assert saved["passerelle"]["fingerprint"] == ss.fingerprint(CONFIG)
    assert [c["output_column_name"] for c in saved["comparisons"]] == [
        "first_name", "last_name", "birth_date", "postcode", "address_line1"]  # city in postcode
    # the pre-pass: records identical on every compared column are scored once
    assert (result.records, result.representatives) == (1294, 987)
    assert any("1,294 records -> 987 distinct signatures" in m for _, m in reporter.messages)

    found = {(r["node_a"], r["node_b"]) for r in FIRST_RUN_EDGES}
    assert len(found) == result.edge_count
    edge_p, edge_r = precision_recall(found, true_pairs(truth))
    p, r = precision_recall(cluster_pairs(list(found)), true_pairs(truth))
    # measured: edges 0.992 / 0.891, clusters 0.987 / 0.902
    assert edge_p >= 0.97 and edge_r >= 0.87
    assert p >= 0.95 and r >= 0.85
    # Splink's working tables and ours are gone
    assert not [t for t in engine.list_tables() if t.startswith("__")]


def test_saved_model_is_reused_without_training(trained) -> None:
    engine, root, _, _, first, _ = trained
    reporter = SilentReporter()
    again = pr.match(engine, engine.table("customer_records"), CONFIG, root, "run-2", reporter)
    assert again.model is not None and again.model.trained is False
    assert "Training the Splink model" not in reporter.step_seconds
    assert any(m.startswith("Reusing the Splink model") for _, m in reporter.messages)
    assert again.edge_count == first.edge_count
    # probabilistic_edges is the same call, returning the table
    edges = pr.probabilistic_edges(engine, engine.table("customer_records"), CONFIG, root,
                                   "run-3", SilentReporter())
    assert engine.count(pr.EDGES_TABLE) == first.edge_count
    assert set(engine.to_arrow(edges.select("rule", "run_id")).to_pylist()[0].values()) == {
        "splink", "run-3"}


def test_changed_settings_require_retraining(trained, tmp_path: Path) -> None:
    engine, root, *_ = trained
    shutil.copytree(root / "identity", tmp_path / "identity")
    changed = CONFIG.model_copy(update={"comparisons": [
        c for c in CONFIG.comparisons if c.field != "address_line1"]})
    records = engine.table("customer_records")
    with pytest.raises(pr.ModelError) as err:
        pr.match(engine, records, changed, tmp_path, "run-x", SilentReporter())
    assert "other comparisons or blocking rules" in err.value.reason
    assert "passerelle identity train" in err.value.instruction
    result = pr.match(engine, records, changed, tmp_path, "run-x", SilentReporter(),
                      retrain=True)
    assert result.model is not None and result.model.trained
    assert json.loads((tmp_path / "identity" / "model.json").read_text())["passerelle"][
        "fingerprint"] == ss.fingerprint(changed) != ss.fingerprint(CONFIG)
    # a threshold is not part of the model: no retraining for it
    stricter = CONFIG.model_copy(update={"threshold": 0.99})
    assert ss.fingerprint(stricter) == ss.fingerprint(CONFIG)


def test_corrupt_model_is_a_clear_error(trained, tmp_path: Path) -> None:
    engine, *_ = trained
    (tmp_path / "identity").mkdir()
    (tmp_path / "identity" / "model.json").write_text('{"comparisons": [')
    with pytest.raises(pr.ModelError) as err:
        pr.match(engine, engine.table("customer_records"), CONFIG, tmp_path, "r",
                 SilentReporter())
    assert "unreadable or corrupt" in err.value.reason
    assert "passerelle identity train" in err.value.instruction


def test_evidence_names_every_comparison(trained) -> None:
    _ = trained
    rows = FIRST_RUN_EDGES
    labels = ss.level_labels(CONFIG)
    for row in rows:
        evidence = json.loads(row["evidence"])
        assert list(evidence) == list(labels)
        for field, item in evidence.items():
            assert item["level"] in labels[field].values()
            assert isinstance(item["weight"], int | float)
        assert row["rule"] == "splink" and row["match_probability"] >= CONFIG.threshold
        assert row["node_a"] < row["node_b"]
    levels = {json.loads(r["evidence"])["first_name"]["level"] for r in rows}
    assert {"exact", "nickname", "Jaro-Winkler >=0.92"} <= levels
    assert {json.loads(r["evidence"])["birth_date"]["level"] for r in rows} >= {
        "exact", "one character typo", "day/month swapped", "null"}


def test_explain_pair(trained) -> None:
    engine, root, _, truth, _, _ = trained
    records = engine.table("customer_records")
    edge = next(r for r in FIRST_RUN_EDGES
                if json.loads(r["evidence"])["first_name"]["level"] == "nickname")
    why = pr.explain_pair(engine, records, edge["node_a"], edge["node_b"], CONFIG, root)
    assert why["match_weight"] == pytest.approx(edge["weight"], abs=0.01)
    assert why["match_weight"] > 0 and why["linked"]
    assert why["comparisons"]["first_name"]["level"] == "nickname"
    assert why["match_weight"] == pytest.approx(
        why["prior_weight"] + sum(c["weight"] for c in why["comparisons"].values()), abs=0.05)
    # two different people (different truth) with the same surname
    by_node = {r["_source"] + ":" + r["_record_id"]: r
               for r in engine.to_arrow(records).to_pylist()}
    a = edge["node_a"]
    b = next(n for n, r in by_node.items() if truth[n] != truth[a]
             and r["last_name"] == by_node[a]["last_name"])
    why_not = pr.explain_pair(engine, records, a, b, CONFIG, root)
    assert why_not["match_weight"] < 0 and not why_not["linked"]
    assert why_not["comparisons"]["last_name"]["level"] == "exact"
    with pytest.raises(PasserelleError, match="No customer record nowhere:0"):
        pr.explain_pair(engine, records, a, "nowhere:0", CONFIG, root)


def test_prepass_gives_the_same_edges(trained) -> None:
    engine, root, _, _, _, _ = trained
    records = engine.table("customer_records")
    with_prepass = pr.match(engine, records, CONFIG, root, "r", SilentReporter())
    rows_with = edge_rows(engine, with_prepass.edges)
    without = pr.match(engine, records, CONFIG, root, "r", SilentReporter(), prepass=False)
    rows_without = edge_rows(engine, without.edges)
    assert without.representatives == without.records == 1294
    assert [(r["node_a"], r["node_b"]) for r in rows_with] == [
        (r["node_a"], r["node_b"]) for r in rows_without]
    for x, y in zip(rows_with, rows_without, strict=True):
        assert x["weight"] == pytest.approx(y["weight"], abs=1e-9)
        assert json.loads(x["evidence"]) == json.loads(y["evidence"])
    assert cluster_pairs([(r["node_a"], r["node_b"]) for r in rows_with]) == cluster_pairs(
        [(r["node_a"], r["node_b"]) for r in rows_without])


def test_too_few_records_skip_matching(tmp_path: Path) -> None:
    table, _ = synthetic_records(20)
    with DuckDBEngine(tmp_path / "w.duckdb") as engine:
        load(engine, table)
        reporter = SilentReporter()
        edges = pr.probabilistic_edges(engine, engine.table("customer_records"), CONFIG,
                                       tmp_path, "r", reporter)
        assert engine.count(pr.EDGES_TABLE) == 0
        assert edges.schema() == pr.EDGE_SCHEMA
        assert any(kind == "warning" and "too few" in m for kind, m in reporter.messages)
        assert not (tmp_path / "identity" / "model.json").exists()


def test_names_are_folded_and_nicknames_canonical(duckdb_engine: DuckDBEngine) -> None:
    rows = [{"_source": "crm", "_record_id": str(i), "first_name": first, "last_name": last,
             "birth_date": None, "postcode": " 75011 ", "city": "Saint-Étienne",
             "address_line1": "Rue de l'Œuvre"}
            for i, (first, last) in enumerate([("Jean-Baptiste", "Lefèvre"), ("JB", "LEFEVRE"),
                                               ("Élisabeth", "D'Ornano"), ("Babeth", "")])]
    load(duckdb_engine, pa.Table.from_pylist(rows))
    config = Probabilistic(comparisons=[Comparison(field="first_name", method="name"),
                                        Comparison(field="last_name", method="name"),
                                        Comparison(field="postcode", method="postcode"),
                                        Comparison(field="city", method="exact"),
                                        Comparison(field="address_line1", method="text")])
    out = duckdb_engine.to_arrow(pr.prepare(duckdb_engine.table("customer_records"), config))
    assert out.column("first_name").to_pylist() == ["jean baptiste", "jb", "elisabeth", "babeth"]
    assert out.column("first_name__canon").to_pylist() == [
        "jean baptiste", "jean baptiste", "elisabeth", "elisabeth"]
    assert out.column("last_name").to_pylist() == ["lefevre", "lefevre", "d ornano", None]
    assert set(out.column("postcode").to_pylist()) == {"75011"}
    assert set(out.column("city").to_pylist()) == {"saint etienne"}
    assert set(out.column("address_line1").to_pylist()) == {"rue de l oeuvre"}


@pytest.mark.postgres
def test_postgres_scores_like_duckdb(trained, engine: Engine, tmp_path: Path) -> None:
    """A few hundred records scored with the saved model: same edges on both engines."""
    _, root, _, _, _, _ = trained
    shutil.copytree(root / "identity", tmp_path / "identity")
    table, _ = synthetic_records(150, seed=11)
    with DuckDBEngine(tmp_path / "reference.duckdb") as reference:
        load(reference, table)
        expected = pr.match(reference, reference.table("customer_records"), CONFIG, tmp_path,
                            "r", SilentReporter())
        want = edge_rows(reference, expected.edges)
    load(engine, table)
    got_result = pr.match(engine, engine.table("customer_records"), CONFIG, tmp_path, "r",
                          SilentReporter())
    assert got_result.model is not None and got_result.model.trained is False
    got = edge_rows(engine, got_result.edges)
    assert len(want) == expected.edge_count > 100
    assert [(r["node_a"], r["node_b"]) for r in got] == [(r["node_a"], r["node_b"]) for r in want]
    for x, y in zip(got, want, strict=True):
        assert x["weight"] == pytest.approx(y["weight"], abs=1e-6)
        assert json.loads(x["evidence"]) == json.loads(y["evidence"])
    assert not [t for t in engine.list_tables() if t.startswith("__")]


@pytest.mark.postgres
def test_training_on_postgres_beside_another_project(tmp_path: Path) -> None:
    """Training on PostgreSQL, offline (no DuckDB extension to download), in a database
    where another project's schema holds tables of the same names (Splink looked columns up
    in every schema): a model that finds the duplicates, as on DuckDB."""
    from conftest import postgres_engine

    table, truth = synthetic_records(400, seed=3)
    neighbour, engine = postgres_engine(), postgres_engine()
    try:
        load(neighbour, table)
        pr.match(neighbour, neighbour.table("customer_records"), CONFIG, tmp_path / "other",
                 "r0", SilentReporter())
        load(engine, table)
        result = pr.match(engine, engine.table("customer_records"), CONFIG, tmp_path, "r1",
                          SilentReporter())
        assert result.model is not None and result.model.trained
        found = {(r["node_a"], r["node_b"]) for r in edge_rows(engine, result.edges)}
        p, r = precision_recall(cluster_pairs(list(found)), true_pairs(truth))
        assert p >= 0.95 and r >= 0.8, (p, r)
        # what Splink reads of a table both schemas hold (as an incremental run reads the
        # kept input): this project's columns, once each
        seen = pr._db_api(engine).table_to_splink_dataframe("edges", pr.EDGES_TABLE).columns
        assert [c.unquote().name for c in seen] == list(engine.table(pr.EDGES_TABLE).columns)
    finally:
        for e in (engine, neighbour):
            e.drop_schema()
            e.close()


def test_swapped_names_are_a_level_of_both_names(trained) -> None:
    """A record with first and last names in each other's field agrees at "swapped
    names" on both comparisons, which EM learnt as evidence for (the synthetic sources
    swap 3% of names)."""
    _ = trained
    swapped = [json.loads(r["evidence"]) for r in FIRST_RUN_EDGES
               if json.loads(r["evidence"])["first_name"]["level"] == "swapped names"]
    assert swapped
    for evidence in swapped:
        assert evidence["last_name"]["level"] == "swapped names"
        assert evidence["first_name"]["weight"] > 3 and evidence["last_name"]["weight"] > 3
    # only when both names are compared as names
    alone = Probabilistic(comparisons=[Comparison(field="first_name", method="name"),
                                       Comparison(field="postcode", method="postcode")])
    assert "swapped names" not in ss.level_labels(alone)["first_name"].values()


TF_CONFIG = CONFIG.model_copy(update={"comparisons": [
    c.model_copy(update={"term_frequencies": c.field in ("first_name", "birth_date")})
    for c in CONFIG.comparisons]})


def test_term_frequencies(trained, tmp_path: Path) -> None:
    """With term frequencies, an exact first name weighs more the rarer it is; the
    pre-pass (its within-signature pairs scored by Passerelle) and explain_pair give
    Splink's own weights."""
    engine, _, _, truth, _, _ = trained
    records = engine.table("customer_records")
    assert ss.fingerprint(TF_CONFIG) != ss.fingerprint(CONFIG)
    with_prepass = pr.match(engine, records, TF_CONFIG, tmp_path, "r", SilentReporter())
    rows = edge_rows(engine, with_prepass.edges)
    without = pr.match(engine, records, TF_CONFIG, tmp_path, "r", SilentReporter(),
                       prepass=False)
    rows_without = edge_rows(engine, without.edges)
    assert [(r["node_a"], r["node_b"]) for r in rows] == [
        (r["node_a"], r["node_b"]) for r in rows_without]
    for x, y in zip(rows, rows_without, strict=True):
        assert x["weight"] == pytest.approx(y["weight"], abs=1e-6)
    p, r = precision_recall(cluster_pairs([(e["node_a"], e["node_b"]) for e in rows]),
                            true_pairs(truth))
    assert p >= 0.95 and r >= 0.85  # measured 0.986 / 0.905

    prepared = engine.to_arrow(pr.prepare(records, TF_CONFIG)).to_pylist()
    first = {row["node"]: row["first_name"] for row in prepared}
    counts: dict[str, int] = {}
    for name in first.values():
        if name is not None:
            counts[name] = counts.get(name, 0) + 1
    weight_of: dict[str, set[float]] = {}
    for row in rows:
        item = json.loads(row["evidence"])["first_name"]
        if item["level"] == "exact":
            weight_of.setdefault(first[row["node_a"]], set()).add(item["weight"])
    assert all(len(w) == 1 for w in weight_of.values())  # one weight per value
    by_count = sorted((counts[name], w.pop()) for name, w in weight_of.items())
    assert len(by_count) >= 10
    for (n1, w1), (n2, w2) in itertools.pairwise(by_count):
        if n1 < n2:
            assert w1 >= w2 - 1e-9  # rarer, heavier
    assert by_count[0][1] - by_count[-1][1] > 1

    edge = next(e for e in rows if json.loads(e["evidence"])["first_name"]["level"] == "exact")
    why = pr.explain_pair(engine, records, edge["node_a"], edge["node_b"], TF_CONFIG,
                          tmp_path)
    assert why["match_weight"] == pytest.approx(edge["weight"], abs=0.01)
    assert why["comparisons"]["first_name"]["weight"] == pytest.approx(
        json.loads(edge["evidence"])["first_name"]["weight"], abs=0.01)
    assert not [t for t in engine.list_tables() if t.startswith("__")]


def test_a_training_run_writes_term_frequencies_once(trained, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Training, Splink's scoring and the pairs within a signature read the same term
    frequencies: one table a field for the whole run, dropped afterwards."""
    from passerelle.identity import splink_session

    engine = trained[0]
    written: list[str] = []
    original = splink_session.term_frequencies

    def counted(among, field):
        written.append(field)
        return original(among, field)

    monkeypatch.setattr(splink_session, "term_frequencies", counted)
    result = pr.match(engine, engine.table("customer_records"), TF_CONFIG, tmp_path, "r",
                      SilentReporter(), retrain=True)
    assert result.model is not None and result.model.trained
    assert sorted(written) == sorted(ss.model_shape(TF_CONFIG).term_frequency_fields)
    assert not [t for t in engine.list_tables() if t.startswith(pr.TF_TABLE)]


def _records(rows: list[dict]) -> pa.Table:
    base = {"_source": "crm", "customer_id": None, "email": None, "phone": None,
            "first_name": None, "last_name": None, "birth_date": None,
            "address_line1": None, "address_line2": None, "postcode": None, "city": None,
            "country": None, "loyalty_card": None}
    return pa.Table.from_pylist([{**base, "_record_id": str(i), **r}
                                 for i, r in enumerate(rows)])


def test_prior_recall_is_measured_on_key_links(duckdb_engine: DuckDBEngine) -> None:
    """The share of key-linked pairs agreeing on first name, last name and birth date:
    30 of 120 pairs here; pairs of one signature (identical records) do not count."""
    import datetime as dt

    rows, links = [], []
    for i in range(120):
        born = dt.date(1950, 1, 1) + dt.timedelta(days=i)
        rows.append({"first_name": f"prenom{i}", "last_name": f"nom{i}", "birth_date": born,
                     "postcode": "75011"})
        rows.append({"first_name": f"prenom{i}", "last_name": f"nom{i}",
                     "birth_date": born if i < 30 else None, "postcode": "69003"})
        links.append((f"crm:{2 * i}", f"crm:{2 * i + 1}"))
    for _ in range(3):  # identical records: one signature, no pair for Splink
        rows += [{"first_name": "ana", "last_name": "ruiz", "postcode": "13008"}] * 2
        links.append((f"crm:{len(rows) - 2}", f"crm:{len(rows) - 1}"))
    load(duckdb_engine, _records(rows))
    config = Probabilistic()
    pr._materialise_input(duckdb_engine, duckdb_engine.table("customer_records"), config,
                          prepass=True)
    strict = ["first_name", "last_name", "birth_date"]
    reporter = SilentReporter()
    assert pr._prior_recall(duckdb_engine, strict, reporter) == pr.PRIOR_RECALL  # no keys
    edges = pa.table({"node_a": [a for a, _ in links], "node_b": [b for _, b in links]})
    load(duckdb_engine, edges, pr.KEY_EDGES)
    assert pr._prior_recall(duckdb_engine, strict, reporter) == pytest.approx(30 / 120)
    assert any("25% of the 120 pairs linked by keys" in m for _, m in reporter.messages)
    duckdb_engine.replace_table(pr.KEY_EDGES, duckdb_engine.table(pr.KEY_EDGES).limit(99))
    assert pr._prior_recall(duckdb_engine, strict, reporter) == pr.PRIOR_RECALL  # too few


@pytest.mark.parametrize(("email", "first", "last"), [
    ("marie.dupont85@example.fr", "marie", "dupont"),
    ("luc.georges.92341@example.fr", "luc", "georges"),  # a number after a dot
    ("Jean-Pierre_Le-Goff@example.com", "jean pierre", "le goff"),
    ("dupont.marie@example.fr", "dupont", "marie"),  # read swapped: the model knows
    ("mdupont@example.fr", None, None),
    ("sophie07@example.fr", None, None),
    ("a.b@example.fr", None, None),
    ("marie.d.dupont@example.fr", None, None),
    (None, None, None),
])
def test_names_from_email(email: str | None, first: str | None, last: str | None) -> None:
    import ibis

    t = ibis.memtable({"email": [email]}, schema={"email": "string"})
    got_first, got_last = pr.names_from_email(t.email)
    row = t.select(f=got_first, l=got_last).to_pyarrow().to_pylist()[0]
    assert (row["f"], row["l"]) == (first, last)


def test_first_name_from_email_only_for_records_without_one(
        duckdb_engine: DuckDBEngine) -> None:
    load(duckdb_engine, _records([
        {"email": "marie.dupont@example.fr"},  # nothing typed: both names from the address
        {"email": "marie.dupont@example.fr", "last_name": "Martin"},  # typed last name kept
        {"email": "marie.dupont@example.fr", "first_name": "Paul"},  # typed first name kept
        {"email": "mdupont@example.fr"},  # not two words
    ]))
    records = duckdb_engine.table("customer_records")
    got = duckdb_engine.to_arrow(pr.prepare(records, Probabilistic(
        first_name_from_email=True)).order_by("node").select("first_name", "last_name")
    ).to_pylist()
    assert [(r["first_name"], r["last_name"]) for r in got] == [
        ("marie", "dupont"), ("marie", "martin"), ("paul", None), (None, None)]
    off = duckdb_engine.to_arrow(pr.prepare(records, Probabilistic()).order_by("node").select(
        "first_name")).column("first_name").to_pylist()
    assert off == [None, None, "paul", None]
