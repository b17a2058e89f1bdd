"""Traits and metrics benchmark on DuckDB: every built-in trait, and a metric query by month
and channel, each against a hand-written SQL query doing the same work in the same run.

Synthetic warehouse written by DuckDB SQL (seconds): ``person_map`` (1.2 records a person),
``customer_records``, ``orders``, ``order_lines`` (2 a order), ``events`` (70% carry a
customer id), and a load ledger (so the incremental re-run can tell nothing changed).
Each phase runs in its own process with its own peak memory.

    python benchmarks/traits_metrics.py               # 1M persons, 5M orders, 20M events
    python benchmarks/traits_metrics.py --repeat 3    # best of 3 rounds on a busy machine
    python benchmarks/traits_metrics.py --scale 0.01  # a quick smoke run
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import run_phase, save_report

DATA = Path(__file__).parent / ".data"
NOW = "2025-07-01 00:00:00"


def generate(db: Path, persons: int, orders: int, events: int) -> None:
    """The warehouse tables with the standard model's columns, filled by DuckDB itself."""
    import duckdb
    import ibis
    import pyarrow as pa

    from passerelle.engines.duckdb import DuckDBEngine
    from passerelle.model import ENTITIES, Kind

    arrow = {Kind.DATE: pa.date32(), Kind.TIMESTAMP: pa.timestamp("us"),
             Kind.DECIMAL: pa.decimal128(18, 2), Kind.INTEGER: pa.int64(),
             Kind.BOOLEAN: pa.bool_()}
    engine = DuckDBEngine(db)
    for view, entity in (("customer_records", "customers"), ("orders", "orders"),
                         ("order_lines", "order_lines"), ("events", "events")):
        fields = [("_source", pa.string()), ("_record_id", pa.string())]
        fields += [(f.name, arrow.get(f.kind, pa.string())) for f in ENTITIES[entity].fields]
        engine.create_empty(view, ibis.Schema.from_pyarrow(pa.schema(fields)))
    engine.close()
    records = int(persons * 1.2)
    con = duckdb.connect(str(db))
    sql = [f"""
        CREATE TABLE person_map AS
        SELECT 'crm:C' || i AS node, 'crm' AS source, 'C' || i AS record_id,
               'P' || lpad((i % {persons})::VARCHAR, 8, '0') AS person_id, 'R0' AS run_id,
               TIMESTAMP '2025-01-01' AS assigned_at
        FROM range({records}) t(i)""", f"""
        INSERT INTO customer_records BY NAME
        SELECT 'crm' AS _source, 'C' || i AS _record_id, 'C' || i AS customer_id,
               'p' || (i % {persons}) || '@example.fr' AS email,
               CASE WHEN i % 5 = 0 THEN 'L' || i END AS loyalty_card
        FROM range({records}) t(i)""", f"""
        INSERT INTO orders BY NAME
        SELECT 'eshop' AS _source, 'O' || i AS _record_id, 'O' || i AS order_id,
               CASE WHEN i % 20 <> 0 THEN 'C' || ((i * 7919) % {records}) END AS customer_id,
               CASE WHEN i % 20 = 0 THEN 'p' || ((i * 7919) % {persons}) || '@example.fr'
                    END AS email,
               -- each person buys between a start and an end of their own (customers
               -- churn, as BG/NBD assumes), at most up to 2025-05-19
               TIMESTAMP '2023-01-01' + to_seconds((hash(k) % 45000000
                 + hash(i) % (1 + hash(k * 7) % 30000000))::BIGINT) AS ordered_at,
               round(5 + (hash(i * 3) % 30000) / 100.0, 2)::DECIMAL(18, 2) AS amount,
               'EUR' AS currency, ['web', 'app', 'store'][1 + (hash(i * 5) % 3)::INT] AS channel,
               CASE WHEN i % 50 = 0 THEN 'cancelled' ELSE 'paid' END AS status
        FROM (SELECT i, ((i * 7919) % {records}) % {persons} AS k FROM range({orders}) t(i))
        """, f"""
        INSERT INTO order_lines BY NAME
        SELECT 'lines' AS _source, 'O' || i || ':' || n AS _record_id, 'O' || i AS order_id,
               n AS line_number,
               ['shoes', 'bags', 'hats', 'socks', 'toys', 'books'][1 + (hash(i + n) % 6)::INT]
                 AS category,
               1 AS quantity, round(5 + (hash(i * n) % 10000) / 100.0, 2)::DECIMAL(18, 2)
                 AS amount
        FROM range({orders}) t(i), range(1, 3) l(n)""", f"""
        INSERT INTO events BY NAME
        SELECT 'web' AS _source, 'm-' || i AS _record_id, 'm-' || i AS message_id,
               CASE WHEN i % 10 = 0 THEN 'page' ELSE 'track' END AS type,
               ['Product Viewed', 'Product Added', 'Page Viewed'][1 + (i % 3)::INT] AS event,
               CASE WHEN i % 10 < 7 THEN 'C' || ((i * 104729) % {records}) END AS user_id,
               'anon-' || (i % ({events} // 8 + 1)) AS anonymous_id,
               TIMESTAMP '2024-07-01' + to_seconds((hash(i) % 31536000)::BIGINT) AS timestamp,
               ['search', 'social', 'email', 'direct'][1 + (i % 4)::INT] AS channel
        FROM range({events}) t(i)""", """
        CREATE TABLE _passerelle_loads AS
        SELECT s AS source, s || '-1' AS load_id, 'R0' AS run_id
        FROM (VALUES ('crm'), ('eshop'), ('lines'), ('web')) v(s)""", "CHECKPOINT"]
    for statement in sql:
        con.execute(statement).fetchall()
    con.close()


# Imports are not timed (run_phase's ``setup``): Passerelle's take about a second, which
# would dominate a one-second metric query; opening the warehouse is timed on both sides.
IMPORTS = """
import sys
sys.path.insert(0, {bench!r})
from datetime import datetime
from passerelle.engines.duckdb import DuckDBEngine
from passerelle.metrics import load_metrics, query
from passerelle.traits import clv, compute_traits
from traits_metrics import SOURCES_YAML, TRAITS, sources
"""

SETUP = """
engine = DuckDBEngine({db!r})
now = datetime.fromisoformat({now!r})
"""

PASSERELLE_TRAITS = SETUP + """
FIT = [0.0]  # seconds spent in the scipy maximum-likelihood fits, reported apart

def timed(fit):
    def run(*args, **kwargs):
        started = time.perf_counter()
        try:
            return fit(*args, **kwargs)
        finally:
            FIT[0] += time.perf_counter() - started
    return run

clv.fit_bgnbd, clv.fit_gamma_gamma = timed(clv.fit_bgnbd), timed(clv.fit_gamma_gamma)
s = compute_traits(engine, TRAITS, sources(), "B{n}", now, full={full})
fits = {{k: {{m: (f.summary() and {{p: round(v["estimate"], 4) for p, v in f.summary().items()}},
               f.n, f.sample_of, f.converged) for m, f in v.items() if f}}
        for k, v in s.fits.items()}}
DETAIL = {{"persons": s.persons, "skipped": s.skipped, "failed": s.failed, "fits": fits,
          "fit_seconds": FIT[0], "history_rows": s.history_rows}}
engine.close()
"""

BASELINE_TRAITS = """
con = duckdb.connect({db!r})
con.execute(open({sql!r}).read()).fetchall()
n = con.execute("SELECT count(*) FROM baseline_traits").fetchone()[0]
con.close()
DETAIL = {{"rows": n}}
"""

PASSERELLE_METRIC = SETUP + """
pm = load_metrics({project!r})
t = query(engine, pm, ["revenue", "orders", "buyers"], ["metric_time__month", "channel"])
DETAIL = {{"rows": t.num_rows, "revenue": float(sum(v.as_py() for v in t.column("revenue")))}}
engine.close()
"""

BASELINE_METRIC = """
con = duckdb.connect({db!r}, read_only=True)
rows = con.execute('''
    SELECT date_trunc('month', ordered_at) AS month, channel, sum(amount) AS revenue,
           count(order_id) AS orders, count(DISTINCT customer_id) AS buyers
    FROM orders GROUP BY ALL ORDER BY month, channel''').fetchall()
con.close()
DETAIL = {{"rows": len(rows), "revenue": float(sum(r[2] for r in rows))}}
"""

METRICS_YAML = """\
semantic_models:
  - name: orders
    model: ref('orders')
    defaults: {agg_time_dimension: ordered_at}
    entities:
      - {name: order, type: primary, expr: order_id}
      - {name: customer, type: foreign, expr: customer_id}
    measures:
      - {name: revenue, agg: sum, expr: amount}
      - {name: order_count, agg: count, expr: order_id}
      - {name: buyers, agg: count_distinct, expr: customer_id}
    dimensions:
      - {name: ordered_at, type: time, type_params: {time_granularity: day}}
      - {name: channel, type: categorical}
metrics:
  - {name: revenue, type: simple, type_params: {measure: revenue}}
  - {name: orders, type: simple, type_params: {measure: order_count}}
  - {name: buyers, type: simple, type_params: {measure: buyers}}
"""

SOURCES_YAML = {
    "crm": {"entity": "customers"},
    "eshop": {"entity": "orders", "customer_source": "crm"},
    "lines": {"entity": "order_lines"},
    "web": {"entity": "events", "customer_source": "crm"},
}


def sources() -> dict:
    from passerelle.model import ENTITIES
    from passerelle.project.models import SourceConfig

    out = {}
    for name, spec in SOURCES_YAML.items():
        entity = spec["entity"]
        out[name] = SourceConfig.model_validate({
            "name": name, **spec, "connector": {"type": "csv", "path": f"{name}.csv"},
            "columns": {f.name: f.name for f in ENTITIES[entity].fields if f.required}})
    return out


def _traits() -> list:
    from passerelle.project.traits_models import AggregateTrait, BuiltinTrait

    def agg(name: str, function: str, column: str | None = None, **kw: object):
        return AggregateTrait(name=name, description=name, owner="bench", type="aggregate",
                              entity="orders", function=function, column=column, **kw)

    def builtin(name: str, **kw: object):
        return BuiltinTrait(name=name, description=name, owner="bench", type="builtin",
                            builtin=name, **kw)

    return [agg("orders_90d", "count", window_days=90), agg("total_spend", "sum", "amount"),
            agg("last_purchase", "max", "ordered_at"), builtin("favourite_channel"),
            builtin("favourite_category"), builtin("days_since_last_visit", history=False),
            builtin("rfm"), builtin("clv"), builtin("churn_risk")]


TRAITS = _traits() if __name__ != "__main__" else []

# The same work, by hand, in one statement: person attribution (customer id, then a loyalty
# card or email held by one person), the nine traits and their 14 outputs in long form.
# CLV's model fits cannot be SQL: the baseline computes the same per-person statistics
# (frequency, recency, T, monetary over purchase days) and P(alive), expected purchases, CLV
# and churn risk from them with fixed parameters. Passerelle's time includes its fits (also
# reported apart), the exact expected purchases (Gauss hypergeometric, per distinct
# statistics row) and the traits history, so the ratio is what all of that costs on top.
BASELINE_SQL = """
CREATE OR REPLACE TABLE baseline_traits AS
WITH owned AS (
  SELECT c.email, c.loyalty_card, pm.person_id FROM customer_records c
  JOIN person_map pm ON pm.source = c._source AND pm.record_id = c._record_id),
by_email AS (SELECT email AS k, min(person_id) AS p FROM owned WHERE email IS NOT NULL
             GROUP BY email HAVING count(DISTINCT person_id) = 1),
by_card AS (SELECT loyalty_card AS k, min(person_id) AS p FROM owned
            WHERE loyalty_card IS NOT NULL GROUP BY loyalty_card
            HAVING count(DISTINCT person_id) = 1),
o AS (
  SELECT coalesce(pm.person_id, bc.p, be.p) AS person_id, o.order_id, o.ordered_at,
         o.amount::DOUBLE AS amount, o.channel
  FROM orders o
  LEFT JOIN person_map pm ON pm.source = 'crm' AND pm.record_id = o.customer_id
  LEFT JOIN by_card bc ON bc.k = o.loyalty_card LEFT JOIN by_email be ON be.k = o.email
  WHERE coalesce(pm.person_id, bc.p, be.p) IS NOT NULL AND o.ordered_at <= TIMESTAMP '{now}'),
e AS (
  SELECT coalesce(pm.person_id, be.p) AS person_id, e.timestamp FROM events e
  LEFT JOIN person_map pm ON pm.source = 'crm' AND pm.record_id = e.user_id
  LEFT JOIN by_email be ON be.k = e.email
  WHERE coalesce(pm.person_id, be.p) IS NOT NULL AND e.timestamp <= TIMESTAMP '{now}'),
l AS (SELECT o.person_id, o.ordered_at, l.category FROM order_lines l
      JOIN o ON o.order_id = l.order_id),
persons AS (SELECT DISTINCT person_id FROM person_map),
per AS (SELECT person_id, count(*) AS n, sum(amount) AS spend, max(ordered_at) AS last,
               count(*) FILTER (WHERE ordered_at > TIMESTAMP '{now}' - INTERVAL 90 DAY) AS n90
        FROM o GROUP BY person_id),
ch AS (SELECT person_id, channel AS v, row_number() OVER (PARTITION BY person_id
         ORDER BY count(*) DESC, max(ordered_at) DESC, channel) AS r
       FROM o GROUP BY person_id, channel),
cat AS (SELECT person_id, category AS v, row_number() OVER (PARTITION BY person_id
          ORDER BY count(*) DESC, max(ordered_at) DESC, category) AS r
        FROM l WHERE category IS NOT NULL GROUP BY person_id, category),
rfm AS (SELECT person_id, date_diff('day', last::DATE, DATE '{now}') AS rec, n, spend,
               ntile(5) OVER (ORDER BY date_diff('day', last::DATE, DATE '{now}') DESC) AS r0,
               ntile(5) OVER (ORDER BY n) AS f0, ntile(5) OVER (ORDER BY spend) AS m0
        FROM per),
rfm2 AS (SELECT person_id, min(r0) OVER (PARTITION BY rec) AS r,
                min(f0) OVER (PARTITION BY n) AS f, min(m0) OVER (PARTITION BY spend) AS m
         FROM rfm),
daily AS (SELECT person_id, ordered_at::DATE AS day, sum(amount) AS amount FROM o
          GROUP BY ALL),
st AS (SELECT person_id, count(*) - 1 AS x,
              date_diff('day', min(day), max(day)) / 7.0 AS tx,
              date_diff('day', min(day), DATE '{now}') / 7.0 AS t,
              CASE WHEN count(*) > 1 THEN (sum(amount) - arg_min(amount, day))
                   / (count(*) - 1) ELSE 0 END AS monetary
       FROM daily GROUP BY person_id),
alive AS (SELECT person_id, x, monetary, p,
                 -- expected purchases in 52.14 weeks: P(alive) x posterior mean rate
                 -- x time (SQL has no Gauss hypergeometric function for FHL's eq. 10)
                 p * (0.24 + x) / (4.4 + t) * 52.14 AS e
          FROM (SELECT person_id, x, monetary, tx, t, 1 / (1 + CASE WHEN x > 0
                  THEN 0.8 / (2.4 + x - 1) * power((4.4 + t) / (4.4 + tx), 0.24 + x)
                  ELSE 0 END) AS p FROM st))
SELECT p.person_id, 'orders_90d' AS trait, coalesce(per.n90, 0)::DOUBLE AS value_number,
       NULL::VARCHAR AS value_text, NULL::DATE AS value_date
FROM persons p LEFT JOIN per USING (person_id)
UNION ALL SELECT person_id, 'total_spend', round(spend, 6), NULL, NULL FROM per
UNION ALL SELECT person_id, 'last_purchase', NULL, NULL, last::DATE FROM per
UNION ALL SELECT person_id, 'favourite_channel', NULL, v, NULL FROM ch WHERE r = 1
UNION ALL SELECT person_id, 'favourite_category', NULL, v, NULL FROM cat WHERE r = 1
UNION ALL SELECT person_id, 'days_since_last_visit',
                 date_diff('day', max(timestamp)::DATE, DATE '{now}'), NULL, NULL
          FROM e GROUP BY person_id
UNION ALL SELECT person_id, 'rfm', NULL, r::VARCHAR || f::VARCHAR || m::VARCHAR, NULL FROM rfm2
UNION ALL SELECT person_id, 'rfm_recency', r, NULL, NULL FROM rfm2
UNION ALL SELECT person_id, 'rfm_frequency', f, NULL, NULL FROM rfm2
UNION ALL SELECT person_id, 'rfm_monetary', m, NULL, NULL FROM rfm2
UNION ALL SELECT person_id, 'clv_p_alive', round(p, 4), NULL, NULL FROM alive
UNION ALL SELECT person_id, 'clv_expected_purchases', round(e, 4), NULL, NULL FROM alive
UNION ALL SELECT person_id, 'clv', round(e * (6 * (15 + x * monetary) / (6 * x + 3.7 - 1)),
                 2), NULL, NULL FROM alive
UNION ALL SELECT person_id, 'churn_risk', round(1 - p, 4), NULL, NULL FROM alive
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0,
                        help="fraction of 1M persons / 5M orders / 20M events (default 1)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="run the traits and metric phases N times, alternating baseline "
                             "and Passerelle, and compare the fastest of each: on a shared "
                             "machine one run can be slowed by others (default 1)")
    args = parser.parse_args()
    persons, orders, events = (int(n * args.scale) for n in (1_000_000, 5_000_000, 20_000_000))
    work = DATA / f"traits-{persons}"
    db = work / "warehouse.duckdb"
    if not db.exists():
        print(f"generating {persons:,} persons, {orders:,} orders, {2 * orders:,} order "
              f"lines, {events:,} events...", flush=True)
        work.mkdir(parents=True, exist_ok=True)
        generate(db, persons, orders, events)
    _drop_outputs(db)
    project = work / "project"
    shutil.rmtree(project, ignore_errors=True)
    (project / "metrics").mkdir(parents=True)
    (project / "metrics" / "orders.yml").write_text(METRICS_YAML)
    sql_file = work / "baseline.sql"
    sql_file.write_text(BASELINE_SQL.format(now=NOW))
    bench = str(Path(__file__).parent)
    fmt = {"bench": bench, "db": str(db), "now": NOW, "project": str(project)}
    imports = IMPORTS.format(bench=bench)

    base_runs, first_runs, base_m_runs, metric_runs = [], [], [], []
    for n in range(1, args.repeat + 1):
        if n > 1:
            _drop_outputs(db)
        print(f"traits, round {n}: hand-written SQL (one statement)")
        base_runs.append(run_phase("baseline traits",
                                   BASELINE_TRAITS.format(db=str(db), sql=str(sql_file)),
                                   setup="import duckdb"))
        print(f"traits, round {n}: passerelle compute_traits (9 traits, 14 outputs, "
              "with history)")
        first_runs.append(run_phase("passerelle traits",
                                    PASSERELLE_TRAITS.format(**fmt, n=n, full=True),
                                    setup=imports))
        print(f"metric, round {n}: revenue, orders, buyers by month and channel")
        base_m_runs.append(run_phase("baseline metric", BASELINE_METRIC.format(db=str(db)),
                                     setup="import duckdb"))
        metric_runs.append(run_phase("passerelle metric", PASSERELLE_METRIC.format(**fmt),
                                     setup=imports))
        assert abs(base_m_runs[-1].detail["revenue"] - metric_runs[-1].detail["revenue"]) < 1
    # the next run of a project: every value compared with the current one (none changed)
    recomputed = run_phase("passerelle traits, recomputed",
                           PASSERELLE_TRAITS.format(**fmt, n=args.repeat + 1, full=True),
                           setup=imports)
    rerun = run_phase("passerelle traits, nothing changed",
                      PASSERELLE_TRAITS.format(**fmt, n=args.repeat + 2, full=False),
                      setup=imports)
    base_t, first, base_m, metric = (min(runs, key=lambda p: p.seconds) for runs in (
        base_runs, first_runs, base_m_runs, metric_runs))

    print()
    print(f"{'phase':<36}{'seconds':>9}{'x baseline':>12}{'peak MB':>10}")
    for label, phase, base in (
        ("baseline traits (SQL)", base_t, base_t), ("passerelle traits", first, base_t),
        ("passerelle traits, recomputed", recomputed, base_t),
        ("passerelle traits, nothing changed", rerun, base_t),
        ("baseline metric (SQL)", base_m, base_m), ("passerelle metric", metric, base_m),
    ):
        print(f"{label:<36}{phase.seconds:>9.2f}{phase.seconds / base.seconds:>12.2f}"
              f"{phase.peak_mb:>10.0f}")
    print(f"history rows: first computation {first.detail['history_rows']:,}, recomputed "
          f"with nothing changed {recomputed.detail['history_rows']:,} (must be 0: no noise)")
    fit_s = first.detail["fit_seconds"]
    print(f"{'  of which scipy fits':<36}{fit_s:>9.2f}{fit_s / base_t.seconds:>12.2f}")
    if args.repeat > 1:
        for label, runs in (("baseline traits", base_runs), ("passerelle traits", first_runs),
                            ("baseline metric", base_m_runs), ("passerelle metric", metric_runs)):
            print(f"  {label}, every round: "
                  + ", ".join(f"{p.seconds:.1f}s" for p in runs))
    print(f"\nfits (estimates, people, sample of, converged): {first.detail['fits']}")
    ratio_t, ratio_m = first.seconds / base_t.seconds, metric.seconds / base_m.seconds
    print(f"target 1.5x: traits {'met' if ratio_t <= 1.5 else 'NOT met'} ({ratio_t:.2f}x), "
          f"metric {'met' if ratio_m <= 1.5 else 'NOT met'} ({ratio_m:.2f}x)")
    path = save_report("traits_metrics", {
        "rows": {"persons": persons, "orders": orders, "order_lines": 2 * orders,
                 "events": events},
        "baseline_traits": base_t, "traits": first, "traits_recomputed": recomputed,
        "traits_rerun": rerun,
        "baseline_metric": base_m, "metric": metric,
        "all_runs": {"baseline_traits": base_runs, "traits": first_runs,
                     "baseline_metric": base_m_runs, "metric": metric_runs},
        "ratios": {"traits": ratio_t, "traits_recomputed": recomputed.seconds / base_t.seconds,
                   "traits_rerun": rerun.seconds / base_t.seconds,
                   "traits_without_fits": (first.seconds - fit_s) / base_t.seconds,
                   "metric": ratio_m},
    })
    print(f"report: {path}")
    return 0


def _drop_outputs(db: Path) -> None:
    """Start from a warehouse without traits (every phase then computes them all)."""
    import duckdb

    con = duckdb.connect(str(db))
    con.execute('DROP VIEW IF EXISTS "traits_history"').fetchall()
    for name in ("traits", "traits_past", "trait_runs", "trait_definitions",
                 "_passerelle_step_state",
                 "baseline_traits"):
        con.execute(f'DROP TABLE IF EXISTS "{name}"').fetchall()
    con.execute("CHECKPOINT").fetchall()
    con.close()


if __name__ == "__main__":
    sys.exit(main())
