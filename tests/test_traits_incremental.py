"""Crash-safe publication of ``traits`` and skipping traits whose inputs did not change, on
DuckDB and PostgreSQL (the shop of test_traits_compute, plus a hand-written load ledger)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import datetime, timedelta

import pyarrow as pa
import pytest

from passerelle.engines.duckdb import DuckDBEngine
from passerelle.sources.bookkeeping import LOADS_SCHEMA, LOADS_TABLE
from passerelle.traits import TRAITS, TRAITS_HISTORY, compute_traits, store
from test_traits_compute import NOW, ORDERS, SOURCES, agg, builtin, order, shop  # noqa: F401
from traits_helpers import put_entity, put_person_map, rows_of

TRAITS_USED = [
    agg("orders_90d", "count", window_days=90),
    agg("total_spend", "sum", "amount"),
    builtin("favourite_channel", "favourite_channel"),
    builtin("days_since_last_visit", "days_since_last_visit", history=False),
]
NAMES = [t.name for t in TRAITS_USED]
PEOPLE = [("crm", "C1", "P1"), ("shop", "S1", "P1"), ("crm", "C2", "P2"),
          ("crm", "C3", "P3"), ("crm", "C4", "P4")]


def record_load(engine, source: str, load_id: str) -> None:
    """A committed load in the ledger, as the loader writes it."""
    row = {name: None for name in LOADS_SCHEMA.names}
    row.update(load_id=load_id, run_id="L", source=source, rows=1,
               started_at=datetime(2024, 1, 1), finished_at=datetime(2024, 1, 1))
    table = pa.Table.from_pylist([row], schema=LOADS_SCHEMA.to_pyarrow())
    engine.append_arrow(LOADS_TABLE, table.to_reader())


@pytest.fixture
def ledger_future(shop):  # noqa: F811
    """The shop as the pipeline leaves it: every source loaded once (O8 and E4 are dated
    after NOW)."""
    for name in SOURCES:
        record_load(shop, name, f"{name}-1")
    return shop


@pytest.fixture
def ledger(ledger_future):
    """The same without rows dated after NOW."""
    for name, column in (("orders", "ordered_at"), ("events", "timestamp")):
        table = ledger_future.table(name)
        ledger_future.replace_table(f"{name}_now", table.filter(table[column] <= NOW))
        ledger_future.drop(name)
        ledger_future.rename(f"{name}_now", name)
    return ledger_future


def run_ids(engine) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    values, runs = engine.table(TRAITS), engine.table(store.TRAIT_RUNS)
    named = values.join(runs, values.run == runs.run).select("trait", "run_id")
    for r in engine.to_arrow(named).to_pylist():
        out.setdefault(r["trait"], set()).add(r["run_id"])
    return out


# ------------------------------------------------------------------------ atomic publish
def test_a_failure_during_the_swap_leaves_the_previous_traits(shop, monkeypatch):  # noqa: F811
    compute_traits(shop, TRAITS_USED, SOURCES, "R1", NOW)
    before = rows_of(shop)
    history = shop.count(TRAITS_HISTORY)
    calls = []
    real_rename = shop.rename

    def rename(old: str, new: str) -> None:
        calls.append((old, new))
        if len(calls) == 2:  # traits is already the backup: the worst moment to fail
            raise RuntimeError("power cut")
        real_rename(old, new)

    monkeypatch.setattr(shop, "rename", rename)
    put_entity(shop, "orders", "orders", [o for o in ORDERS if o["order_id"] != "O1"])
    with pytest.raises(RuntimeError, match="power cut"):
        compute_traits(shop, TRAITS_USED, SOURCES, "R2", NOW + timedelta(days=1))
    assert calls == [(TRAITS, store.TRAITS_BACKUP), (store.TRAITS_NEXT, TRAITS)]
    assert rows_of(shop) == before  # rolled back: the old traits, under their own name
    assert shop.count(TRAITS_HISTORY) == history  # and the history did not move either
    assert not shop.exists(store.TRAITS_BACKUP)
    monkeypatch.undo()
    again = compute_traits(shop, TRAITS_USED, SOURCES, "R2", NOW + timedelta(days=1))
    assert again.history_rows == 2  # P1: orders_90d 2 -> 1, total_spend 180 -> 80
    assert rows_of(shop, trait="total_spend")[("P1", "total_spend")] == 80


def test_a_killed_process_mid_swap_leaves_traits_readable(tmp_path):
    """kill -9 between the two renames: DuckDB's log holds no commit, so reopening the file
    shows the previous traits."""
    path = tmp_path / "w.duckdb"
    engine = DuckDBEngine(path)
    put_person_map(engine, PEOPLE)
    put_entity(engine, "orders", "orders", ORDERS)
    compute_traits(engine, TRAITS_USED[1:2], SOURCES, "R1", NOW)
    before = rows_of(engine)
    engine.close()
    script = textwrap.dedent(f"""
        import os
        from passerelle.engines.duckdb import DuckDBEngine
        from passerelle.traits import store
        e = DuckDBEngine({str(path)!r})
        e.con.create_table(store.TRAITS_NEXT, schema=store.TRAITS_SCHEMA)
        e.execute(__import__("sqlglot").expressions.Transaction())
        e.rename(store.TRAITS, store.TRAITS_BACKUP)
        os._exit(9)
    """)
    assert subprocess.run([sys.executable, "-c", script]).returncode == 9
    engine = DuckDBEngine(path)
    assert rows_of(engine) == before
    assert not engine.exists(store.TRAITS_BACKUP)
    engine.close()


def test_recover_restores_a_backup_left_by_an_engine_without_transactional_ddl(shop):  # noqa: F811
    compute_traits(shop, TRAITS_USED, SOURCES, "R1", NOW)
    before = rows_of(shop)
    shop.rename(TRAITS, store.TRAITS_BACKUP)  # what a crash outside a transaction leaves
    assert store.recover(shop) is True
    assert rows_of(shop) == before and not shop.exists(store.TRAITS_BACKUP)
    assert store.recover(shop) is False


# ------------------------------------------------------------------------ incremental
def test_without_a_load_ledger_every_trait_is_recomputed(shop):  # noqa: F811
    compute_traits(shop, TRAITS_USED, SOURCES, "R1", NOW)
    second = compute_traits(shop, TRAITS_USED, SOURCES, "R2", NOW)
    assert second.skipped == []
    assert run_ids(shop) == {n: {"R2"} for n in NAMES}


def test_nothing_changed_skips_every_trait(ledger):
    compute_traits(ledger, TRAITS_USED, SOURCES, "R1", NOW)
    defs = ledger.to_arrow(ledger.table("trait_definitions")).to_pylist()
    second = compute_traits(ledger, TRAITS_USED, SOURCES, "R2", NOW)
    assert second.skipped == NAMES
    assert second.history_rows == 0
    assert second.persons == {"orders_90d": 4, "total_spend": 3, "favourite_channel": 3,
                              "days_since_last_visit": 3}
    assert run_ids(ledger) == {n: {"R1"} for n in NAMES}  # values keep their computed time
    assert ledger.to_arrow(ledger.table("trait_definitions")).to_pylist() == defs
    forced = compute_traits(ledger, TRAITS_USED, SOURCES, "R3", NOW, full=True)
    assert forced.skipped == [] and run_ids(ledger) == {n: {"R3"} for n in NAMES}


def test_time_passing_recomputes_windowed_and_daily_traits_only(ledger):
    compute_traits(ledger, TRAITS_USED, SOURCES, "R1", NOW)
    later = compute_traits(ledger, TRAITS_USED, SOURCES, "R2", NOW + timedelta(hours=1))
    # the 90-day window moved; days since last visit is per day: same day, skipped
    assert later.skipped == ["total_spend", "favourite_channel", "days_since_last_visit"]
    next_day = compute_traits(ledger, TRAITS_USED, SOURCES, "R3", NOW + timedelta(days=1))
    assert next_day.skipped == ["total_spend", "favourite_channel"]
    assert run_ids(ledger) == {"orders_90d": {"R3"}, "total_spend": {"R1"},
                               "favourite_channel": {"R1"}, "days_since_last_visit": {"R3"}}
    status = {r["name"]: (r["run_id"], r["status"]) for r in
              ledger.to_arrow(ledger.table("trait_definitions")).to_pylist()}
    assert status["total_spend"] == ("R1", "ok")  # last computed by R1, still true
    assert status["orders_90d"] == ("R3", "ok")


def test_a_new_load_recomputes_the_traits_that_read_its_entity(ledger):
    compute_traits(ledger, TRAITS_USED, SOURCES, "R1", NOW)
    put_entity(ledger, "orders", "orders", [
        *ORDERS, order("O11", "crm_orders", datetime(2024, 6, 26), 5, "web", customer_id="C2")])
    record_load(ledger, "crm_orders", "crm_orders-2")
    second = compute_traits(ledger, TRAITS_USED, SOURCES, "R2", NOW)
    assert second.skipped == ["days_since_last_visit"]  # reads events only
    assert rows_of(ledger, trait="total_spend")[("P2", "total_spend")] == 25
    assert second.history_rows == 3  # P2: orders_90d, total_spend, favourite_channel (now web)


def test_person_map_and_definition_changes_recompute(ledger):
    compute_traits(ledger, TRAITS_USED, SOURCES, "R1", NOW)
    moved = [(s, r, "P3" if r == "C2" else p) for s, r, p in PEOPLE]  # C2 joins P3
    put_person_map(ledger, moved)
    pm = ledger.table("person_map")
    ledger.replace_table("person_map", pm.mutate(assigned_at=datetime(2024, 6, 30)))
    assert compute_traits(ledger, TRAITS_USED, SOURCES, "R2", NOW).skipped == []
    changed = [agg("orders_90d", "count", window_days=30), *TRAITS_USED[1:]]
    third = compute_traits(ledger, changed, SOURCES, "R3", NOW)
    assert third.skipped == ["total_spend", "favourite_channel", "days_since_last_visit"]
    assert rows_of(ledger, trait="orders_90d")[("P3", "orders_90d")] == 3  # O4, O9, O10


def test_rows_dated_after_now_make_whole_history_traits_time_bound(ledger_future):
    engine = ledger_future
    compute_traits(engine, TRAITS_USED, SOURCES, "R1", NOW)  # O8 is dated 2024-07-05
    later = compute_traits(engine, TRAITS_USED, SOURCES, "R2", NOW + timedelta(hours=1))
    assert later.skipped == []
    compute_traits(engine, TRAITS_USED, SOURCES, "R3", datetime(2024, 7, 6))
    assert rows_of(engine, trait="total_spend")[("P1", "total_spend")] == 180 + 999
