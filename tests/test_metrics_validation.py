"""Problems in metrics/*.yml are reported with the file, the line and a hint."""

from __future__ import annotations

from pathlib import Path

import pytest

from metrics_fixtures import SEMANTIC_MODELS, write_project
from passerelle.errors import Problems, ProjectError
from passerelle.metrics import load_metrics, read_metrics


def problems_of(tmp_path: Path, metrics: str, semantic: str = SEMANTIC_MODELS) -> list[str]:
    write_project(tmp_path, semantic, metrics)
    problems = Problems()
    read_metrics(tmp_path, problems)
    return [str(p) for p in problems.errors]


def test_the_fixture_project_is_valid(tmp_path: Path) -> None:
    pm = load_metrics(write_project(tmp_path))
    assert len(pm.metrics) == 16 and len(pm.semantic_models) == 4


def test_unknown_measure(tmp_path: Path) -> None:
    found = problems_of(tmp_path, """\
metrics:
  - name: revenue
    type: simple
    type_params:
      measure: revenu
""")
    assert found == ["metrics/metrics.yml:5: metric 'revenue': unknown measure 'revenu' "
                     "(hint: did you mean 'revenue'?)"]


def test_unknown_metric_in_derived_and_expr_outside_inputs(tmp_path: Path) -> None:
    found = problems_of(tmp_path, """\
metrics:
  - name: revenue
    type: simple
    type_params: {measure: revenue}
  - name: net
    type: derived
    type_params:
      expr: revenue - refunds
      metrics:
        - revenue
        - refundz
""")
    assert "metrics/metrics.yml:11: metric 'net': unknown metric 'refundz'" in found[0]
    assert found[1].startswith("metrics/metrics.yml:8: metric 'net' expr: 'refunds' is not a "
                               "column of the model")
    assert len(found) == 2


def test_cycle_in_derived_metrics(tmp_path: Path) -> None:
    found = problems_of(tmp_path, """\
metrics:
  - name: a
    type: derived
    type_params: {expr: b + 1, metrics: [b]}
  - name: b
    type: derived
    type_params: {expr: c * 2, metrics: [c]}
  - name: c
    type: ratio
    type_params: {numerator: a, denominator: b}
""")
    # c uses both a and b, so b -> c -> b is a second loop, reported too
    assert found == ["metrics/metrics.yml:10: metrics depend on each other in a cycle: "
                     "a -> b -> c -> a (hint: a derived or ratio metric cannot use itself, "
                     "even indirectly)",
                     "metrics/metrics.yml:10: metrics depend on each other in a cycle: "
                     "b -> c -> b (hint: a derived or ratio metric cannot use itself, "
                     "even indirectly)"]


def test_dimension_not_joinable(tmp_path: Path) -> None:
    # order_lines reaches orders and customers, never events
    found = problems_of(tmp_path, """\
metrics:
  - name: web_units
    type: simple
    type_params: {measure: units}
    filter: "event_type = 'page'"
""")
    assert len(found) == 1
    assert found[0].startswith("metrics/metrics.yml:5: metric 'web_units' filter: dimension "
                               "'event_type' cannot be reached from semantic model "
                               "'order_lines'")
    assert "customer__country" in found[0]  # the hint lists what is reachable


@pytest.mark.parametrize(("expr", "why"), [
    ("1; drop table x", "one expression only (no ';')"),
    ("channel in (select channel from orders)", "subqueries are not allowed"),
    ("read_csv('/etc/passwd') is not null", "function read_csv() is not allowed"),
    ("channel = ", "it does not parse"),
])
def test_unsafe_filters(tmp_path: Path, expr: str, why: str) -> None:
    found = problems_of(tmp_path, f"""\
metrics:
  - name: revenue
    type: simple
    type_params: {{measure: revenue}}
    filter: "{expr}"
""")
    assert len(found) == 1
    assert found[0].startswith(f"metrics/metrics.yml:5: metric 'revenue' filter: expression "
                               f"'{expr}' is not allowed: {why}")


def test_semantic_model_expressions_are_checked(tmp_path: Path) -> None:
    semantic = """\
semantic_models:
  - name: orders
    model: orders
    defaults:
      agg_time_dimension: ordered_on
    entities:
      - {name: order, type: primary, expr: order_id}
    measures:
      - name: revenue
        agg: sum
        expr: amout
      - name: sneaky
        agg: sum
        expr: (select max(amount) from orders)
    dimensions:
      - {name: ordered_at, type: time}
"""
    found = problems_of(tmp_path, "metrics: []\n", semantic)
    assert ("metrics/semantic.yml:11: measure 'revenue': 'amout' is not a column of the model "
            "(hint: did you mean 'amount'?)") in found
    assert any(p.startswith("metrics/semantic.yml:14: measure 'sneaky': expression") and
               "subqueries are not allowed" in p for p in found)
    assert ("metrics/semantic.yml:5: 'ordered_on' is not a time dimension of 'orders' "
            "(hint: did you mean 'ordered_at'?)") in found
    assert len(found) == 3


def test_strict_keys_and_shapes(tmp_path: Path) -> None:
    found = problems_of(tmp_path, """\
metrics:
  - name: revenue
    type: simple
    type_params: {measure: revenue}
    onwer: finance
  - name: aov
    type: ratio
    type_params: {numerator: revenue}
  - name: bad_window
    type: cumulative
    type_params: {measure: revenue, window: 2 fortnights}
""")
    assert found[0].startswith("metrics/metrics.yml:5: unknown key 'metrics.0.onwer'")
    assert any(p.startswith("metrics/metrics.yml:6: metrics.1: a ratio metric needs "
                            "type_params.denominator") for p in found), found
    assert any(p.startswith("metrics/metrics.yml:11:") and "2 fortnights" in p for p in found)


def test_names_used_twice_and_cumulative_of_distinct(tmp_path: Path) -> None:
    found = problems_of(tmp_path, """\
metrics:
  - name: revenue
    type: simple
    type_params: {measure: revenue}
  - name: revenue
    type: simple
    type_params: {measure: order_count}
  - name: running_buyers
    type: cumulative
    type_params: {measure: buyers}
""")
    assert found[0] == ("metrics/metrics.yml:5: metric name 'revenue' is used twice "
                        "(hint: first defined in metrics/metrics.yml:2)")
    assert found[1].startswith("metrics/metrics.yml:10: cumulative metric 'running_buyers': "
                               "a running count_distinct")


def test_load_metrics_raises_project_error(tmp_path: Path) -> None:
    write_project(tmp_path, SEMANTIC_MODELS, "metrics:\n  - name: x\n    type: simple\n"
                  "    type_params: {measure: nope}\n")
    with pytest.raises(ProjectError) as info:
        load_metrics(tmp_path)
    assert "metrics/metrics.yml:4" in str(info.value)


def test_dbt_ref_and_jinja_filters_are_accepted(tmp_path: Path) -> None:
    pm = load_metrics(write_project(tmp_path))
    assert pm.semantic_models["orders"].model == "orders"  # from ref('orders')
    assert pm.metrics["paid_revenue"].filter.startswith("{{ Dimension(")


def test_the_example_in_the_docs_loads_and_answers(tmp_path: Path, duckdb_engine) -> None:
    import re

    from metrics_fixtures import load_tables
    from passerelle.metrics import query

    doc = (Path(__file__).resolve().parents[1] / "docs" / "metrics.md").read_text("utf-8")
    block = re.findall(r"```yaml\n(.*?)```", doc, flags=re.S)[0]
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "sales.yml").write_text(block, encoding="utf-8")
    pm = load_metrics(tmp_path)
    assert sorted(pm.metrics) == ["aov", "net_revenue", "orders", "paid_revenue", "refunds",
                                  "revenue", "revenue_28d", "revenue_mtd"]
    load_tables(duckdb_engine)
    # the fixture rows: FR revenue 290 over 4 orders; net = 290 - O6 60 refunded = 230
    result = query(duckdb_engine, pm, ["revenue", "aov", "net_revenue"],
                   where="country = 'FR'").to_pylist()
    assert [(float(r["revenue"]), r["aov"], float(r["net_revenue"])) for r in result] == [
        (290.0, 72.5, 230.0)]
