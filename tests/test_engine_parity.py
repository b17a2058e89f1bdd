"""Engine parity: one demo, three engines (DuckDB, PostgreSQL, Spark in local mode).

The Spark engine's own contract (tables as Parquet folders reopened across sessions, the
statements it rewrites, the functions every engine spells alike) runs in the default suite;
the whole demo on three engines is ``slow`` (minutes of Spark on 2 cores).
Spark needs Java 17+: without it these tests fail with the engine's message, never skip.
"""

from __future__ import annotations

import hashlib
import shutil
import uuid
from pathlib import Path

import ibis
import pyarrow as pa
import pytest
import sqlglot as sg
import sqlglot.expressions as sge

from passerelle.engines.duckdb import DuckDBEngine
from passerelle.engines.spark import SparkEngine

LEAN = {"spark.sql.shuffle.partitions": 2}


def spark_engine(warehouse: Path) -> SparkEngine:
    return SparkEngine(warehouse, master="local[1]", settings=LEAN)


def test_spark_tables_are_parquet_folders_reopened_by_the_next_session(tmp_path):
    eng = spark_engine(tmp_path / "wh")
    rows = pa.table({"id": [1, 2, 3], "name": ["a", "b", None]})
    assert eng.append_arrow("t", pa.RecordBatchReader.from_batches(rows.schema,
                                                                   rows.to_batches())) == 3
    eng.con.insert("t", ibis.memtable({"id": [4], "name": ["d"]}))
    eng.execute(sge.delete(sg.table("t", quoted=True),
                           where=sg.column("id", quoted=True).eq(sge.convert(2))))
    eng.execute(sge.update(sg.table("t", quoted=True), {"name": sge.convert("z")},
                           where=sg.column("name", quoted=True).is_(sge.null())))
    eng.add_missing_columns("t", ibis.schema({"score": "float64"}))
    eng.rename("t", "people")
    eng.con.create_view("v", eng.table("people").filter(ibis._.id > 1))
    eng.close()

    again = spark_engine(tmp_path / "wh")
    assert again.base_tables() == ["people"]
    got = again.to_arrow(again.table("people").order_by("id")).to_pylist()
    assert got == [{"id": 1, "name": "a", "score": None}, {"id": 3, "name": "z", "score": None},
                   {"id": 4, "name": "d", "score": None}]
    assert again.count("v") == 2
    again.drop("people")
    assert not again.exists("people")
    assert not any((tmp_path / "wh" / "tables").iterdir())  # no folder left behind
    again.close()


def test_spark_spells_hashes_and_json_like_duckdb(tmp_path):
    values = ibis.memtable({"s": ["héllo", "", None], "doc": ['{"a.b": 1, "q\'k": "x"}',
                                                            '{"a.b": {"c": 2}}', None]})
    results = []
    for eng in (DuckDBEngine(tmp_path / "w.duckdb"), spark_engine(tmp_path / "wh")):
        doc = values.doc.cast("json")
        expr = values.select(h=eng.sha256_hex(values.s), a=eng.json_text(doc, "a.b"),
                             q=eng.json_text(doc, "q'k"))
        results.append(eng.to_arrow(expr).to_pylist())
        eng.close()
    assert results[0] == results[1]
    assert results[0][0]["h"] == hashlib.sha256("héllo".encode()).hexdigest()
    assert [r["a"] for r in results[0]] == ["1", '{"c":2}', None] and results[0][0]["q"] == "x"


def test_spark_strips_whitespace_like_duckdb_and_never_letters(tmp_path):
    # Ibis spells the whitespace set '\t\n\r\v\f' in SQL, which Spark read as the letters
    # v and f: staged "false" became "alse" (a NULL consent), "fabien@..." "abien@..."
    values = ibis.memtable({"s": ["  false \t", "vrai\n", "fabien@x.fr", "\x0bv f\x0c", None]})
    results = []
    for eng in (DuckDBEngine(tmp_path / "w.duckdb"), spark_engine(tmp_path / "wh")):
        results.append(eng.to_arrow(values.select(t=values.s.strip())).column("t").to_pylist())
        eng.close()
    assert results[0] == results[1] == ["false", "vrai", "fabien@x.fr", "v f", None]


def test_a_new_process_with_a_spark_engine_knows_the_models_splink_dialect(tmp_path):
    # `passerelle run` scoring with a model `passerelle identity train` saved in another
    # process failed: Splink did not know the dialect the model names
    import subprocess
    import sys

    code = ("import sys; from passerelle.engines.spark import SparkEngine\n"
            "e = SparkEngine(sys.argv[1], master='local[1]')\n"
            "from splink.internals.dialects import SplinkDialect\n"
            "SplinkDialect.from_string('passerelle_spark')\n")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "wh")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


def test_spark_declares_what_it_does_differently():
    caps = SparkEngine.capabilities
    assert not caps.transactions and not caps.temporary_tables and caps.single_writer


def test_a_missing_java_fails_with_a_clear_message(tmp_path, monkeypatch):
    from passerelle.errors import EngineError

    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    with pytest.raises(EngineError, match="Java"):
        _ = SparkEngine(tmp_path / "wh").con


GOLDEN = ["person_id", "first_name", "last_name", "email", "phone", "postcode", "birth_date",
          "consent_email", "consent_sms", "record_count"]


def _outcome(project_dir: Path) -> dict:
    """What must not depend on the engine: person ids, golden records, traits, segments."""
    import passerelle

    with passerelle.open(project_dir) as project:
        engine = project.engine
        persons = engine.to_arrow(engine.table("person_map").select("node", "person_id"))
        profiles = engine.to_arrow(engine.table("profiles").select(*GOLDEN)).to_pylist()
        traits = engine.table("traits")
        trait_rows = engine.to_arrow(traits.select(
            "person_id", "trait", "value_number", "value_text")).to_pylist()
        members = engine.to_arrow(engine.table("segment_membership").select(
            "segment", "person_id")).to_pylist()
    return {
        "persons": sorted(zip(*persons.to_pydict().values(), strict=True)),
        "profiles": sorted(profiles, key=lambda r: r["person_id"]),
        "traits": sorted((r["person_id"], r["trait"], None if r["value_number"] is None
                          else round(r["value_number"], 2), r["value_text"])
                         for r in trait_rows),
        "segments": sorted((r["segment"], r["person_id"]) for r in members),
    }


def _on(outcome_dir: Path, target: Path, engine: dict) -> Path:
    import yaml

    shutil.copytree(outcome_dir, target, ignore=shutil.ignore_patterns("warehouse.duckdb*",
                                                                       ".passerelle"))
    config = yaml.safe_load((target / "passerelle.yml").read_text("utf-8"))
    config["engine"] = engine
    (target / "passerelle.yml").write_text(yaml.safe_dump(config), "utf-8")
    return target


@pytest.mark.slow
@pytest.mark.postgres
def test_one_demo_gives_the_same_people_on_duckdb_postgresql_and_spark(shared_demo, tmp_path):
    import passerelle
    from conftest import PG

    schema = f"pt_parity_{uuid.uuid4().hex[:8]}"
    engines = {"postgres": {"type": "postgres", **PG, "schema": schema},
               "spark": {"type": "spark", "master": "local[2]", "settings": LEAN}}
    expected = _outcome(shared_demo.project_dir)
    assert len(expected["persons"]) > 100 and expected["segments"] and expected["traits"]
    for name, config in engines.items():
        project_dir = _on(shared_demo.project_dir, tmp_path / name, config)
        try:
            with passerelle.open(project_dir) as project:
                result = project.run()
                assert result.ok, [e.reason for e in result.errors]
            got = _outcome(project_dir)
        finally:
            if name == "postgres":
                from passerelle.engines.postgres import PostgresEngine

                PostgresEngine(**PG, schema=schema).drop_schema()
        for part in expected:
            assert got[part] == expected[part], f"{name}: {part} differ from DuckDB's"
