"""``birth_year_from_email``: a record without a birth date is compared with the other's
birth year through the year its e-mail address ends with (DuckDB and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pytest

from passerelle.engines.base import Engine
from passerelle.identity import probabilistic as pr
from passerelle.identity import splink_settings as ss
from passerelle.identity.splink_model import _save_model
from passerelle.project.identity_models import Comparison, Probabilistic

CONFIG = Probabilistic(
    birth_year_from_email=True,
    comparisons=[Comparison(field="first_name", method="name"),
                 Comparison(field="last_name", method="name"),
                 Comparison(field="birth_date", method="date")],
    blocking=[["last_name"]], training={"em_blocking": [["last_name"]]})

# node -> (e-mail, birth date)
RECORDS = {
    "0": ("marie.dupont85@example.fr", None),
    "1": (None, dt.date(1985, 3, 2)),
    "2": (None, dt.date(1990, 3, 2)),
    "3": ("marie_1985@example.fr", None),
    "4": ("marie.dupont@example.fr", None),
    "5": ("luc.georges.92341@example.fr", None),
    "6": ("marie.dupont85@example.fr", dt.date(1990, 3, 2)),  # has a birth date: not read
    "7": ("MARIE.DUPONT-85@EXAMPLE.FR", None),
}


def load(engine: Engine) -> None:
    rows = [{"_source": "crm", "_record_id": k, "email": email, "first_name": "Marie",
             "last_name": "Dupont", "birth_date": born} for k, (email, born) in RECORDS.items()]
    table = pa.Table.from_pylist(rows, schema=pa.schema([
        ("_source", pa.string()), ("_record_id", pa.string()), ("email", pa.string()),
        ("first_name", pa.string()), ("last_name", pa.string()), ("birth_date", pa.date32())]))
    engine.append_arrow("customer_records",
                        pa.RecordBatchReader.from_batches(table.schema, table.to_batches()))


def model_file(root: Path) -> None:
    """A model whose every level has a made-up m and u (the levels are under test)."""
    settings = ss.build_settings(CONFIG).get_settings("duckdb").as_dict()
    for comparison in settings["comparisons"]:
        for level in comparison["comparison_levels"]:
            if not level.get("is_null_level"):
                level["m_probability"], level["u_probability"] = 0.5, 0.1
    _save_model(settings, CONFIG.model_file(root), CONFIG, {"records": 0})


def test_the_year_an_address_ends_with(engine: Engine) -> None:
    load(engine)
    prepared = {r["node"]: r[ss.EMAIL_YEAR] for r in engine.to_arrow(
        pr.prepare(engine.table("customer_records"), CONFIG)).to_pylist()}
    assert prepared == {"crm:0": "85", "crm:1": None, "crm:2": None, "crm:3": "85",
                        "crm:4": None, "crm:5": None, "crm:6": None, "crm:7": "85"}
    # without the option, no such column and the birth date's levels are the usual ones
    plain = CONFIG.model_copy(update={"birth_year_from_email": False})
    assert ss.EMAIL_YEAR not in pr.prepare(engine.table("customer_records"), plain).columns
    assert ss.EMAIL_YEAR_AGREES not in ss.level_labels(plain)["birth_date"].values()
    assert ss.fingerprint(plain) != ss.fingerprint(CONFIG)


@pytest.mark.parametrize(("a", "b", "birth", "year"), [
    ("0", "1", "null", ss.EMAIL_YEAR_AGREES),     # 85 and born in 1985
    ("1", "3", "null", ss.EMAIL_YEAR_AGREES),     # 1985 read as 85, either side
    ("0", "2", "null", ss.EMAIL_YEAR_DIFFERS),    # 85 and born in 1990
    ("0", "3", "null", "null"),                   # two e-mail years: no birth date
    ("4", "1", "null", "null"),                   # no year in the address
    ("5", "1", "null", "null"),                   # a number that is not a year
    ("6", "1", "different", "null"),              # both birth dates: the e-mail is not read
    ("2", "6", "exact", "null"),
    ("7", "1", "null", ss.EMAIL_YEAR_AGREES),
])
def test_levels(engine: Engine, tmp_path: Path, a: str, b: str, birth: str,
                year: str) -> None:
    """The year is a comparison of its own, never beside compared birth dates: the birth
    date's m keeps meaning "among matches whose birth dates are compared"."""
    load(engine)
    model_file(tmp_path)
    why = pr.explain_pair(engine, engine.table("customer_records"), f"crm:{a}", f"crm:{b}",
                          CONFIG, tmp_path)
    for field, level in (("birth_date", birth), (ss.EMAIL_YEAR, year)):
        assert why["comparisons"][field]["level"] == level
        expected = 0.0 if level == "null" else 2.32  # log2(0.5 / 0.1) at every level
        assert why["comparisons"][field]["weight"] == pytest.approx(expected, abs=0.01)


def test_training_measures_the_year_on_key_links(engine: Engine) -> None:
    """The m of "e-mail year = birth year" is the share of agreeing years among the pairs
    the keys linked (120 of 150 here), fixed for EM; too few links: EMAIL_YEAR_M."""
    from passerelle.identity import splink_training as st
    from passerelle.identity.splink_input import _drop_own_tables, _materialise_input
    from passerelle.identity.tables import KEY_EDGES
    from passerelle.reporter import SilentReporter

    rows, edges = [], []
    for i in range(150):
        born = dt.date(1950 + i % 40, 1 + i % 12, 1 + i % 28)
        year = born.year % 100 if i < 120 else (born.year + 7) % 100
        rows += [{"_source": "news", "_record_id": str(i), "email": f"p{i}.x{year:02d}@a.fr",
                  "first_name": f"p{i}", "last_name": "x", "birth_date": None},
                 {"_source": "crm", "_record_id": str(i), "email": None,
                  "first_name": f"p{i}", "last_name": "x", "birth_date": born}]
        edges.append({"node_a": f"crm:{i}", "node_b": f"news:{i}"})
    table = pa.Table.from_pylist(rows, schema=pa.schema([
        ("_source", pa.string()), ("_record_id", pa.string()), ("email", pa.string()),
        ("first_name", pa.string()), ("last_name", pa.string()), ("birth_date", pa.date32())]))
    engine.append_arrow("customer_records",
                        pa.RecordBatchReader.from_batches(table.schema, table.to_batches()))
    reporter = SilentReporter()
    try:
        _materialise_input(engine, engine.table("customer_records"), CONFIG, prepass=True)
        edge_table = pa.Table.from_pylist(edges)
        engine.append_arrow(KEY_EDGES, pa.RecordBatchReader.from_batches(
            edge_table.schema, edge_table.to_batches()))
        assert st._email_year_m(engine, reporter) == pytest.approx(0.8)
        assert any("80% of the 150 pairs" in m for _, m in reporter.messages)
        engine.replace_table(KEY_EDGES, engine.table(KEY_EDGES).limit(99))
        assert st._email_year_m(engine, SilentReporter()) == st.EMAIL_YEAR_M
    finally:
        _drop_own_tables(engine)
    comparison = ss.email_year_comparison(0.8, 0.02)
    assert ss.model_shape(CONFIG).comparisons[-1] == (ss.EMAIL_YEAR, ss.EMAIL_YEAR)
    assert [(lv["label_for_charts"], lv.get("m_probability"), lv.get("u_probability"))
            for lv in comparison["comparison_levels"]] == [
        ("null", None, None), (ss.EMAIL_YEAR_AGREES, 0.8, 0.02),
        (ss.EMAIL_YEAR_DIFFERS, pytest.approx(0.2), pytest.approx(0.98))]


def test_a_trained_model_holds_the_measured_comparison(duckdb_engine, tmp_path: Path) -> None:
    """Training leaves the e-mail year out of EM and appends it, u counted exactly: here
    every e-mail year (85) against birth years of which one in ten is 1985."""
    from passerelle.reporter import SilentReporter
    from splink_synthetic import synthetic_records

    table, _ = synthetic_records(300)
    n = table.num_rows
    born = [dt.date(1985 if i % 10 == 0 else 1960, 1, 1) for i in range(n)]
    with_year = [i % 4 == 0 for i in range(n)]
    table = table.set_column(table.schema.get_field_index("birth_date"), "birth_date",
                             pa.array([None if y else b for y, b in zip(with_year, born,
                                                                         strict=True)]))
    table = table.set_column(table.schema.get_field_index("email"), "email", pa.array(
        [f"r{i}.x85@a.fr" if y else None for i, y in enumerate(with_year)]))
    duckdb_engine.append_arrow("customer_records", pa.RecordBatchReader.from_batches(
        table.schema, table.to_batches()))
    config = Probabilistic(birth_year_from_email=True)
    result = pr.match(duckdb_engine, duckdb_engine.table("customer_records"), config,
                      tmp_path, "r", SilentReporter())
    assert result.model is not None and result.model.trained
    model = pr.load_model(config.model_file(tmp_path), config)
    comparison = model["comparisons"][-1]
    assert comparison["output_column_name"] == ss.EMAIL_YEAR
    agree = comparison["comparison_levels"][1]
    assert agree["label_for_charts"] == ss.EMAIL_YEAR_AGREES
    # signatures: the u is counted over the distinct records training read
    assert agree["u_probability"] == pytest.approx(0.1, abs=0.02)
    assert agree["m_probability"] == 0.9  # no key links here: the assumed share
