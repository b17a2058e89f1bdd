"""File sources (CSV, JSON lines, Parquet) loaded into raw tables, on DuckDB and PostgreSQL."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from passerelle.errors import ConnectorError
from passerelle.project.models import SourceConfig
from passerelle.reporter import SilentReporter
from passerelle.sources import (
    LOADS_TABLE,
    QUARANTINE_TABLE,
    check_connection,
    csv_dialect,
    load_source,
    source_columns,
)


def make_source(connector: dict, name: str = "crm") -> SourceConfig:
    return SourceConfig.model_validate({
        "name": name, "entity": "customers", "connector": connector,
        "columns": {"customer_id": "id"},
    })


def load(engine, root: Path, source: SourceConfig, run_id: str = "run1"):
    return load_source(engine, root, source, run_id, SilentReporter())


def rows_of(engine, table: str, order: str = "_source_row", columns=None) -> list[dict]:
    t = engine.table(table)
    expr = t.order_by(["_source_file", order]) if "_source_file" in t.columns else t.order_by(order)
    if columns:
        expr = expr.select(*columns)
    return engine.to_arrow(expr).to_pylist()


def ledger(engine) -> list[dict]:
    t = engine.table(LOADS_TABLE)
    return engine.to_arrow(
        t.order_by("load_id")
        .select("source", "source_file", "fingerprint", "size_bytes", "rows", "run_id")
    ).to_pylist()


def write(root: Path, rel: str, data: bytes) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_csv_utf8_comma_with_lineage_and_ledger(engine, tmp_path):
    data = b"id,email,Date de naissance\n1,a@x.fr,01/02/1990\n2,,31/12/1985\n"
    write(tmp_path, "data/crm.csv", data)
    source = make_source({"type": "csv", "path": "data/crm.csv"})
    result = load(engine, tmp_path, source)
    assert (result.units_loaded, result.rows_loaded, result.units_skipped) == (1, 2, 0)
    assert result.raw_table == "raw_crm"
    assert result.csv_dialect == {"delimiter": ",", "encoding": "utf-8", "decimal": "."}
    rows = rows_of(engine, "raw_crm")
    assert [(r["id"], r["email"], r["Date de naissance"], r["_source_row"]) for r in rows] == [
        ("1", "a@x.fr", "01/02/1990", 1), ("2", None, "31/12/1985", 2)]
    assert {r["_source_file"] for r in rows} == {"data/crm.csv"}
    load_ids = {r["_load_id"] for r in rows}
    assert len(load_ids) == 1 and next(iter(load_ids)).count("-") == 1
    assert ledger(engine) == [{
        "source": "crm", "source_file": "data/crm.csv",
        "fingerprint": hashlib.sha256(data).hexdigest(), "size_bytes": len(data), "rows": 2,
        "run_id": "run1"}]
    assert engine.table("raw_crm").columns[-4:] == (
        "_load_id", "_loaded_at", "_source_file", "_source_row")


def test_french_excel_export_cp1252(engine, tmp_path):
    text = ("Nom;Prénom;Montant;Commentaire\r\n"
            "Dupont;Hélène;12,50;l’été à 5 €\r\n"
            "Lefèvre;Zoé;1 234,00;œuvre\r\n")
    write(tmp_path, "export.csv", text.encode("cp1252"))
    source = make_source({"type": "csv", "path": "export.csv"})
    result = load(engine, tmp_path, source)
    assert result.csv_dialect == {"delimiter": ";", "encoding": "cp1252", "decimal": ","}
    assert csv_dialect(tmp_path, source) == result.csv_dialect
    rows = rows_of(engine, "raw_crm", columns=["Nom", "Prénom", "Montant", "Commentaire"])
    assert rows == [
        {"Nom": "Dupont", "Prénom": "Hélène", "Montant": "12,50", "Commentaire": "l’été à 5 €"},
        {"Nom": "Lefèvre", "Prénom": "Zoé", "Montant": "1 234,00", "Commentaire": "œuvre"},
    ]


def test_utf8_bom_semicolon(duckdb_engine, tmp_path):
    write(tmp_path, "a.csv", "\ufeffid;Prénom\n1;Hélène\n".encode())
    result = load(duckdb_engine, tmp_path, make_source({"type": "csv", "path": "a.csv"}))
    assert result.csv_dialect == {"delimiter": ";", "encoding": "utf-8", "decimal": "."}
    assert rows_of(duckdb_engine, "raw_crm", columns=["id", "Prénom"]) == [
        {"id": "1", "Prénom": "Hélène"}]


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_delimiter_sniffing(duckdb_engine, tmp_path, delimiter):
    # a comma inside a quoted field and a decimal point must not fool the sniffer
    lines = [["id", "nom", "montant"], ["1", '"Dupont, Jean"', "3.5"], ["2", "Zoé", "4.25"]]
    write(tmp_path, "a.csv", "\n".join(delimiter.join(r) for r in lines).encode() + b"\n")
    source = make_source({"type": "csv", "path": "a.csv"})
    result = load(duckdb_engine, tmp_path, source)
    assert result.csv_dialect["delimiter"] == delimiter
    assert result.csv_dialect["decimal"] == "."
    assert source_columns(tmp_path, source) == ["id", "nom", "montant"]
    assert rows_of(duckdb_engine, "raw_crm", columns=["id", "nom", "montant"]) == [
        {"id": "1", "nom": "Dupont, Jean", "montant": "3.5"},
        {"id": "2", "nom": "Zoé", "montant": "4.25"}]


def test_glob_two_files_then_rerun_skips_and_raw_is_unchanged(engine, tmp_path):
    write(tmp_path, "in/a_1.csv", b"id,v\n1,a\n2,b\n")
    write(tmp_path, "in/a_2.csv", b"id,v\n3,c\n")
    source = make_source({"type": "csv", "path": "in/a_*.csv"})
    first = load(engine, tmp_path, source)
    assert (first.units_loaded, first.rows_loaded) == (2, 3)
    before = rows_of(engine, "raw_crm")
    assert [(r["_source_file"], r["_source_row"], r["id"]) for r in before] == [
        ("in/a_1.csv", 1, "1"), ("in/a_1.csv", 2, "2"), ("in/a_2.csv", 1, "3")]
    second = load(engine, tmp_path, source, run_id="run2")
    assert (second.units_loaded, second.units_skipped, second.rows_loaded) == (0, 2, 0)
    assert rows_of(engine, "raw_crm") == before
    assert len(ledger(engine)) == 2
    # a third file arrives: only it is loaded
    write(tmp_path, "in/a_3.csv", b"id,v\n4,d\n")
    third = load(engine, tmp_path, source, run_id="run3")
    assert (third.units_loaded, third.units_skipped, third.rows_loaded) == (1, 2, 1)
    assert engine.count("raw_crm") == 4


def test_replaced_file_replaces_its_rows(engine, tmp_path):
    write(tmp_path, "a.csv", b"id,v\n1,a\n2,b\n")
    write(tmp_path, "b.csv", b"id,v\n9,z\n")
    source = make_source({"type": "csv", "path": "*.csv"})
    load(engine, tmp_path, source)
    write(tmp_path, "a.csv", b"id,v\n1,A\n2,B\n3,C\n")
    result = load(engine, tmp_path, source, run_id="run2")
    assert (result.units_loaded, result.units_replaced, result.units_skipped) == (1, 1, 1)
    assert any("a.csv changed" in m for m in result.messages)
    rows = rows_of(engine, "raw_crm", columns=["_source_file", "id", "v"])
    assert rows == [{"_source_file": "a.csv", "id": "1", "v": "A"},
                    {"_source_file": "a.csv", "id": "2", "v": "B"},
                    {"_source_file": "a.csv", "id": "3", "v": "C"},
                    {"_source_file": "b.csv", "id": "9", "v": "z"}]
    assert [r["rows"] for r in ledger(engine)] == [2, 1, 3]


def test_replaced_file_with_on_change_error(duckdb_engine, tmp_path):
    write(tmp_path, "a.csv", b"id\n1\n")
    source = make_source({"type": "csv", "path": "a.csv", "on_change": "error"})
    load(duckdb_engine, tmp_path, source)
    write(tmp_path, "a.csv", b"id\n2\n")
    with pytest.raises(ConnectorError, match=r"a\.csv changed since it was loaded"):
        load(duckdb_engine, tmp_path, source)
    assert rows_of(duckdb_engine, "raw_crm", columns=["id"]) == [{"id": "1"}]


def test_malformed_lines_go_to_quarantine_and_good_rows_load(engine, tmp_path):
    write(tmp_path, "a.csv", b'id,nom\n1,Anne\n2,Bob,extra\n3,"multi\nline"\n4\n5,Eve\n')
    source = make_source({"type": "csv", "path": "a.csv"})
    result = load(engine, tmp_path, source)
    assert (result.rows_loaded, result.rows_rejected) == (3, 2)
    rows = rows_of(engine, "raw_crm", columns=["id", "nom", "_source_row"])
    # rows keep their real row number in the file, rejected rows leave gaps
    assert rows == [{"id": "1", "nom": "Anne", "_source_row": 1},
                    {"id": "3", "nom": "multi\nline", "_source_row": 3},
                    {"id": "5", "nom": "Eve", "_source_row": 5}]
    q = engine.table(QUARANTINE_TABLE)
    quarantined = engine.to_arrow(
        q.select("source", "source_file", "source_row", "reason", "detail", "load_id")
        .order_by("source_row")).to_pylist()
    assert [(r["source"], r["source_file"], r["source_row"], r["reason"]) for r in quarantined] \
        == [("crm", "a.csv", 2, "csv_too_many_columns"), ("crm", "a.csv", 4, "csv_missing_columns")]
    assert "2,Bob,extra" in quarantined[0]["detail"]
    load_ids = {r["_load_id"] for r in rows_of(engine, "raw_crm")}
    assert {r["load_id"] for r in quarantined} == load_ids
    # replacing the file clears the old quarantine rows too
    write(tmp_path, "a.csv", b"id,nom\n1,Anne\n")
    load(engine, tmp_path, source, run_id="run2")
    assert engine.count(QUARANTINE_TABLE) == 0


def test_unterminated_quote_is_quarantined(duckdb_engine, tmp_path):
    write(tmp_path, "a.csv", b'id,nom\n1,Anne\n2,"never closed\n')
    result = load(duckdb_engine, tmp_path, make_source({"type": "csv", "path": "a.csv"}))
    assert (result.rows_loaded, result.rows_rejected) == (1, 1)
    q = duckdb_engine.to_arrow(duckdb_engine.table(QUARANTINE_TABLE)).to_pylist()
    assert [(r["source_row"], r["reason"]) for r in q] == [(2, "csv_unquoted_value")]


def test_one_megabyte_field(engine, tmp_path):
    big = "é" * (1 << 20)
    write(tmp_path, "a.csv", f'id,notes\n1,"{big}"\n2,court\n'.encode())
    result = load(engine, tmp_path, make_source({"type": "csv", "path": "a.csv"}))
    assert (result.rows_loaded, result.rows_rejected) == (2, 0)
    rows = rows_of(engine, "raw_crm", columns=["id", "notes"])
    assert rows[0]["notes"] == big and rows[1] == {"id": "2", "notes": "court"}


def test_empty_files(engine, tmp_path):
    write(tmp_path, "in/a_empty.csv", b"")
    write(tmp_path, "in/b_header.csv", b"id,email\n")
    source = make_source({"type": "csv", "path": "in/*.csv"})
    result = load(engine, tmp_path, source)
    assert (result.units_loaded, result.empty_units, result.rows_loaded) == (2, 2, 0)
    assert [r["rows"] for r in ledger(engine)] == [0, 0]
    assert engine.count("raw_crm") == 0
    assert {"id", "email", "_load_id"} <= set(engine.table("raw_crm").columns)
    again = load(engine, tmp_path, source, run_id="run2")
    assert (again.units_loaded, again.units_skipped) == (0, 2)


def test_missing_file_and_glob(duckdb_engine, tmp_path):
    with pytest.raises(ConnectorError, match=r"File not found: nope\.csv") as info:
        load(duckdb_engine, tmp_path, make_source({"type": "csv", "path": "nope.csv"}))
    assert "relative to the project folder" in info.value.instruction
    with pytest.raises(ConnectorError, match=r"No file matches 'in/\*\.csv'"):
        load(duckdb_engine, tmp_path, make_source({"type": "csv", "path": "in/*.csv"}))


def test_new_column_in_later_file_and_missing_column(engine, tmp_path):
    write(tmp_path, "a.csv", b"id,email\n1,a@x.fr\n")
    source = make_source({"type": "csv", "path": "*.csv"})
    load(engine, tmp_path, source)
    write(tmp_path, "b.csv", b"id,phone\n2,0601020304\n")
    result = load(engine, tmp_path, source, run_id="run2")
    assert any("b.csv brings new column(s) phone" in m for m in result.messages)
    assert any("b.csv lacks column(s) email" in m for m in result.messages)
    rows = rows_of(engine, "raw_crm", columns=["id", "email", "phone"])
    assert rows == [{"id": "1", "email": "a@x.fr", "phone": None},
                    {"id": "2", "email": None, "phone": "0601020304"}]


def test_jsonl_with_nested_properties(engine, tmp_path):
    events = [
        {"id": 1, "event": "page", "properties": {"url": "/a", "tags": [1, 2]}, "ts": "x"},
        {"id": 2, "event": "track", "properties": {"amount": 12.5}},
    ]
    write(tmp_path, "e.jsonl", "\n".join(json.dumps(e) for e in events).encode() + b"\n")
    result = load(engine, tmp_path, make_source({"type": "jsonl", "path": "e.jsonl"}, "web"))
    assert result.rows_loaded == 2 and result.csv_dialect is None
    rows = rows_of(engine, "raw_web", columns=["id", "event", "properties", "ts"])
    assert [r["id"] for r in rows] == [1, 2]  # native integer type kept
    assert [json.loads(r["properties"]) for r in rows] == [e["properties"] for e in events]
    assert [r["ts"] for r in rows] == ["x", None]


def test_jsonl_malformed_line_is_a_clear_error(duckdb_engine, tmp_path):
    write(tmp_path, "e.jsonl", b'{"id": 1}\n{"id": 2,\n{"id": 3}\n')
    with pytest.raises(ConnectorError, match=r"Cannot read e\.jsonl: .*line 3"):
        load(duckdb_engine, tmp_path, make_source({"type": "jsonl", "path": "e.jsonl"}))
    # nothing half-recorded: no raw rows, no ledger row
    assert not duckdb_engine.exists("raw_crm") or duckdb_engine.count("raw_crm") == 0
    assert duckdb_engine.count(LOADS_TABLE) == 0


def test_parquet_native_types_and_nested_json(engine, tmp_path):
    table = pa.table({
        "id": pa.array([1, 2], pa.int64()),
        "amount": pa.array([12.5, None]),
        "address": [{"city": "Lyon", "zip": "69001"}, None],
        "tags": [["a", "b"], []],
    })
    (tmp_path / "p").mkdir()
    pq.write_table(table, tmp_path / "p" / "orders.parquet")
    source = make_source({"type": "parquet", "path": "p/*.parquet"}, "shop")
    result = load(engine, tmp_path, source)
    assert result.rows_loaded == 2
    assert source_columns(tmp_path, source) == ["id", "amount", "address", "tags"]
    rows = rows_of(engine, "raw_shop", columns=["id", "amount", "address", "tags"])
    assert rows[0]["id"] == 1 and rows[0]["amount"] == 12.5 and rows[1]["amount"] is None
    assert json.loads(rows[0]["address"]) == {"city": "Lyon", "zip": "69001"}
    assert rows[1]["address"] is None
    assert [json.loads(r["tags"]) for r in rows] == [["a", "b"], []]


def test_crash_recovery_removes_unrecorded_rows(engine, tmp_path):
    write(tmp_path, "a.csv", b"id\n1\n2\n")
    source = make_source({"type": "csv", "path": "a.csv"})
    load(engine, tmp_path, source)
    # a load that appended rows and died before recording itself
    orphan = pa.table({"id": ["x", "y", "z"], "_load_id": ["20261123T000000000000-deadbeef"] * 3,
                       "_source_file": ["b.csv"] * 3, "_source_row": pa.array([1, 2, 3],
                                                                           pa.int64())})
    engine.append_arrow("raw_crm", orphan.to_reader())
    assert engine.count("raw_crm") == 5
    write(tmp_path, "a.csv", b"id\n1\n2\n3\n")
    result = load(engine, tmp_path, source, run_id="run2")
    assert any("Removed 3 row(s) left by an unfinished" in m for m in result.messages)
    assert result.rows_loaded == 3
    assert rows_of(engine, "raw_crm", columns=["id"]) == [{"id": "1"}, {"id": "2"}, {"id": "3"}]


def test_load_killed_midway_reruns_cleanly(duckdb_engine, tmp_path, monkeypatch):
    """A failure after the append but before the ledger row leaves nothing behind."""
    from passerelle.sources import bookkeeping

    write(tmp_path, "a.csv", b"id\n1\n2\n")
    source = make_source({"type": "csv", "path": "a.csv"})

    def die(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(bookkeeping, "record_load", die)
    with pytest.raises(KeyboardInterrupt):
        load(duckdb_engine, tmp_path, source)
    monkeypatch.undo()
    assert not duckdb_engine.exists("raw_crm")  # the whole unit was rolled back
    assert duckdb_engine.count(LOADS_TABLE) == 0
    result = load(duckdb_engine, tmp_path, source, run_id="run2")
    assert result.rows_loaded == 2 and duckdb_engine.count("raw_crm") == 2


def test_quarantine_is_reported(duckdb_engine, tmp_path):
    write(tmp_path, "a.csv", b"id,nom\n1,a\n2,b,c\n")
    reporter = SilentReporter()
    load_source(duckdb_engine, tmp_path, make_source({"type": "csv", "path": "a.csv"}), "r1",
                reporter)
    assert ("warning", "1 malformed line(s) of crm were sent to the quarantine table.") \
        in reporter.messages


def test_headerless_csv_and_duplicate_header_names(duckdb_engine, tmp_path):
    write(tmp_path, "n.csv", b"1;a\n2;b\n")
    write(tmp_path, "d.csv", b"id,nom,nom,\n1,a,b,c\n")
    plain = make_source({"type": "csv", "path": "n.csv", "header": False}, "plain")
    load(duckdb_engine, tmp_path, plain)
    assert rows_of(duckdb_engine, "raw_plain", columns=["column0", "column1"]) == [
        {"column0": "1", "column1": "a"}, {"column0": "2", "column1": "b"}]
    dup = make_source({"type": "csv", "path": "d.csv"}, "dup")
    assert source_columns(tmp_path, dup) == ["id", "nom", "nom_1", "column3"]
    load(duckdb_engine, tmp_path, dup)
    assert rows_of(duckdb_engine, "raw_dup", columns=["nom", "nom_1", "column3"]) == [
        {"nom": "a", "nom_1": "b", "column3": "c"}]


def test_explicit_encoding_and_delimiter(duckdb_engine, tmp_path):
    write(tmp_path, "a.csv", "id|ville\n1|Besançon\n".encode("latin-1"))
    source = make_source({"type": "csv", "path": "a.csv", "encoding": "latin-1",
                          "delimiter": "|", "decimal": ","})
    assert csv_dialect(tmp_path, source) == {"delimiter": "|", "encoding": "iso8859-1",
                                             "decimal": ","}
    load(duckdb_engine, tmp_path, source)
    assert rows_of(duckdb_engine, "raw_crm", columns=["ville"]) == [{"ville": "Besançon"}]
    bad = make_source({"type": "csv", "path": "a.csv", "encoding": "klingon"}, "bad")
    with pytest.raises(ConnectorError, match="Unknown encoding 'klingon'"):
        load(duckdb_engine, tmp_path, bad)


def test_source_columns_union_over_glob_and_connection_check(tmp_path):
    write(tmp_path, "in/a.csv", b"id,email\n1,x\n")
    write(tmp_path, "in/b.csv", b"id,phone\n2,y\n")
    source = make_source({"type": "csv", "path": "in/*.csv"})
    assert source_columns(tmp_path, source) == ["id", "email", "phone"]
    check_connection(source, tmp_path)
    with pytest.raises(ConnectorError, match="No file matches"):
        check_connection(make_source({"type": "jsonl", "path": "in/*.jsonl"}), tmp_path)
    assert csv_dialect(tmp_path, make_source({"type": "parquet", "path": "x.parquet"})) is None


SEMICOLON = b"id;email;city\n1;a@x.fr;Paris\n2;b@x.fr;Lyon\n"


def test_a_changed_read_setting_reloads_the_file_and_replaces_its_rows(engine, tmp_path):
    write(tmp_path, "data/crm.csv", SEMICOLON)
    wrong = make_source({"type": "csv", "path": "data/crm.csv", "delimiter": ","})
    load(engine, tmp_path, wrong, "run1")
    assert engine.table("raw_crm").columns[0] == "id;email;city"

    fixed = make_source({"type": "csv", "path": "data/crm.csv"})  # back to auto
    result = load(engine, tmp_path, fixed, "run2")
    assert (result.units_loaded, result.units_replaced, result.rows_loaded) == (1, 1, 2)
    assert "read with different settings since its last load (delimiter ',' -> ';')" in \
        " ".join(result.messages)
    rows = rows_of(engine, "raw_crm")
    assert [(r["id"], r["city"], r["_source_row"]) for r in rows] == [("1", "Paris", 1),
                                                                     ("2", "Lyon", 2)]
    assert {r["_load_id"] for r in rows} == {ledger_ids(engine)[-1]}  # lineage: the new load
    # the column only the wrong reading had is gone, as `validate` would say
    assert "id;email;city" not in engine.table("raw_crm").columns
    assert json.loads(engine.to_arrow(engine.table(LOADS_TABLE).order_by("load_id"))
                      .to_pylist()[-1]["read_as"]) == {
        "type": "csv", "delimiter": ";", "encoding": "utf-8", "quote": '"', "header": True}

    # writing out what 'auto' found reads the file the same way: nothing to reload
    explicit = make_source({"type": "csv", "path": "data/crm.csv", "delimiter": ";"})
    same = load(engine, tmp_path, explicit, "run3")
    assert (same.units_loaded, same.units_skipped) == (0, 1)
    # and a different reading of a loaded file is read again, even with on_change: error
    header = make_source({"type": "csv", "path": "data/crm.csv", "header": False,
                          "on_change": "error"})
    assert load(engine, tmp_path, header, "run4").rows_loaded == 3
    assert engine.count("raw_crm") == 3


def test_reload_reads_unchanged_files_again(engine, tmp_path):
    write(tmp_path, "data/a.csv", SEMICOLON)
    write(tmp_path, "data/b.csv", b"id;email;city\n3;c@x.fr;Nice\n")
    source = make_source({"type": "csv", "path": "data/*.csv"})
    load(engine, tmp_path, source, "run1")
    before = set(ledger_ids(engine))
    result = load_source(engine, tmp_path, source, "run2", SilentReporter(), reload=True)
    assert (result.units_loaded, result.units_replaced, result.rows_loaded) == (2, 2, 3)
    rows = rows_of(engine, "raw_crm")
    assert sorted(r["id"] for r in rows) == ["1", "2", "3"]
    assert not {r["_load_id"] for r in rows} & before
    assert sum("--reload" in m for m in result.messages) == 2


def test_a_ledger_without_read_settings_keeps_its_loads(duckdb_engine, tmp_path):
    """Warehouses written before `read_as` existed: the column is added, how their files
    were read is unknown, so they are kept until they change (or `--reload`)."""
    write(tmp_path, "data/crm.csv", SEMICOLON)
    source = make_source({"type": "csv", "path": "data/crm.csv"})
    load(duckdb_engine, tmp_path, source, "run1")
    duckdb_engine.drop_columns(LOADS_TABLE, ["read_as"])
    result = load(duckdb_engine, tmp_path, source, "run2")
    assert (result.units_loaded, result.units_skipped) == (0, 1)
    assert "read_as" in duckdb_engine.table(LOADS_TABLE).columns
    assert duckdb_engine.count("raw_crm") == 2


def ledger_ids(engine) -> list[str]:
    t = engine.table(LOADS_TABLE)
    return [r["load_id"] for r in engine.to_arrow(t.order_by("load_id")).to_pylist()]
