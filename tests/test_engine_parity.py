"""Engine parity: one demo, three engines (DuckDB, PostgreSQL, Spark in local mode).

In the default suite: the Spark engine's own contract (tables as Parquet folders reopened
across sessions, the statements it rewrites, the functions every engine spells alike) and a
small demo (enough duplicates to exercise identity) run on DuckDB, then on PostgreSQL and on
Spark, giving the same person ids, golden records, traits and segment memberships.
Every Spark engine of the test session shares one local JVM, started once with lean
settings (one core, one shuffle partition, no UI). Spark needs Java 17+: without it these
tests fail with the engine's message, never skip.
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

# Lean local settings: the first Spark engine of the test session starts the JVM with them,
# the others reuse it (the process's one session).
LEAN = {"spark.sql.shuffle.partitions": 1, "spark.default.parallelism": 1,
        "spark.sql.adaptive.enabled": False,  # small data: planning, not rows, costs here
        "spark.driver.memory": "1g"}  # a setting read when the JVM starts, never after
# People in the parity demo: about 2 records a person, so identity links a few hundred.
PARITY_PEOPLE = 80


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


def _on(project_dir: Path, target: Path, engine: dict) -> Path:
    """A copy of the demo project (its sources, checks and Splink model, not its
    warehouse) with another engine block."""
    import yaml

    shutil.copytree(project_dir, target, ignore=shutil.ignore_patterns("warehouse.duckdb*",
                                                                       ".passerelle"))
    config = yaml.safe_load((target / "passerelle.yml").read_text("utf-8"))
    config["engine"] = engine
    (target / "passerelle.yml").write_text(yaml.safe_dump(config), "utf-8")
    return target


@pytest.fixture(scope="module")
def parity_demo(tmp_path_factory):
    """A small demo run on DuckDB (which trains the Splink model the other engines reuse),
    and what it gave."""
    from passerelle.demo.run import run_demo

    outcome = run_demo(tmp_path_factory.mktemp("parity") / "demo", size=PARITY_PEOPLE, seed=7)
    assert outcome.result.ok, [e.reason for e in outcome.result.errors]
    expected = _outcome(outcome.project_dir)
    persons = {person for _, person in expected["persons"]}
    # enough for parity to mean something: duplicates linked, traits and segments filled
    assert len(expected["persons"]) > 1.5 * len(persons) > 100
    assert expected["segments"] and expected["traits"]
    return outcome.project_dir, expected


def _run_and_compare(project_dir: Path, expected: dict, name: str) -> None:
    import passerelle
    from figures_helpers import stored_differ
    from passerelle.identity import lookups

    with passerelle.open(project_dir) as project:
        result = project.run()
        assert result.ok, [e.reason for e in result.errors]
        # the web pages' reads the run prepared: current, and the figures as computed now
        assert lookups.current(project.engine)
        assert stored_differ(project) == [], name
    got = _outcome(project_dir)
    for part in expected:
        if got[part] != expected[part]:
            only_duckdb = [r for r in expected[part] if r not in got[part]][:5]
            only_here = [r for r in got[part] if r not in expected[part]][:5]
            pytest.fail(f"{name}: {part} differ from DuckDB's ({len(got[part])} rows against "
                        f"{len(expected[part])}); only on DuckDB: {only_duckdb}; only on "
                        f"{name}: {only_here}")


@pytest.mark.postgres
def test_the_demo_gives_the_same_people_on_postgresql(parity_demo, tmp_path):
    from conftest import PG
    from passerelle.engines.postgres import PostgresEngine

    demo, expected = parity_demo
    schema = f"pt_parity_{uuid.uuid4().hex[:8]}"
    project_dir = _on(demo, tmp_path / "postgres", {"type": "postgres", **PG, "schema": schema})
    try:
        _run_and_compare(project_dir, expected, "PostgreSQL")
    finally:
        PostgresEngine(**PG, schema=schema).drop_schema()


def test_the_demo_gives_the_same_people_on_spark(parity_demo, tmp_path):
    demo, expected = parity_demo
    project_dir = _on(demo, tmp_path / "spark", {"type": "spark", "master": "local[1]",
                                                  "settings": LEAN})
    _run_and_compare(project_dir, expected, "Spark")
