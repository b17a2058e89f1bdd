import ibis
import pyarrow as pa
import pytest
import sqlglot as sg

from passerelle.engines.postgres import fence_subqueries
from passerelle.errors import EngineError


def test_append_arrow_creates_then_appends(engine):
    batch = pa.table({"a": ["", None, "x,y", 'q"z'], "n": [1, 2, None, 4]})
    assert engine.append_arrow("r", batch.to_reader()) == 4
    rows = engine.to_arrow(engine.table("r").order_by("n")).to_pylist()
    # empty strings, NULLs, quotes and delimiters survive the bulk path as themselves
    assert rows == [{"a": "", "n": 1}, {"a": None, "n": 2}, {"a": 'q"z', "n": 4},
                    {"a": "x,y", "n": None}]
    assert engine.append_arrow("r", batch.to_reader()) == 4
    assert engine.count("r") == 8


def test_transaction_rolls_back(engine):
    engine.append_arrow("r", pa.table({"n": [1, 2, 3]}).to_reader())
    with pytest.raises(KeyError), engine.transaction():
        engine.delete_where_in("r", "n", [1, 2])
        raise KeyError("boom")
    assert engine.count("r") == 3
    with engine.transaction():
        engine.delete_where_in("r", "n", [1, 2])
    assert engine.count("r") == 1


def test_add_missing_columns(engine):
    engine.append_arrow("r", pa.table({"n": [1]}).to_reader())
    added = engine.add_missing_columns("r", ibis.schema({"n": "int64", "z": "string"}))
    assert added == ["z"]
    assert engine.table("r").columns == ("n", "z")


def test_postgres_refusing_connection_is_a_clear_error():
    from passerelle.engines.postgres import PostgresEngine

    eng = PostgresEngine(port=1)  # nothing listens there
    with pytest.raises(EngineError, match=r"Cannot connect to PostgreSQL at 127\.0\.0\.1:1"):
        eng.con  # noqa: B018


def test_duckdb_file_locked_by_another_process(tmp_path):
    import subprocess
    import sys
    import textwrap

    from passerelle.engines.duckdb import DuckDBEngine

    db = tmp_path / "w.duckdb"
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import duckdb, sys, time
            con = duckdb.connect({str(db)!r}); print('ready', flush=True); time.sleep(30)
        """)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(EngineError, match="in use by another process"):
            DuckDBEngine(db).con  # noqa: B018
    finally:
        holder.kill()


def test_layered_tables_keep_their_layers_apart_on_postgres(engine):
    """Layers of columns, each reading the previous one several times: the same rows on
    every engine; on PostgreSQL every subquery is fenced (OFFSET 0), or the planner copies
    each layer's expressions into the next and the query grows exponentially."""
    t = ibis.memtable({"x": ["a", "b"]})
    expected = ["a", "b"]
    for _ in range(12):  # each layer reads the last one three times: 3**12 copies unfenced
        t = t.mutate(x=(t.x + t.x).substr(0, 3) + t.x.length().cast("string"))
        expected = [(x + x)[:3] + str(len(x)) for x in expected]
    engine.replace_layered_table("layered", t)
    assert engine.to_arrow(engine.table("layered").order_by("x")).column("x").to_pylist() == \
        sorted(expected)
    fenced = fence_subqueries(sg.parse_one(
        "SELECT y FROM (SELECT x AS y FROM (SELECT x FROM t) AS a) AS b "
        "JOIN (SELECT x FROM u LIMIT 5) AS c ON TRUE", read="postgres"))
    assert fenced.sql("postgres") == (
        "SELECT y FROM (SELECT x AS y FROM (SELECT x FROM t OFFSET 0) AS a OFFSET 0) AS b "
        "JOIN (SELECT x FROM u LIMIT 5) AS c ON TRUE")


@pytest.mark.postgres
def test_postgres_sessions_run_without_jit():
    """Ibis's and Splink's sessions: JIT compiled the pipeline's large generated expressions
    for minutes (the demo's Splink scoring took 44 s with JIT, 0.2 s without)."""
    import sqlalchemy as sa

    from conftest import postgres_engine
    from passerelle.identity.splink_session import _postgres_api

    pg = postgres_engine()
    try:
        assert pg._run("SHOW jit") == [("off",)]
        splink = _postgres_api(pg)
        with splink._engine.connect() as con:
            assert con.execute(sa.text("SHOW jit")).scalar() == "off"
            assert con.execute(sa.text("SHOW search_path")).scalar() == f"{pg.schema}, public"
        splink._engine.dispose()
    finally:
        pg.drop_schema()
        pg.close()


def test_in_memory_duckdb_writes_no_file(tmp_path, monkeypatch):
    """`:memory:` (a privacy export's scratch database) is DuckDB's name, not a file."""
    from passerelle.engines.duckdb import DuckDBEngine

    monkeypatch.chdir(tmp_path)
    with DuckDBEngine(":memory:") as scratch:
        assert scratch.execute(sg.select(sg.exp.convert(42))) == [(42,)]
    assert list(tmp_path.iterdir()) == []


def test_duckdb_exists_answers_as_the_list_of_tables(duckdb_engine):
    # one look-up of the name instead of listing every table: the same answer for tables,
    # views and temporary tables, and no for DuckDB's own views or a name to be quoted
    eng = duckdb_engine
    eng.replace_table("people", ibis.memtable({"id": [1]}))
    eng.con.create_view("adults", eng.table("people"))
    eng.scratch_table("work", ibis.memtable({"id": [2]}))
    names = ["people", "adults", "work", "PEOPLE", "o'brien", "duckdb_tables", "tables",
             "sqlite_master", "nothing"]
    assert {n for n in names if eng.exists(n)} == {"people", "adults", "work"}
    assert [eng.exists(n) for n in names] == [n in eng.list_tables() for n in names]
