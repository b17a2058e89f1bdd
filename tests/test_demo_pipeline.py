"""`passerelle demo` end to end: generate, load, stage, check; the e-shop through MariaDB."""

from __future__ import annotations

import csv

import pytest

from conftest import MARIADB, copy_demo
from passerelle.demo.run import parse_mysql_url, run_demo
from passerelle.errors import PasserelleError


def test_demo_runs_end_to_end(shared_demo, tmp_path):
    outcome = shared_demo
    result = outcome.result
    assert result.ok, [e.reason for e in result.errors]
    assert set(result.stages) == {
        "crm_contacts", "eshop_customers", "eshop_orders", "eshop_order_lines",
        "loyalty_members", "store_tickets", "newsletter_signups", "web_events", "ad_spend",
        "campaign_sends"}
    assert all(c.passed for c in result.checks if c.severity == "error")
    # the planted bad till lines are in quarantine, with their reasons
    reasons = {(q["source"], q["reason"]): q["rows"] for q in result.quarantine}
    assert reasons[("store_tickets", "order_id: missing")] == 2
    assert reasons[("store_tickets", "csv_too_many_columns")] == 1
    # ground truth sits beside the project, never inside it
    truth = outcome.truth_dir
    assert truth.parent == outcome.project_dir.parent
    with open(truth / "records.csv", newline="") as f:
        records = list(csv.DictReader(f))
    assert {"source", "source_id", "true_person_id"} <= set(records[0])

    # every customer record staged is in the truth
    with outcome.project_dir.joinpath(".passerelle-demo").open() as f:
        assert "size=300" in f.read()
    import passerelle

    with passerelle.open(copy_demo(outcome, tmp_path / "demo").project_dir) as project:
        staged = project.engine.to_arrow(
            project.engine.table("customer_records").select("_source", "_record_id")).to_pylist()
        again = project.run()
    truth_keys = {(r["source"], r["source_id"]) for r in records}
    assert {(r["_source"], r["_record_id"]) for r in staged} <= truth_keys
    # a re-run loads nothing and re-stages nothing
    assert sum(r.rows_loaded for r in again.loads.values()) == 0
    assert set(again.unchanged) == set(result.stages)


def test_demo_traits_metrics_and_glossary(shared_demo):
    import passerelle
    from passerelle.metrics import query

    outcome = shared_demo
    traits = outcome.result.traits
    assert traits is not None and not traits.failed, traits.failed if traits else None
    assert traits.persons["total_spend"] > 0 and traits.persons["rfm"] > 0
    with passerelle.open(outcome.project_dir) as project:
        engine = project.engine
        orders = engine.table("orders")
        expected = {r["channel"]: round(float(r["s"]), 2) for r in engine.to_arrow(
            orders.group_by("channel").aggregate(s=orders.amount.sum())).to_pylist()}
        answer = query(engine, project.metrics(), ["revenue"], group_by=["channel"])
        assert {r["channel"]: round(float(r["revenue"]), 2)
                for r in answer.to_pylist()} == expected
        entries = {e["name"]: e for e in project.glossary()}
    assert entries["revenue"]["kind"] == "metric" and entries["revenue"]["owner"] == "Finance"
    assert "stg_store_tickets.amount" in entries["revenue"]["lineage"]
    assert entries["clv"]["kind"] == "trait" and entries["clv"]["status"] == "ok"
    assert "stg_eshop_orders.amount" in entries["clv"]["lineage"]
    # where each trait is used: the demo's best_customers segment reads these two
    assert entries["orders_90d"]["used_by"] == ["segment best_customers"]
    assert "segment best_customers" in entries["total_spend"]["used_by"]
    assert entries["clv"]["used_by"] == []


def test_demo_refuses_a_folder_that_is_not_a_demo(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(PasserelleError, match="is not a Passerelle demo"):
        run_demo(tmp_path / "mine", size=100)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_mysql_url_parsing():
    assert parse_mysql_url("mysql://root@127.0.0.1:3306/shop") == {
        "host": "127.0.0.1", "port": 3306, "user": "root", "password": "", "database": "shop"}
    assert parse_mysql_url("mariadb://u:p%40ss@db/x")["password"] == "p@ss"
    with pytest.raises(PasserelleError, match="not a MySQL/MariaDB URL"):
        parse_mysql_url("postgres://x/y")


@pytest.mark.mariadb
def test_demo_with_the_eshop_in_mariadb(tmp_path, mariadb_database):
    url = f"mysql://{MARIADB['user']}@{MARIADB['host']}:{MARIADB['port']}/{mariadb_database}"
    outcome = run_demo(tmp_path / "demo", size=200, seed=3, eshop_mysql=url)
    result = outcome.result
    assert result.ok, [e.reason for e in result.errors]
    for name in ("eshop_customers", "eshop_orders", "eshop_order_lines"):
        assert result.loads[name].rows_loaded > 0
        assert result.stages[name].rows_staged == result.loads[name].rows_loaded
    import passerelle

    with passerelle.open(outcome.project_dir) as project:
        assert project.sources["eshop_orders"].connector.type == "mysql"
        files = project.engine.to_arrow(
            project.engine.table("raw_eshop_orders")._source_file.name("f")
            .as_table().distinct()).to_pylist()
        customers = project.engine.table("stg_eshop_customers")
        staged = project.engine.to_arrow(customers.aggregate(
            n=customers.count(), postcodes=customers.postcode.count(),
            phones=customers.phone.count(),
            file=customers._source_file.max())).to_pylist()[0]
    assert files == [{"f": "mysql:ps_orders"}]
    # the accounts came through the view, with their delivery address and phone
    assert staged["file"] == "mysql:passerelle_customers"
    assert 0.8 * staged["n"] < staged["postcodes"] < staged["n"]
    assert 0 < staged["phones"] < staged["postcodes"]
