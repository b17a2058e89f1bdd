"""Append staging (``incremental: {staging: append}``): only the loads not staged yet are
staged, and the result is the table a full staging of every raw row gives, on DuckDB and
PostgreSQL, with files loaded by the real loader."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import passerelle
from passerelle.engines.base import Engine
from passerelle.project.models import SourceConfig
from passerelle.reporter import SilentReporter
from passerelle.sources import load_source
from passerelle.staging import StageResult, stage_source, statements
from passerelle.staging import incremental as inc
from staging_helpers import PROJECT

HEADER = "id,kind,at,channel\n"
FIRST = ("m1,track,2026-03-01 10:00,web\n"
         "m2,track,2026-03-01 11:00,app\n"
         "m3,page,not a time,web\n"          # quarantined: bad timestamp
         "m4,track,2026-03-01 12:00,web\n"
         "m4,track,2026-03-01 12:30,store\n"  # the same event twice in one file
         ",track,2026-03-01 13:00,web\n")     # no id: quarantined, no record to replace
SECOND = ("m5,track,2026-03-02 09:00,web\n"
          "m2,track,2026-03-02 09:30,email\n"  # a new version of a staged event
          "m3,page,2026-03-02 10:00,web\n"     # a readable version of a quarantined one
          "m1,track,not a time,web\n")         # an unreadable version of a staged one


def events_source(channel: str = "channel", staging: str = "append") -> SourceConfig:
    return SourceConfig.model_validate({
        "name": "ev", "entity": "events",
        "connector": {"type": "csv", "path": "data/ev_*.csv", "delimiter": ","},
        "incremental": {"staging": staging},
        "columns": {"message_id": "id", "type": "kind", "timestamp": "at",
                    "channel": channel}})


def write(root: Path, name: str, body: str) -> None:
    (root / "data").mkdir(exist_ok=True)
    (root / "data" / name).write_text(HEADER + body)


def load_and_stage(engine: Engine, root: Path, src: SourceConfig, **kw: Any) -> StageResult:
    load_source(engine, root, src, "run", SilentReporter())
    return stage_source(engine, src, PROJECT, SilentReporter(), "run", **kw)


def snapshot(engine: Engine) -> tuple[list[tuple], list[tuple]]:
    """The staged rows and the staging quarantine rows, in a stable order."""
    stg = engine.to_arrow(engine.table("stg_ev")).to_pylist()
    q = engine.table("quarantine")
    quarantined = engine.to_arrow(q.filter(q.stage == "stage").drop("quarantined_at")
                                  ).to_pylist()
    as_rows = lambda rows: sorted(tuple(sorted((k, str(v)) for k, v in r.items()))  # noqa: E731
                                  for r in rows)
    return as_rows(stg), as_rows(quarantined)


def clean_run(engine: Engine, src: SourceConfig) -> tuple[list[tuple], list[tuple]]:
    """What a full staging of the same raw rows gives."""
    stage_source(engine, src, PROJECT, SilentReporter(), "run", full=True)
    return snapshot(engine)


def test_append_stages_only_the_new_file_and_matches_a_full_staging(engine, tmp_path):
    src = events_source()
    write(tmp_path, "ev_1.csv", FIRST)
    first = load_and_stage(engine, tmp_path, src)
    assert (first.mode, first.mode_reason) == ("full", "first staging")
    assert (first.rows_staged, first.rows_quarantined) == (3, 2)

    write(tmp_path, "ev_2.csv", SECOND)
    second = load_and_stage(engine, tmp_path, src)
    assert (second.mode, second.mode_reason, second.loads_staged) == (
        "incremental", "1 new load(s)", 1)
    assert second.rows_in == 4  # the new file's rows, not the first file's
    got = snapshot(engine)
    staged = {dict(r)["message_id"]: dict(r) for r in got[0]}
    assert sorted(staged) == ["m2", "m3", "m4", "m5"]  # m1's new version is quarantined
    assert staged["m2"]["channel"] == "email" and staged["m4"]["channel"] == "store"
    reasons = sorted(dict(r)["reason"] for r in got[1])
    assert reasons == ["message_id: missing", "timestamp: not a valid timestamp"]
    assert got == clean_run(engine, src)

    again = stage_source(engine, src, PROJECT, SilentReporter(), "run")  # nothing new
    assert (again.mode, again.mode_reason, again.rows_in) == ("incremental", "no new load", 0)
    assert snapshot(engine) == got
    assert sorted(inc.staged_loads(engine, "ev")) == sorted(
        r["_load_id"] for r in engine.to_arrow(
            engine.table("raw_ev").select("_load_id").distinct()).to_pylist())


def test_the_staging_sql_is_compiled_once_per_rule(engine, tmp_path):
    src = events_source()
    write(tmp_path, "ev_1.csv", FIRST)
    load_and_stage(engine, tmp_path, src)
    write(tmp_path, "ev_2.csv", SECOND)
    load_and_stage(engine, tmp_path, src)
    # kept by the full staging (its rows repeat a record) and the incremental one (not)
    kept = engine.to_arrow(engine.table(statements.TABLE)).to_pylist()
    assert [r["source"] for r in kept] == ["ev", "ev"]

    write(tmp_path, "ev_3.csv", "m6,track,2026-03-03 09:00,app\n"
                                "m5,track,2026-03-03 09:30,store\n")
    third = load_and_stage(engine, tmp_path, src)
    assert (third.mode, third.rows_in, third.rows_staged) == ("incremental", 2, 2)
    # run again from the kept statement (not compiled again), with the same result as a
    # full staging of the three files
    assert engine.to_arrow(engine.table(statements.TABLE)).to_pylist() == kept
    got = snapshot(engine)
    assert {dict(r)["message_id"]: dict(r)["channel"] for r in got[0]}["m5"] == "store"
    assert got == clean_run(engine, src)

    renamed = events_source(channel={"value": "web"})  # a new rule: compiled again
    stage_source(engine, renamed, PROJECT, SilentReporter(), "run")
    write(tmp_path, "ev_4.csv", "m7,track,2026-03-04 09:00,app\n")
    assert load_and_stage(engine, tmp_path, renamed).mode == "incremental"
    now = engine.to_arrow(engine.table(statements.TABLE)).to_pylist()
    assert {r["rule"] for r in now} == {now[0]["rule"]} != {kept[0]["rule"]}
    assert {dict(r)["channel"] for r in snapshot(engine)[0]} == {"web"}


def test_rule_change_and_rewritten_file_rebuild(engine, tmp_path):
    write(tmp_path, "ev_1.csv", FIRST)
    load_and_stage(engine, tmp_path, events_source())

    renamed = events_source(channel={"value": "web"})  # a changed mapping
    changed = stage_source(engine, renamed, PROJECT, SilentReporter(), "run")
    assert changed.mode == "full" and "staging rule changed" in changed.mode_reason
    assert {dict(r)["channel"] for r in snapshot(engine)[0]} == {"web"}

    write(tmp_path, "ev_1.csv", FIRST.replace("2026-03-01 10:00", "2026-03-01 10:05"))
    rewritten = load_and_stage(engine, tmp_path, renamed)
    assert rewritten.mode == "full" and "were replaced" in rewritten.mode_reason
    assert rewritten.rows_in == 5
    got = snapshot(engine)
    assert got == clean_run(engine, renamed)

    (tmp_path / "data" / "ev_2.csv").write_text("id,kind,at,channel,other\n"
                                                "m9,track,2026-03-03 08:00,web,x\n")
    grown = load_and_stage(engine, tmp_path, renamed)  # a new raw column: the rule moves
    assert grown.mode == "full" and "staging rule changed" in grown.mode_reason


def test_a_run_killed_midway_leaves_a_state_the_rerun_completes(engine, tmp_path,
                                                                monkeypatch):
    src = events_source()
    write(tmp_path, "ev_1.csv", FIRST)
    load_and_stage(engine, tmp_path, src)
    before = snapshot(engine)
    write(tmp_path, "ev_2.csv", SECOND)
    load_source(engine, tmp_path, src, "run", SilentReporter())

    def crash(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("killed")

    # incremental: the rows went in, then the process died before the commit
    monkeypatch.setattr(inc, "remember", crash)
    with pytest.raises(RuntimeError, match="killed"):
        stage_source(engine, src, PROJECT, SilentReporter(), "run")
    assert snapshot(engine) == before  # the old state, whole
    monkeypatch.undo()
    resumed = stage_source(engine, src, PROJECT, SilentReporter(), "run")
    assert resumed.mode == "incremental"
    got = snapshot(engine)

    # full: killed between its steps; the re-run rebuilds
    monkeypatch.setattr(inc, "remember", crash)
    with pytest.raises(RuntimeError, match="killed"):
        stage_source(engine, src, PROJECT, SilentReporter(), "run", full=True)
    monkeypatch.undo()
    rebuilt = stage_source(engine, src, PROJECT, SilentReporter(), "run")
    assert rebuilt.mode == "full"
    assert snapshot(engine) == got == clean_run(engine, src)


def test_rebuild_sources_stage_everything_and_append_needs_new_loads(duckdb_engine,
                                                                     tmp_path):
    src = events_source(staging="rebuild")
    write(tmp_path, "ev_1.csv", FIRST)
    load_and_stage(duckdb_engine, tmp_path, src)
    write(tmp_path, "ev_2.csv", SECOND)
    second = load_and_stage(duckdb_engine, tmp_path, src)
    assert (second.mode, second.mode_reason, second.rows_in) == ("full", "", 6)
    # declaring it append-only keeps what the rebuild staged
    third = stage_source(duckdb_engine, events_source(), PROJECT, SilentReporter(), "run")
    assert (third.mode, third.mode_reason) == ("incremental", "no new load")

    with pytest.raises(ValueError, match=r"needs incremental\.key"):
        SourceConfig.model_validate({
            "name": "orders", "entity": "orders", "incremental": {"staging": "append"},
            "connector": {"type": "postgres", "database": "shop", "table": "orders"},
            "columns": {"order_id": "id", "ordered_at": "at", "amount": "amount"}})


def test_a_run_stages_the_new_file_and_later_steps_see_it(tmp_path):
    (tmp_path / "sources").mkdir()
    (tmp_path / "passerelle.yml").write_text("name: shop\n")
    (tmp_path / "sources" / "ev.yml").write_text(
        "entity: events\nconnector: {type: csv, path: data/ev_*.csv, delimiter: ','}\n"
        "incremental: {staging: append}\n"
        "columns: {message_id: id, type: kind, timestamp: at, channel: channel}\n")
    write(tmp_path, "ev_1.csv", FIRST)
    with passerelle.open(tmp_path) as proj:
        assert proj.run().ok
        write(tmp_path, "ev_2.csv", SECOND)
        result = proj.run()
        stage = next(s for s in result.steps if s.step == "stage")
        assert stage.message.startswith("incremental: 1 new load(s); 3 row(s) staged")
        events = proj.engine.table("events")
        assert sorted(proj.engine.to_arrow(events.select("message_id")).column(0)
                      .to_pylist()) == ["m2", "m3", "m4", "m5"]


def test_a_first_checkbox_in_new_rows_restages_the_blanks(duckdb_engine, tmp_path):
    src = SourceConfig.model_validate({
        "name": "crm", "entity": "customers", "incremental": {"staging": "append"},
        "connector": {"type": "csv", "path": "data/crm_*.csv", "delimiter": ","},
        "columns": {"customer_id": "id", "consent_email": "optin"}})
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "crm_1.csv").write_text("id,optin\nc1,oui\nc2,\n")
    load_and_stage(duckdb_engine, tmp_path, src)
    (tmp_path / "data" / "crm_2.csv").write_text("id,optin\nc3,X\n")
    second = load_and_stage(duckdb_engine, tmp_path, src)  # blanks now mean no
    assert second.mode == "full" and "staging rule changed" in second.mode_reason
    rows = duckdb_engine.to_arrow(duckdb_engine.table("stg_crm")).to_pylist()
    assert {r["customer_id"]: r["consent_email"] for r in rows} == {
        "c1": True, "c2": False, "c3": True}
