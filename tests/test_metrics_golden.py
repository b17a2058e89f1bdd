"""Golden test: our compiler against MetricFlow, the reference implementation of the spec.

The same metric files are turned into a MetricFlow manifest (``model`` becomes
``node_relation``, filters get MetricFlow's Jinja references, glossary fields are dropped);
MetricFlow compiles each query to DuckDB SQL, which runs on the same warehouse as ours.
The two answers must agree row for row.

Known, documented difference: a cumulative metric at a grain coarser than its time
dimension's is the value at the *end* of each period here, MetricFlow's default is the
start (``period_agg: first``); those are compared at day grain only.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlglot.expressions as sge
import yaml
from metricflow.engine.metricflow_engine import MetricFlowEngine, MetricFlowQueryRequest
from metricflow.protocols.sql_client import SqlEngine
from metricflow.sql.render.duckdb_renderer import DuckDbSqlPlanRenderer
from metricflow_semantic_interfaces.parsing.dir_to_model import (
    parse_yaml_files_to_validation_ready_semantic_manifest,
)
from metricflow_semantic_interfaces.parsing.objects import YamlConfigFile
from metricflow_semantics.model.semantic_manifest_lookup import SemanticManifestLookup

from metrics_fixtures import load_tables, write_project
from passerelle.engines.duckdb import DuckDBEngine
from passerelle.metrics import ProjectMetrics, load_metrics, query
from passerelle.metrics.expr import parse_expression

GLOSSARY_KEYS = ("owner", "definition", "synonyms", "status")


class _RenderOnly:
    """What MetricFlowEngine.explain needs from a SQL client: the dialect's renderer."""

    sql_engine_type = SqlEngine.DUCKDB
    sql_plan_renderer = DuckDbSqlPlanRenderer()

    def render_bind_parameter_key(self, key: str) -> str:
        return f"${key}"

    def close(self) -> None:
        return None


def _mf_filter(pm: ProjectMetrics, model: str, time_dim: str | None, text: str) -> str:
    """Our filter with each reference spelled as MetricFlow's ``{{ Dimension('e__d') }}``."""
    tree = parse_expression(text)
    for col in list(tree.find_all(sge.Column)):
        r = pm.resolve(model, col.name, time_dim)
        owner = pm.semantic_models[r.model].primary_entity
        assert owner is not None
        col.replace(sge.var(f"{{{{ Dimension('{owner.name}__{col.name.split('__')[-1]}') }}}}"))
    return tree.sql(dialect="duckdb")


def manifest(pm: ProjectMetrics) -> str:
    docs: list[dict[str, Any]] = []
    # MetricFlow wants an aggregation time for every measure: leave out models without one
    skipped = {sm.name for sm in pm.semantic_models.values()
               if sm.measures and not sm.defaults.agg_time_dimension}
    for sm in pm.semantic_models.values():
        if sm.name in skipped:
            continue
        raw = sm.model_dump(exclude_none=True, exclude={"model"})
        raw["node_relation"] = {"schema_name": "main", "alias": sm.model}
        for m in raw.get("measures", []):
            m.pop("create_metric", None)
        for d in raw.get("dimensions", []):
            if d["type"] == "time":
                d.setdefault("type_params", {"time_granularity": "day"})
        docs.append({"semantic_model": raw})
    for metric in pm.metrics.values():
        if any(pm.measure(m)[0].name in skipped for m in pm.measures_of(metric)):  # type: ignore[index]
            continue
        raw = metric.model_dump(exclude_none=True, exclude=set(GLOSSARY_KEYS))
        p = metric.type_params  # MetricFlow's own parser wants metric inputs as mappings
        for key, value in (("numerator", p.numerator_input), ("denominator", p.denominator_input)):
            if value is not None:
                raw["type_params"][key] = value.model_dump(exclude_none=True)
        if p.metrics:
            raw["type_params"]["metrics"] = [i.model_dump(exclude_none=True)
                                             for i in p.metric_inputs]
        if metric.filter:
            measure = pm.measures_of(metric)[0]
            sm, m = pm.measure(measure)  # type: ignore[misc]
            raw["filter"] = _mf_filter(pm, sm.name, m.agg_time_dimension
                                       or sm.defaults.agg_time_dimension, metric.filter)
        docs.append({"metric": raw})
    docs.append({"project_configuration": {"time_spines": [{
        "node_relation": {"schema_name": "main", "alias": "mf_time_spine"},
        "primary_column": {"name": "ds", "time_granularity": "day"}}]}})
    return "\n---\n".join(yaml.safe_dump(d, sort_keys=False) for d in docs)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("golden")
    pm = load_metrics(write_project(root))
    engine = DuckDBEngine(Path(root) / "warehouse.duckdb")
    load_tables(engine)
    raw = engine.con.con
    raw.execute("CREATE TABLE mf_time_spine AS SELECT CAST(d AS DATE) AS ds FROM "
                "range(DATE '2023-12-01', DATE '2024-04-30', INTERVAL 1 DAY) t(d)").fetchall()
    built = parse_yaml_files_to_validation_ready_semantic_manifest(
        [YamlConfigFile(filepath="manifest.yml", contents=manifest(pm))])
    mf = MetricFlowEngine(SemanticManifestLookup(built.semantic_manifest), _RenderOnly())
    yield pm, engine, mf
    engine.close()


def _norm(v: Any) -> Any:
    if isinstance(v, (Decimal, float, int)) and not isinstance(v, bool):
        return round(float(v), 6)
    if isinstance(v, datetime):
        return v.date()
    return v


def _mf_rows(engine: DuckDBEngine, mf: MetricFlowEngine, metrics: list[str],
             group_by: list[str], where: str | None) -> list[tuple]:
    request = MetricFlowQueryRequest.create(
        metric_names=metrics, group_by_names=group_by,
        where_constraints=[where] if where else None)
    sql = mf.explain(request).sql_statement.sql
    cursor = engine.con.con.execute(sql)
    names = [d[0] for d in cursor.description]
    rows = [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]
    ordered = [tuple(_norm(r[c]) for c in [*group_by, *metrics]) for r in rows]
    return sorted(ordered, key=lambda t: tuple((x is None, x) for x in t))


def _our_rows(pm: ProjectMetrics, engine: DuckDBEngine, metrics: list[str],
              group_by: list[str], where: str | None) -> list[tuple]:
    result = query(engine, pm, metrics, group_by, where=where)
    rows = [tuple(_norm(v) for v in r.values()) for r in result.to_pylist()]
    return sorted(rows, key=lambda t: tuple((x is None, x) for x in t))


CASES = [
    (["revenue", "orders", "buyers", "refunds"], ["order__channel"], None),
    (["revenue", "orders", "buyers", "refunds"], [], None),
    (["aov"], ["metric_time__month"], None),
    (["net_revenue"], ["metric_time__week"], None),
    (["revenue"], ["metric_time__month"], "{{ Dimension('customer__country') }} = 'FR'"),
    (["revenue", "aov"], ["customer__country"], None),
    (["paid_revenue", "fr_revenue"], ["order__channel"], None),
    (["orders_per_visitor", "visitors", "orders"], ["metric_time__month"], None),
    (["events", "visitors"], ["customer__country", "metric_time__month"], None),
]


@pytest.mark.parametrize(("metrics", "group_by", "where"), CASES)
def test_same_answers_as_metricflow(setup: Any, metrics: list[str], group_by: list[str],
                                    where: str | None) -> None:
    pm, engine, mf = setup
    ours = _our_rows(pm, engine, metrics, group_by, where)
    assert ours, "the case must return rows to compare"
    assert ours == _mf_rows(engine, mf, metrics, group_by, where)


def test_cumulative_by_day_matches_metricflow_on_days_with_orders(setup: Any) -> None:
    pm, engine, mf = setup
    metrics = ["running_revenue", "revenue_mtd", "revenue_14d"]
    ours = _our_rows(pm, engine, metrics, ["metric_time__day"], None)
    theirs = {r[0]: r for r in _mf_rows(engine, mf, metrics, ["metric_time__day"], None)}
    assert [r[0] for r in ours] == [date(2024, 1, 5), date(2024, 1, 20), date(2024, 2, 3),
                                    date(2024, 2, 10), date(2024, 3, 1), date(2024, 3, 15)]
    # MetricFlow also has a row for every spine day; on the days we report, values agree
    assert ours == [theirs[r[0]] for r in ours]
