"""Segments benchmark: a 10-condition live count on 1M profiles / 20M events, against the
same question written by hand in SQL; a full membership refresh of 50 segments; the
event-driven refresh of the segments over events after 10,000 new events, against a full
refresh of the same segments; a 1M-person audience build; a 1M-row Brevo CSV export against
a hand-written DuckDB ``COPY`` of the same columns (the two files must be identical).

The synthetic warehouse (profiles, traits, and the activity tables the segments step
materialises: ``segment_events``, ``segment_orders``, ``segment_purchases``) is generated
in DuckDB with SQL. The hand-written SQL reads the same tables, so the ratio measures
what the compiler adds (query shape, Ibis compile time), not a different data layout.

Target (issue 7): count within 1.5x of hand-written SQL and under 1 s on DuckDB.

    python benchmarks/segments.py                        # 1M profiles, 20M events
    python benchmarks/segments.py --profiles 100000 --events 2000000   # quick
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import save_report

from passerelle.engines.duckdb import DuckDBEngine
from passerelle.project.segments_models import AudienceConfig, SegmentConfig

NOW = datetime(2024, 6, 1, 12, 0)
DATA = Path(__file__).parent / ".data"

TEN = {"all": [
    {"field": "country", "op": "in", "value": ["FR", "BE"]},
    {"field": "consent_email", "op": "=", "value": True},
    {"field": "birth_date", "op": "between", "value": ["1960-01-01", "1999-12-31"]},
    {"field": "city", "op": "starts_with", "value": "P"},
    {"trait": "order_count", "op": ">=", "value": 2},
    {"trait": "favourite_category", "op": "in", "value": ["shoes", "bags"]},
    {"did": {"event": "Product Viewed", "at_least": 3, "in_last_days": 30}},
    {"any": [{"did": {"event": "Added to Cart", "in_last_days": 90,
                      "properties": {"category": "shoes"}}},
             {"bought": {"category": "shoes", "in_last_days": 365}}]},
    {"not": {"bought": {"category": "shoes", "in_last_days": 60}}},
]}
TRAIT_KINDS = {"order_count": "number", "favourite_category": "text"}

HAND_SQL = """
SELECT count(*) FROM profiles p
WHERE p.country IN ('FR', 'BE') AND p.consent_email
  AND p.birth_date BETWEEN DATE '1960-01-01' AND DATE '1999-12-31'
  AND p.city LIKE 'P%'
  AND p.person_id IN (SELECT person_id FROM traits
                      WHERE trait = 'order_count' AND value_number >= 2)
  AND p.person_id IN (SELECT person_id FROM traits
                      WHERE trait = 'favourite_category' AND value_text IN ('shoes', 'bags'))
  AND p.person_id IN (SELECT person_id FROM segment_events
                      WHERE event = 'Product Viewed'
                        AND "at" > TIMESTAMP '2024-05-02 12:00:00'
                        AND "at" <= TIMESTAMP '2024-06-01 12:00:00'
                      GROUP BY person_id HAVING count(*) >= 3)
  AND (p.person_id IN (SELECT person_id FROM segment_events
                       WHERE event = 'Added to Cart'
                         AND "at" > TIMESTAMP '2024-03-03 12:00:00'
                         AND "at" <= TIMESTAMP '2024-06-01 12:00:00'
                         AND json_extract_string(properties, '$.category') = 'shoes')
       OR p.person_id IN (SELECT person_id FROM segment_purchases
                          WHERE category = 'shoes'
                            AND "at" > TIMESTAMP '2023-06-02 12:00:00'
                            AND "at" <= TIMESTAMP '2024-06-01 12:00:00'))
  AND p.person_id NOT IN (SELECT person_id FROM segment_purchases
                          WHERE category = 'shoes'
                            AND "at" > TIMESTAMP '2024-04-02 12:00:00'
                            AND "at" <= TIMESTAMP '2024-06-01 12:00:00')
"""


def generate(con, profiles: int, events: int) -> None:
    """Synthetic warehouse with plausible skew (hash-based, reproducible)."""
    orders = profiles * 3
    con.execute("CREATE OR REPLACE MACRO h(a, b) AS (hash(a, b) % 1000000007)::BIGINT")
    con.execute(f"""
    CREATE OR REPLACE TABLE profiles AS
    SELECT 'P' || lpad(i::VARCHAR, 8, '0') AS person_id,
           'C' || i::VARCHAR AS customer_id,
           CASE WHEN h(i, 1) % 10 < 8 THEN 'p' || i::VARCHAR || '@example.fr' END AS email,
           CASE WHEN h(i, 2) % 10 < 6 THEN '+336' || lpad(i::VARCHAR, 8, '0') END AS phone,
           ['Alice','Bruno','Chloé','David','Eva'][1 + h(i, 3) % 5] AS first_name,
           DATE '1940-01-01' + (h(i, 4) % 25000)::INTEGER AS birth_date,
           ['Paris','Lyon','Pau','Nantes','Brest','Perpignan'][1 + h(i, 5) % 6] AS city,
           ['FR','FR','FR','BE','DE','ES'][1 + h(i, 6) % 6] AS country,
           CASE WHEN h(i, 7) % 10 < 6 THEN true WHEN h(i, 7) % 10 < 9 THEN false END
               AS consent_email,
           h(i, 8) % 10 < 4 AS consent_sms,
           1 + (h(i, 9) % 3)::BIGINT AS record_count
    FROM range({profiles}) t(i)""")
    con.execute(f"""
    CREATE OR REPLACE TABLE traits AS
    SELECT 'P' || lpad(i::VARCHAR, 8, '0') AS person_id, 'order_count' AS trait,
           (h(i, 10) % 8)::DOUBLE AS value_number, NULL::VARCHAR AS value_text,
           NULL::DATE AS value_date FROM range({profiles}) t(i)
    UNION ALL
    SELECT 'P' || lpad(i::VARCHAR, 8, '0'), 'favourite_category', NULL,
           ['shoes','bags','socks','hats'][1 + h(i, 11) % 4], NULL FROM range({profiles}) t(i)
    UNION ALL
    SELECT 'P' || lpad(i::VARCHAR, 8, '0'), 'clv', (h(i, 12) % 100000) / 100.0, NULL, NULL
    FROM range({profiles}) t(i)""")
    con.execute(f"""
    CREATE OR REPLACE TABLE segment_events AS
    SELECT 'P' || lpad((h(i, 20) % {profiles})::VARCHAR, 8, '0') AS person_id,
           ['Product Viewed','Product Viewed','Page Viewed','Added to Cart',
            'Newsletter Opened'][1 + h(i, 21) % 5] AS event,
           TIMESTAMP '2024-06-01 12:00:00' - INTERVAL (h(i, 22) % 31536000) SECOND AS at,
           ('{{"category": "' || ['shoes','bags','socks','hats'][1 + h(i, 23) % 4] || '"}}')
               ::JSON AS properties
    FROM range({events}) t(i)
    ORDER BY event, "at" -- as prepare_activity writes it""")
    con.execute(f"""
    CREATE OR REPLACE TABLE segment_orders AS
    SELECT 'P' || lpad((h(i, 30) % {profiles})::VARCHAR, 8, '0') AS person_id,
           'O' || i::VARCHAR AS order_id,
           TIMESTAMP '2024-06-01 12:00:00' - INTERVAL (h(i, 31) % 63072000) SECOND AS at
    FROM range({orders}) t(i)
    ORDER BY "at"
    """)
    con.execute("""
    CREATE OR REPLACE TABLE segment_purchases AS
    SELECT DISTINCT person_id, order_id,
           ['shoes','bags','socks','hats'][1 + h(order_id, k) % 4] AS category, "at"
    FROM segment_orders, range(2) r(k)
    ORDER BY category, "at"
    """)


def timed(fn, repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def fifty_segments() -> dict[str, SegmentConfig]:
    countries = ["FR", "BE", "DE", "ES"]
    cats = ["shoes", "bags", "socks", "hats"]
    out = {}
    for i in range(50):
        c, cat = countries[i % 4], cats[(i // 4) % 4]
        kind = i % 5
        where: dict
        if kind == 0:
            where = {"all": [{"field": "country", "op": "=", "value": c},
                             {"trait": "order_count", "op": ">=", "value": 1 + i % 4}]}
        elif kind == 1:
            where = {"did": {"event": "Product Viewed", "at_least": 1 + i % 3,
                             "in_last_days": 7 + i}}
        elif kind == 2:
            where = {"all": [{"bought": {"category": cat}},
                             {"not": {"bought": {"category": cat, "in_last_days": 60 + i}}}]}
        elif kind == 3:
            where = {"any": [{"field": "city", "op": "=", "value": "Paris"},
                             {"trait": "favourite_category", "op": "=", "value": cat}]}
        else:
            where = {"all": [{"field": "consent_email", "op": "=", "value": True},
                             {"field": "birth_date", "op": ">", "value": f"{1950 + i}-01-01"}]}
        out[f"seg_{i:02d}"] = SegmentConfig.model_validate(
            {"name": f"seg_{i:02d}", "description": "bench", "owner": "bench", "where": where})
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--profiles", type=int, default=1_000_000)
    ap.add_argument("--events", type=int, default=20_000_000)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--fresh", action="store_true")
    args = ap.parse_args()
    from passerelle.segments import count, refresh_memberships, write_audience

    DATA.mkdir(exist_ok=True)
    path = DATA / f"segments-{args.profiles}-{args.events}.duckdb"
    if args.fresh and path.exists():
        path.unlink()
    engine = DuckDBEngine(path)
    con = engine.con.con
    if not engine.exists("segment_purchases"):
        t0 = time.perf_counter()
        generate(con, args.profiles, args.events)
        print(f"generated in {time.perf_counter() - t0:.1f}s", flush=True)
    seg = SegmentConfig.model_validate({"name": "ten", "description": "bench",
                                        "owner": "bench", "where": TEN})

    def ours() -> int:
        return count(engine, seg, {}, NOW, TRAIT_KINDS)

    def hand() -> int:
        return con.execute(HAND_SQL).fetchall()[0][0]

    ours(), hand()  # warm both (catalog, file cache)
    hand_times, our_times, n_hand, n_ours = [], [], 0, 0
    for _ in range(args.repeat):  # interleaved, so load on the machine hits both alike
        t, n_hand = timed(hand, 1)
        hand_times.append(t)
        t, n_ours = timed(ours, 1)
        our_times.append(t)
    t_hand, t_ours = statistics.median(hand_times), statistics.median(our_times)
    assert n_ours == n_hand, (n_ours, n_hand)
    print(f"10-condition count: passerelle {t_ours * 1000:.0f} ms, hand SQL "
          f"{t_hand * 1000:.0f} ms, ratio {t_ours / t_hand:.2f} ({n_ours} people)", flush=True)

    segments = fifty_segments()
    t0 = time.perf_counter()
    summary = refresh_memberships(engine, segments, "B1", NOW, full=True,
                                  trait_kinds=TRAIT_KINDS)
    t_refresh = time.perf_counter() - t0
    members = sum(v["members"] for v in summary.refreshed.values())
    print(f"full refresh of 50 segments: {t_refresh:.1f}s ({members} memberships)", flush=True)
    t0 = time.perf_counter()
    refresh_memberships(engine, segments, "B2", NOW.replace(hour=13), full=True,
                        trait_kinds=TRAIT_KINDS)
    t_refresh2 = time.perf_counter() - t0
    print(f"second full refresh (history diff): {t_refresh2:.1f}s", flush=True)

    everyone = SegmentConfig.model_validate({"name": "everyone", "description": "bench",
                                             "owner": "bench",
                                             "where": {"field": "person_id", "op": "not_null"}})
    audience = AudienceConfig(name="all_email", channel="email", segment="everyone")
    t0 = time.perf_counter()
    a = write_audience(engine, audience, NOW, "B3", segments={"everyone": everyone})
    t_audience = time.perf_counter() - t0
    print(f"audience build ({a.segment_members} members, {a.eligible} eligible, "
          f"{a.holdout} holdout): {t_audience:.1f}s", flush=True)
    incremental = event_refresh(engine, segments, NOW.replace(hour=13))
    prepare_export(con)
    report = {"profiles": args.profiles, "events": args.events,
              "count_ms": round(t_ours * 1000, 1), "hand_sql_ms": round(t_hand * 1000, 1),
              "ratio": round(t_ours / t_hand, 3), "count": n_ours,
              "refresh_50_s": round(t_refresh, 2), "refresh_50_again_s": round(t_refresh2, 2),
              "memberships": members, "audience_s": round(t_audience, 2),
              "audience": a.as_dict(), "event_refresh": incremental}
    engine.close()
    report["export"] = export_phases(path)
    print(save_report("segments", report))


NEW_EVENTS = 10_000


def event_refresh(engine, segments: dict, evaluated: datetime) -> dict:
    """New events arrive for 10,000 random people after the last refresh: the segments over
    events are refreshed from the people concerned, then in full at the same instant (which
    must find nothing left to change)."""
    from passerelle.segments import refresh_memberships
    from passerelle.segments.activity import ARRIVALS, EVENTS, ensure_tracking
    from passerelle.segments.incremental import event_segments, refresh_after_events

    now = evaluated.replace(minute=30)
    con = engine.con.con
    profiles = engine.count("profiles")
    con.execute(f"""
    CREATE OR REPLACE TEMP TABLE new_events AS
    SELECT 'P' || lpad((hash(i, 90) % {profiles})::VARCHAR, 8, '0') AS person_id,
           'Product Viewed' AS event,
           TIMESTAMP '{evaluated}' + INTERVAL (hash(i, 91) % 1800) SECOND AS "at",
           '{{"category": "shoes"}}'::JSON AS properties
    FROM range({NEW_EVENTS}) t(i)""")
    con.execute(f"INSERT INTO {EVENTS} SELECT * FROM new_events")
    # what refresh_events logs after rebuilding segment_events from the staged events
    ensure_tracking(engine)
    con.execute(f"""
    INSERT INTO {ARRIVALS}
    SELECT DISTINCT person_id, event, TIMESTAMP '{now}' - INTERVAL 1 SECOND FROM new_events""")
    names = event_segments(segments)
    t0 = time.perf_counter()
    quick = refresh_after_events(engine, segments, "B5", now, trait_kinds=TRAIT_KINDS)
    t_quick = time.perf_counter() - t0
    assert set(quick.incremental) == set(names), quick
    t0 = time.perf_counter()
    full = refresh_memberships(engine, segments, "B6", now, full=True,
                               trait_kinds=TRAIT_KINDS, only=names)
    t_full = time.perf_counter() - t0
    moved = sum(c["entered"] + c["exited"] for c in full.refreshed.values())
    assert moved == 0, full.refreshed  # the incremental refresh left nothing to do
    changes = sum(c["entered"] + c["exited"] for c in quick.refreshed.values())
    print(f"event-driven refresh of {len(names)} segments over events after "
          f"{NEW_EVENTS:,} new events: {t_quick:.2f}s ({sum(quick.incremental.values()):,} "
          f"people re-evaluated, {changes:,} entries/exits); full refresh of the same "
          f"segments: {t_full:.2f}s, same memberships", flush=True)
    return {"segments": len(names), "new_events": NEW_EVENTS,
            "incremental_s": round(t_quick, 2), "full_s": round(t_full, 2),
            "people_reevaluated": sum(quick.incremental.values()),
            "entries_exits": changes}


EXPORT_AUDIENCE = "bench_export"


def prepare_export(con) -> None:
    """An audience of every profile, all treated: the 1M-row export."""
    con.execute("DELETE FROM audience_members WHERE audience = ?", [EXPORT_AUDIENCE])
    con.execute(f"""
    INSERT INTO audience_members
    SELECT '{EXPORT_AUDIENCE}', person_id, 'treated', email, phone, 'B7',
           TIMESTAMP '{NOW}' FROM profiles""")
    # the build record activation reads (written by write_audience in a real run)
    con.execute("""CREATE TABLE IF NOT EXISTS audience_builds (audience VARCHAR,
        segment VARCHAR, channel VARCHAR, run_id VARCHAR, built_at TIMESTAMP,
        segment_members BIGINT, no_consent BIGINT, no_identifier BIGINT, eligible BIGINT,
        holdout BIGINT, treated BIGINT)""")
    con.execute("DELETE FROM audience_builds WHERE audience = ?", [EXPORT_AUDIENCE])
    con.execute(f"""
    INSERT INTO audience_builds
    SELECT '{EXPORT_AUDIENCE}', 'everyone', 'email', 'B7', TIMESTAMP '{NOW}', n, 0, 0, n, 0, n
    FROM (SELECT count(*) AS n FROM profiles)""")


# The Brevo file (French account, one attribute) written by hand: same columns, order,
# separator and quoting as Passerelle's, so the two files must be byte for byte the same.
HAND_EXPORT = f"""
COPY (
  SELECT a.email AS "EMAIL", p.first_name AS "PRENOM", NULL::VARCHAR AS "NOM",
         a.phone AS "SMS", p.city AS "VILLE"
  FROM audience_members a LEFT JOIN profiles p ON p.person_id = a.person_id
  WHERE a.audience = '{EXPORT_AUDIENCE}' AND a."group" = 'treated'
    AND (a.email IS NOT NULL OR a.phone IS NOT NULL)
  ORDER BY a.person_id
) TO '{{out}}' (FORMAT csv, HEADER true, DELIMITER ';', QUOTE '"', ESCAPE '"', NULLSTR '')
"""


def export_phases(path: Path) -> dict:
    """The export and its hand-written equivalent, each in its own process (own peak
    memory), three times each, interleaved; the two files are compared."""
    from _common import run_phase

    out_dir = DATA / "exports"
    out_dir.mkdir(exist_ok=True)
    ours_code = f"""
import sys
sys.path.insert(0, {str(Path(__file__).resolve().parents[1] / "src")!r})
from pathlib import Path
from passerelle.activation import export_csv, parse_destination
from passerelle.engines.duckdb import DuckDBEngine
engine = DuckDBEngine(Path({str(path)!r}))
dest = parse_destination({{"type": "csv", "format": "brevo", "path": "ours.csv",
                          "attributes": {{"VILLE": "city"}}}})
import time
t = time.perf_counter()
r = export_csv(engine, {EXPORT_AUDIENCE!r}, dest, root=Path({str(out_dir)!r}), user="bench")
t = time.perf_counter() - t
engine.close()
DETAIL = {{"people": r.people, "sha256": r.sha256, "export_s": t}}
"""
    hand_code = f"""
import duckdb, hashlib, time
con = duckdb.connect({str(path)!r})
out = {str(out_dir / "hand.csv")!r}
t = time.perf_counter()
n = con.execute({HAND_EXPORT!r}.replace("{{out}}", out)).fetchall()[0][0]
h = hashlib.sha256()
with open(out, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
        h.update(chunk)
t = time.perf_counter() - t
con.close()
DETAIL = {{"people": n, "sha256": h.hexdigest(), "export_s": t}}
"""
    ours, hand = [], []
    for _ in range(3):
        hand.append(run_phase("hand-written COPY + SHA-256", hand_code))
        ours.append(run_phase("passerelle export_csv (brevo)", ours_code))
    # the export itself (a process start and Python imports are not part of it)
    t_ours = statistics.median(p.detail["export_s"] for p in ours)
    t_hand = statistics.median(p.detail["export_s"] for p in hand)
    same = ours[-1].detail["sha256"] == hand[-1].detail["sha256"]
    print(f"1M-row audience export: passerelle {t_ours:.2f}s, hand SQL {t_hand:.2f}s, "
          f"ratio {t_ours / t_hand:.2f} ({ours[-1].detail['people']:,} rows, identical files: "
          f"{same}); peak {max(p.peak_mb for p in ours):.0f} MB vs "
          f"{max(p.peak_mb for p in hand):.0f} MB", flush=True)
    return {"rows": ours[-1].detail["people"], "passerelle_s": round(t_ours, 2),
            "hand_sql_s": round(t_hand, 2), "ratio": round(t_ours / t_hand, 3),
            "passerelle_process_s": round(statistics.median(p.seconds for p in ours), 2),
            "hand_process_s": round(statistics.median(p.seconds for p in hand), 2),
            "identical_files": same,
            "passerelle_peak_mb": round(max(p.peak_mb for p in ours)),
            "hand_peak_mb": round(max(p.peak_mb for p in hand))}


if __name__ == "__main__":
    main()
