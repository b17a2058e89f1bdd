"""Small hand-made warehouse and metrics project for the metrics tests.

The answers the tests expect are computed by hand from these rows (see test comments).

customer_records          orders
 C1 FR                     O1 C1 2024-01-05 10:00 100.00 web   paid
 C2 FR                     O2 C2 2024-01-05 18:00  50.00 store paid
 C3 BE                     O3 C3 2024-01-20 09:00  30.00 web   refunded
 C4 (no country)           O4 C1 2024-02-03 12:00  80.00 app   paid
                           O5 C4 2024-02-10 15:00  40.00 web   paid
                           O6 C2 2024-03-01 08:00  60.00 store refunded
                           O7 C3 2024-03-15 11:00  20.00 web   paid
order_lines (order, line, category, quantity)   events (id, type, user, anon, day, channel)
 O1 1 shoes 2 | O1 2 socks 1 | O2 1 shoes 1      E1 track C1 a1 2024-01-05 web
 O4 1 bags 3  | O7 1 socks 5                     E2 page  C1 a1 2024-01-06 web
                                                 E3 page  -  a2 2024-01-07 social
                                                 E4 track C3 a3 2024-02-01 email
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pyarrow as pa

from passerelle.engines.base import Engine

CUSTOMERS = pa.table({
    "customer_id": ["C1", "C2", "C3", "C4"],
    "country": ["FR", "FR", "BE", None],
})
ORDERS = pa.table({
    "order_id": ["O1", "O2", "O3", "O4", "O5", "O6", "O7"],
    "customer_id": ["C1", "C2", "C3", "C1", "C4", "C2", "C3"],
    "ordered_at": pa.array([datetime(2024, 1, 5, 10), datetime(2024, 1, 5, 18),
                            datetime(2024, 1, 20, 9), datetime(2024, 2, 3, 12),
                            datetime(2024, 2, 10, 15), datetime(2024, 3, 1, 8),
                            datetime(2024, 3, 15, 11)], pa.timestamp("us")),
    "amount": pa.array([Decimal(x) for x in ("100.00", "50.00", "30.00", "80.00", "40.00",
                                             "60.00", "20.00")], pa.decimal128(12, 2)),
    "channel": ["web", "store", "web", "app", "web", "store", "web"],
    "status": ["paid", "paid", "refunded", "paid", "paid", "refunded", "paid"],
})
ORDER_LINES = pa.table({
    "order_id": ["O1", "O1", "O2", "O4", "O7"],
    "line_number": pa.array([1, 2, 1, 1, 1], pa.int64()),
    "category": ["shoes", "socks", "shoes", "bags", "socks"],
    "quantity": pa.array([2, 1, 1, 3, 5], pa.int64()),
})
EVENTS = pa.table({
    "message_id": ["E1", "E2", "E3", "E4"],
    "type": ["track", "page", "page", "track"],
    "user_id": ["C1", "C1", None, "C3"],
    "anonymous_id": ["a1", "a1", "a2", "a3"],
    "timestamp": pa.array([datetime(2024, 1, 5, 9), datetime(2024, 1, 6, 9),
                           datetime(2024, 1, 7, 9), datetime(2024, 2, 1, 9)],
                          pa.timestamp("us")),
    "channel": ["web", "web", "social", "email"],
})
TABLES = {"customer_records": CUSTOMERS, "orders": ORDERS, "order_lines": ORDER_LINES,
          "events": EVENTS}

SEMANTIC_MODELS = """\
semantic_models:
  - name: orders
    description: Purchases from every source
    model: ref('orders')
    defaults:
      agg_time_dimension: ordered_at
    entities:
      - {name: order, type: primary, expr: order_id}
      - {name: customer, type: foreign, expr: customer_id}
    measures:
      - {name: revenue, agg: sum, expr: amount}
      - {name: order_count, agg: count, expr: order_id}
      - {name: buyers, agg: count_distinct, expr: customer_id}
      - name: refunded_amount
        agg: sum
        expr: "case when status = 'refunded' then amount else 0 end"
      - {name: refunded_flags, agg: sum_boolean, expr: "status = 'refunded'"}
    dimensions:
      - name: ordered_at
        type: time
        type_params: {time_granularity: day}
      - {name: channel, type: categorical}
      - {name: status, type: categorical}
  - name: customers
    model: customer_records
    entities:
      - {name: customer, type: primary, expr: customer_id}
    dimensions:
      - {name: country, type: categorical}
  - name: order_lines
    model: order_lines
    entities:
      - name: order_line
        type: primary
        expr: "order_id || '-' || cast(line_number as varchar)"
      - {name: order, type: foreign, expr: order_id}
    measures:
      - {name: units, agg: sum, expr: quantity}
    dimensions:
      - {name: category, type: categorical}
  - name: events
    model: events
    defaults:
      agg_time_dimension: event_at
    entities:
      - {name: event, type: primary, expr: message_id}
      - {name: customer, type: foreign, expr: user_id}
    measures:
      - {name: event_count, agg: count, expr: message_id}
      - {name: visitors_measure, agg: count_distinct, expr: anonymous_id}
    dimensions:
      - {name: event_at, type: time, expr: '"timestamp"'}
      - {name: event_type, type: categorical, expr: type}
"""

METRICS = """\
metrics:
  - name: revenue
    type: simple
    type_params: {measure: revenue}
    owner: finance@example.fr
    definition: Chiffre d'affaires TTC de toutes les commandes, remboursées comprises.
    synonyms: [CA, chiffre d'affaires]
    status: approved
  - name: orders
    type: simple
    type_params: {measure: order_count}
  - name: buyers
    type: simple
    type_params: {measure: buyers}
  - name: refunds
    type: simple
    type_params: {measure: refunded_amount}
  - name: refunded_orders
    type: simple
    type_params: {measure: refunded_flags}
  - name: paid_revenue
    type: simple
    type_params: {measure: revenue}
    filter: "{{ Dimension('order__status') }} = 'paid'"
  - name: fr_revenue
    type: simple
    type_params: {measure: revenue}
    filter: "customer__country = 'FR'"
  - name: aov
    description: Average order value
    type: ratio
    type_params: {numerator: revenue, denominator: orders}
  - name: net_revenue
    type: derived
    type_params:
      expr: revenue - refunds
      metrics: [revenue, refunds]
  - name: running_revenue
    type: cumulative
    type_params: {measure: revenue}
  - name: revenue_mtd
    type: cumulative
    type_params: {measure: revenue, grain_to_date: month}
  - name: revenue_14d
    type: cumulative
    type_params: {measure: revenue, window: 14 days}
  - name: units
    type: simple
    type_params: {measure: units}
  - name: events
    type: simple
    type_params: {measure: event_count}
  - name: visitors
    type: simple
    type_params: {measure: visitors_measure}
  - name: orders_per_visitor
    type: ratio
    type_params: {numerator: orders, denominator: visitors}
"""


def write_project(root: Path, semantic: str = SEMANTIC_MODELS, metrics: str = METRICS) -> Path:
    (root / "metrics").mkdir(parents=True, exist_ok=True)
    (root / "metrics" / "semantic.yml").write_text(semantic, encoding="utf-8")
    (root / "metrics" / "metrics.yml").write_text(metrics, encoding="utf-8")
    return root


def load_tables(engine: Engine) -> None:
    for name, table in TABLES.items():
        engine.con.create_table(name, obj=table, overwrite=True)
