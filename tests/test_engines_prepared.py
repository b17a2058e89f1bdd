"""Queries compiled once per shape and run with bound values (engines/prepared.py)."""

from __future__ import annotations

import ibis
import pyarrow as pa
import pytest

from passerelle.engines import prepared as prep
from passerelle.engines.base import Engine
from passerelle.engines.duckdb import DuckDBEngine


@pytest.fixture()
def engine(tmp_path, monkeypatch):
    monkeypatch.setattr(prep, "STAMP_EVERY_S", 0.0)  # look at the catalogue every query
    e = DuckDBEngine(tmp_path / "w.duckdb")
    e.con.create_table("people", pa.table({
        "id": ["a", "b", "c", "d'1"], "city": ["Lyon", "Paris", "Lyon", "Nice"],
        "age": [31, 45, 27, 60]}))
    yield e
    e.close()


def _by_city(engine: Engine):
    def build(v):
        t = engine.table("people")
        return t.filter(t.city.isin(v["cities"]) & (t.age >= v["age"])).order_by("id")
    return build


def test_same_rows_as_compiling_each_time_and_one_compilation_per_shape(engine):
    build = _by_city(engine)
    for cities, age in ((["Lyon"], 0), (["Paris"], 40), (["Lyon"], 30), (["Nice"], 0)):
        values = {"cities": cities, "age": age}
        got = engine.prepared("by_city", values, build)
        assert got.equals(Engine.prepared(engine, "by_city", values, build))
    assert engine._prepared.compiled == 1  # four runs of one shape
    engine.prepared("by_city", {"cities": ["Lyon", "Nice"], "age": 0}, build)
    assert engine._prepared.compiled == 2  # two cities: another shape


def test_values_are_bound_never_sql_text(engine):
    build = _by_city(engine)
    for hostile in ("x' OR '1'='1", "$p0", "Lyon' --", prep._MARK.format(0)):
        assert engine.prepared("by_city", {"cities": [hostile], "age": 0}, build).num_rows == 0

    def by_id(v):
        t = engine.table("people")
        return t.filter(t.id == v["id"]).select("id")
    assert engine.prepared("by_id", {"id": "d'1"}, by_id).column("id").to_pylist() == ["d'1"]


def test_scalars_and_empty_lists(engine):
    def count(v):
        t = engine.table("people")
        cond = t.city.isin(v["cities"]) if v["cities"] else ibis.literal(False)
        return t.filter(cond).count()
    assert engine.prepared("count", {"cities": ["Lyon"]}, count).as_py() == 2
    assert engine.prepared("count", {"cities": []}, count).as_py() == 0


def test_a_changed_table_is_compiled_again(engine):
    def everyone(v):
        t = engine.table("people")
        return t.filter(t.age >= v["age"]).order_by("id")
    assert engine.prepared("all", {"age": 0}, everyone).column_names == ["id", "city", "age"]
    engine.con.con.execute("ALTER TABLE people ADD COLUMN vip BOOLEAN")
    assert engine.prepared("all", {"age": 0}, everyone).column_names == [
        "id", "city", "age", "vip"]
    # a column's type changes, the catalogue's shape does not: the result's schema tells
    engine.con.con.execute("ALTER TABLE people ALTER age TYPE DOUBLE")
    assert engine.prepared("all", {"age": 0}, everyone).schema.field("age").type == pa.float64()
