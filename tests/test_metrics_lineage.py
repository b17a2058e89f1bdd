"""Lineage derived from the compiled SQL, through the entity views down to stg tables and
source columns; and the glossary built on it. DuckDB and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from metrics_fixtures import CUSTOMERS, ORDERS, write_project
from passerelle.engines.base import Engine
from passerelle.metrics import (
    ProjectMetrics,
    glossary,
    lineage,
    load_metrics,
    query,
    source_lineage,
)
from passerelle.project.models import SourceConfig


@pytest.fixture
def pm(tmp_path: Path) -> ProjectMetrics:
    return load_metrics(write_project(tmp_path))


@pytest.fixture
def views(engine: Engine) -> Engine:
    """``orders`` as the pipeline builds it: a UNION ALL view over two staged sources."""
    engine.con.create_table("stg_shop", obj=ORDERS.slice(0, 4))
    engine.con.create_table("stg_till", obj=ORDERS.slice(4))
    engine.con.create_table("stg_crm", obj=CUSTOMERS)
    shop, till = engine.table("stg_shop"), engine.table("stg_till")
    engine.con.create_view("orders", shop.union(till, distinct=False))
    engine.con.create_view("customer_records", engine.table("stg_crm"))
    return engine


def test_lineage_goes_through_the_view_to_staged_tables(views: Engine, pm: ProjectMetrics) -> None:
    assert lineage(views, pm, "revenue") == [("stg_shop", "amount"), ("stg_till", "amount")]
    # the view really answers: 380 as with the plain table
    assert float(query(views, pm, ["revenue"]).to_pylist()[0]["revenue"]) == 380.0


def test_lineage_of_ratio_derived_and_expressions(views: Engine, pm: ProjectMetrics) -> None:
    # aov = sum(amount) / count(order_id)
    assert lineage(views, pm, "aov") == [("stg_shop", "amount"), ("stg_shop", "order_id"),
                                         ("stg_till", "amount"), ("stg_till", "order_id")]
    # refunds: case when status = 'refunded' then amount else 0 end
    expected = [("stg_shop", "amount"), ("stg_shop", "status"), ("stg_till", "amount"),
                ("stg_till", "status")]
    assert lineage(views, pm, "refunds") == expected
    assert lineage(views, pm, "net_revenue") == expected  # revenue - refunds
    # a synonym names the same metric
    assert lineage(views, pm, "chiffre d'affaires") == lineage(views, pm, "revenue")


def test_source_lineage_reaches_the_source_columns(views: Engine, pm: ProjectMetrics) -> None:
    def source(name: str, amount: str) -> SourceConfig:
        return SourceConfig.model_validate({
            "name": name, "entity": "orders",
            "connector": {"type": "csv", "path": f"data/{name}.csv"},
            "columns": {"order_id": "id", "ordered_at": "date", "amount": amount}})

    sources = {"shop": source("shop", "total_ttc"), "till": source("till", "montant")}
    assert source_lineage(views, pm, "revenue", sources) == [
        {"table": "stg_shop", "column": "amount", "source": "shop", "source_column": "total_ttc"},
        {"table": "stg_till", "column": "amount", "source": "till", "source_column": "montant"},
    ]


def test_glossary(views: Engine, pm: ProjectMetrics) -> None:
    entries = {e["name"]: e for e in glossary(pm, views)}
    revenue = entries["revenue"]
    assert revenue["kind"] == "metric" and revenue["status"] == "approved"
    assert revenue["owner"] == "finance@example.fr"
    assert revenue["definition"].startswith("Chiffre d'affaires TTC")
    assert revenue["synonyms"] == ["CA", "chiffre d'affaires"]
    assert revenue["used_by"] == ["metric aov", "metric net_revenue"]
    assert revenue["lineage"] == ["stg_shop.amount", "stg_till.amount"]
    assert (revenue["file"], revenue["line"]) == ("metrics/metrics.yml", 2)
    assert entries["net_revenue"]["depends_on"] == ["revenue", "refunds"]
    assert entries["orders_per_visitor"]["measures"] == ["order_count", "visitors_measure"]
    # events is not in this warehouse: the entry says why instead of failing the glossary
    assert entries["events"]["lineage"] == []
    assert "not in the warehouse" in entries["events"]["lineage_error"]


def test_glossary_without_engine_lists_every_metric(pm: ProjectMetrics) -> None:
    entries = glossary(pm)
    assert [e["name"] for e in entries] == sorted(pm.metrics)
    assert all("lineage" not in e for e in entries)
