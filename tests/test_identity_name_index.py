"""The name search's index (identity/name_index.py): the same persons as folding every
record's names at query time, refreshed by folding only new or renamed records, and built
by the pipeline."""

from __future__ import annotations

import pyarrow as pa
import pytest

import passerelle
from passerelle.engines.duckdb import DuckDBEngine
from passerelle.identity.name_index import NAME_WORDS, refresh_name_words
from passerelle.identity.tables import CUSTOMER_RECORDS, PERSON_MAP
from passerelle.identity.view import find_persons

PEOPLE = [  # record id, first name, last name, person
    ("1", "Hélène", "Dupont", "P1"), ("2", "Marie-Hélène", "de la Tour", "P2"),
    ("3", "Jean", "Dupont", "P3"), ("4", "Zoé", "L’Œillet", "P4"), ("5", None, None, "P5"),
    ("6", "HELENE", "DUPONT", "P1"), ("7", "marie", "Dupond", "P6")]
QUERIES = ["dupont helene", "Hélène", "helene", "marie", "de la tour", "tour marie",
           "loeillet", "l oeillet", "oeillet zoe", "dupont", "jean dupont", "nobody",
           "DUPONT", "marie helene"]


@pytest.fixture()
def engine(tmp_path):
    e = DuckDBEngine(tmp_path / "w.duckdb")
    _records(e, PEOPLE)
    yield e
    e.close()


def _records(e, people) -> None:
    e.con.create_table(CUSTOMER_RECORDS, pa.table({
        "_source": ["crm"] * len(people), "_record_id": [p[0] for p in people],
        "customer_id": [p[0] for p in people], "loyalty_card": pa.nulls(len(people), pa.string()),
        "email": pa.nulls(len(people), pa.string()), "phone": pa.nulls(len(people), pa.string()),
        "first_name": [p[1] for p in people], "last_name": [p[2] for p in people]}),
        overwrite=True)
    e.con.create_table(PERSON_MAP, pa.table({
        "node": [f"crm:{p[0]}" for p in people], "person_id": [p[3] for p in people]}),
        overwrite=True)


def test_the_index_finds_what_folding_at_query_time_finds(engine):
    scanned = {q: find_persons(engine, q) for q in QUERIES}
    assert [p["person_id"] for p in scanned["dupont helene"]] == ["P1"]
    assert {p["person_id"] for p in scanned["marie"]} == {"P2", "P6"}
    assert [p["person_id"] for p in scanned["oeillet zoe"]] == ["P4"]
    refresh_name_words(engine)
    assert engine.exists(NAME_WORDS)
    assert {q: find_persons(engine, q) for q in QUERIES} == scanned


def test_a_refresh_folds_only_new_or_renamed_records_and_drops_gone_ones(engine):
    assert refresh_name_words(engine) == len(PEOPLE)
    assert refresh_name_words(engine) == 0  # nothing changed (the nameless record too)
    changed = [p for p in PEOPLE if p[0] != "3"]  # record 3 is gone
    changed[0] = ("1", "Hélène", "Martin", "P1")  # record 1 renamed
    _records(engine, [*changed, ("8", "Léa", "Dupont", "P7")])  # record 8 is new
    assert refresh_name_words(engine) == 2
    assert [p["person_id"] for p in find_persons(engine, "dupont")] == ["P1", "P7"]
    assert [p["person_id"] for p in find_persons(engine, "jean")] == []
    assert [p["person_id"] for p in find_persons(engine, "helene martin")] == ["P1"]
    words = engine.table(NAME_WORDS)
    assert engine.to_arrow(words.filter(words.node == "crm:3").count()).as_py() == 0


def test_the_pipeline_builds_the_index(shared_demo):
    with passerelle.open(shared_demo.project_dir) as project:
        engine = project.engine
        assert engine.exists(NAME_WORDS)
        records = engine.table(CUSTOMER_RECORDS)
        words = engine.table(NAME_WORDS)
        assert engine.to_arrow(words.node.nunique()).as_py() == engine.count(CUSTOMER_RECORDS)
        assert engine.to_arrow(records.count()).as_py() > 0
