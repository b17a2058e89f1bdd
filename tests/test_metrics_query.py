"""Metric queries against hand-computed answers, on DuckDB and PostgreSQL.

The rows are in ``metrics_fixtures`` (orders O1..O7, customers C1..C4, lines, events);
each expected value below is worked out by hand from them in the comment beside it.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from metrics_fixtures import load_tables, write_project
from passerelle.engines.base import Engine
from passerelle.metrics import MetricsQueryError, ProjectMetrics, compile_sql, load_metrics, query


@pytest.fixture
def pm(tmp_path: Path) -> ProjectMetrics:
    return load_metrics(write_project(tmp_path))


@pytest.fixture
def wh(engine: Engine) -> Engine:
    load_tables(engine)
    return engine


def rows(table) -> list[tuple]:
    """Result rows with decimals as floats rounded to 6 places (engines differ in types)."""
    def norm(v):
        if isinstance(v, (Decimal, float)):
            return round(float(v), 6)
        return v
    return [tuple(norm(v) for v in r.values()) for r in table.to_pylist()]


def test_simple_totals(wh: Engine, pm: ProjectMetrics) -> None:
    # revenue 100+50+30+80+40+60+20 = 380; 7 orders; buyers C1..C4 = 4; refunds O3+O6 = 90
    result = query(wh, pm, ["revenue", "orders", "buyers", "refunds"])
    assert result.column_names == ["revenue", "orders", "buyers", "refunds"]
    assert rows(result) == [(380.0, 7, 4, 90.0)]


def test_sum_of_a_condition_counts_the_rows_where_it_holds(wh: Engine,
                                                           pm: ProjectMetrics) -> None:
    # agg: sum_boolean over status = 'refunded': O3 and O6 (PostgreSQL has no boolean sum)
    assert rows(query(wh, pm, ["refunded_orders"])) == [(2,)]


def test_by_categorical_dimension(wh: Engine, pm: ProjectMetrics) -> None:
    # app: O4 80 (1 order, C1); store: O2 50 + O6 60 (2 orders, C2 only);
    # web: O1 100 + O3 30 + O5 40 + O7 20 = 190 (4 orders, C1 C3 C4)
    result = query(wh, pm, ["revenue", "orders", "buyers"], ["channel"])
    assert rows(result) == [("app", 80.0, 1, 1), ("store", 110.0, 2, 1), ("web", 190.0, 4, 3)]


def test_by_month(wh: Engine, pm: ProjectMetrics) -> None:
    # Jan: 100+50+30 = 180 (3); Feb: 80+40 = 120 (2); Mar: 60+20 = 80 (2)
    result = query(wh, pm, ["revenue", "orders"], ["metric_time"], grain="month")
    assert rows(result) == [(date(2024, 1, 1), 180.0, 3), (date(2024, 2, 1), 120.0, 2),
                            (date(2024, 3, 1), 80.0, 2)]
    same = query(wh, pm, ["revenue", "orders"], ["metric_time__month"])
    assert rows(same) == rows(result)
    assert same.column_names[0] == "metric_time__month"


def test_by_week_starts_on_monday(wh: Engine, pm: ProjectMetrics) -> None:
    # 2024-01-05 (Fri) -> Mon 01-01: O1+O2 = 150; 01-20 (Sat) -> 01-15: 30; 02-03 -> 01-29: 80;
    # 02-10 -> 02-05: 40; 03-01 (Fri) -> 02-26: 60; 03-15 -> 03-11: 20
    result = query(wh, pm, ["revenue"], ["metric_time__week"])
    assert rows(result) == [(date(2024, 1, 1), 150.0), (date(2024, 1, 15), 30.0),
                            (date(2024, 1, 29), 80.0), (date(2024, 2, 5), 40.0),
                            (date(2024, 2, 26), 60.0), (date(2024, 3, 11), 20.0)]


def test_where_through_a_join(wh: Engine, pm: ProjectMetrics) -> None:
    # country lives in customer_records, reached through the customer entity.
    # FR = C1, C2: O1 100 + O2 50 (Jan), O4 80 (Feb), O6 60 (Mar)
    result = query(wh, pm, ["revenue"], ["metric_time"], where="country = 'FR'", grain="month")
    assert rows(result) == [(date(2024, 1, 1), 150.0), (date(2024, 2, 1), 80.0),
                            (date(2024, 3, 1), 60.0)]
    # the same with the dbt spelling and a qualified name, by channel:
    # web O1 100; store O2 50 + O6 60 = 110; app O4 80
    result = query(wh, pm, ["revenue"], ["channel"],
                   where="{{ Dimension('customer__country') }} = 'FR' and channel <> 'app'")
    assert rows(result) == [("store", 110.0), ("web", 100.0)]


def test_group_by_joined_dimension_keeps_unknown_country(wh: Engine, pm: ProjectMetrics) -> None:
    # BE = C3: O3 30 + O7 20 = 50; FR = 290; C4 has no country: O5 40 under NULL
    result = query(wh, pm, ["revenue"], ["customer__country"], order_by=["-revenue"])
    assert rows(result) == [("FR", 290.0), ("BE", 50.0), (None, 40.0)]


def test_ratio_after_aggregation(wh: Engine, pm: ProjectMetrics) -> None:
    # aov = revenue / orders: total 380/7; web 190/4 = 47.5; store 110/2 = 55; app 80/1
    assert rows(query(wh, pm, ["aov"])) == [(round(380 / 7, 6),)]
    assert rows(query(wh, pm, ["aov"], ["channel"])) == [("app", 80.0), ("store", 55.0),
                                                        ("web", 47.5)]


def test_derived(wh: Engine, pm: ProjectMetrics) -> None:
    # net_revenue = revenue - refunds: Jan 180 - 30 (O3) = 150; Feb 120 - 0; Mar 80 - 60 (O6)
    result = query(wh, pm, ["net_revenue"], ["metric_time"], grain="month")
    assert rows(result) == [(date(2024, 1, 1), 150.0), (date(2024, 2, 1), 120.0),
                            (date(2024, 3, 1), 20.0)]


def test_filters_in_metric_definitions(wh: Engine, pm: ProjectMetrics) -> None:
    # paid_revenue (filter on status, dbt Jinja form): all but O3, O6 = 380 - 90 = 290
    # fr_revenue (filter through the customer join): O1 O2 O4 O6 = 290; by channel:
    # paid: app 80, store 50, web 100+40+20 = 160; fr: app 80, store 110, web 100
    assert rows(query(wh, pm, ["paid_revenue", "fr_revenue"])) == [(290.0, 290.0)]
    result = query(wh, pm, ["paid_revenue", "fr_revenue", "revenue"], ["channel"])
    assert rows(result) == [("app", 80.0, 80.0, 80.0), ("store", 50.0, 110.0, 110.0),
                            ("web", 160.0, 100.0, 190.0)]


def test_cumulative_running_total_by_month(wh: Engine, pm: ProjectMetrics) -> None:
    # 180, 180+120 = 300, 300+80 = 380
    result = query(wh, pm, ["revenue", "running_revenue"], ["metric_time"], grain="month")
    assert rows(result) == [(date(2024, 1, 1), 180.0, 180.0), (date(2024, 2, 1), 120.0, 300.0),
                            (date(2024, 3, 1), 80.0, 380.0)]


def test_cumulative_by_day_to_date_and_window(wh: Engine, pm: ProjectMetrics) -> None:
    # days with orders: 01-05 150, 01-20 30, 02-03 80, 02-10 40, 03-01 60, 03-15 20
    # month-to-date restarts each month: 150, 180 | 80, 120 | 60, 80
    # 14-day window (d-13..d): 01-20 sees only itself (01-05 is 15 days back): 30;
    # 02-10 sees 02-03 (7 days back): 80 + 40 = 120; 03-01 (02-17..03-01): 60
    result = query(wh, pm, ["revenue_mtd", "revenue_14d", "running_revenue"], ["metric_time"])
    assert rows(result) == [
        (date(2024, 1, 5), 150.0, 150.0, 150.0), (date(2024, 1, 20), 180.0, 30.0, 180.0),
        (date(2024, 2, 3), 80.0, 80.0, 260.0), (date(2024, 2, 10), 120.0, 120.0, 300.0),
        (date(2024, 3, 1), 60.0, 60.0, 360.0), (date(2024, 3, 15), 80.0, 20.0, 380.0),
    ]


def test_cumulative_partitions_by_other_dimensions(wh: Engine, pm: ProjectMetrics) -> None:
    # running revenue per channel by month: web Jan 130 (O1+O3), Feb 170 (+O5), Mar 190 (+O7)
    result = query(wh, pm, ["running_revenue"], ["channel", "metric_time"], grain="month",
                   where="channel = 'web'")
    assert rows(result) == [("web", date(2024, 1, 1), 130.0), ("web", date(2024, 2, 1), 170.0),
                            ("web", date(2024, 3, 1), 190.0)]


def test_metrics_from_two_models_with_null_keys(wh: Engine, pm: ProjectMetrics) -> None:
    # units per buyer's country: order_lines -> orders -> customers (two hops).
    # FR: O1 2+1, O2 1, O4 3 = 7; BE: O7 5. No line for O5 (C4, no country): units NULL.
    # The NULL country row of revenue (40) must meet the NULL of units, not duplicate.
    result = query(wh, pm, ["revenue", "units"], ["customer__country"])
    assert rows(result) == [("BE", 50.0, 5), ("FR", 290.0, 7), (None, 40.0, None)]


def test_ratio_across_models_by_month(wh: Engine, pm: ProjectMetrics) -> None:
    # visitors (distinct anonymous ids) Jan a1 a2 = 2, Feb a3 = 1, Mar none;
    # orders 3, 2, 2 -> orders_per_visitor 1.5, 2.0, NULL (no visitors in March)
    result = query(wh, pm, ["orders_per_visitor", "visitors", "orders"], ["metric_time__month"])
    assert rows(result) == [(date(2024, 1, 1), 1.5, 2, 3), (date(2024, 2, 1), 2.0, 1, 2),
                            (date(2024, 3, 1), None, None, 2)]


def test_events_joined_to_customers(wh: Engine, pm: ProjectMetrics) -> None:
    # E1 E2 by C1 (FR), E4 by C3 (BE), E3 anonymous (NULL)
    result = query(wh, pm, ["events"], ["customer__country"])
    assert rows(result) == [("BE", 1), ("FR", 2), (None, 1)]


def test_synonyms_order_and_limit(wh: Engine, pm: ProjectMetrics) -> None:
    # "CA" is a synonym of revenue; top 2 channels by revenue: web 190, store 110
    result = query(wh, pm, ["CA"], ["channel"], order_by=["-revenue"], limit=2)
    assert result.column_names == ["channel", "revenue"]
    assert rows(result) == [("web", 190.0), ("store", 110.0)]


@pytest.mark.parametrize(("args", "message"), [
    ({"metrics": ["revenu"]}, "did you mean 'revenue'"),
    ({"metrics": ["revenue"], "group_by": ["colour"]}, "cannot be reached"),
    ({"metrics": ["units"], "group_by": ["metric_time"]}, "no aggregation time dimension"),
    ({"metrics": ["revenue"], "where": "1; drop table orders"}, "no ';'"),
    ({"metrics": ["revenue"], "where": "channel in (select channel from orders)"}, "subquer"),
    ({"metrics": ["revenue"], "where": "pg_sleep(10) is null"}, "pg_sleep() is not allowed"),
    ({"metrics": ["revenue"], "where": "revenue > 10"}, "is a metric"),
    ({"metrics": ["revenue"], "group_by": ["channel__month"]}, "categorical"),
    ({"metrics": ["revenue_14d"], "group_by": ["metric_time"], "grain": "month"},
     "cannot be shown by month"),
    ({"metrics": ["revenue"], "group_by": ["metric_time"], "grain": "hour"}, "grain 'hour'"),
])
def test_query_errors(wh: Engine, pm: ProjectMetrics, args: dict, message: str) -> None:
    with pytest.raises(MetricsQueryError) as info:
        query(wh, pm, **args)
    assert message in str(info.value)


def test_compile_sql_is_one_statement_with_quoted_user_literals(wh: Engine,
                                                                pm: ProjectMetrics) -> None:
    sql = compile_sql(wh, pm, ["aov"], ["customer__country"], where="country = 'F''R'")
    assert sql.lstrip().upper().startswith(("SELECT", "WITH"))
    assert "'F''R'" in sql  # the literal is rendered by the compiler, escaped
    assert rows(query(wh, pm, ["aov"], ["customer__country"], where="country = 'F''R'")) == []
