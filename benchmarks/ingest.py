"""Ingest benchmark: load and stage CRM contacts, orders and events from Parquet on DuckDB.

Baseline, measured in the same run on the same files: DuckDB's own
``CREATE TABLE ... AS SELECT * FROM read_parquet(...)``. Passerelle's load (raw tables with
lineage and bookkeeping) and staging (typing, normalisation, dedupe, quarantine) are reported
as ratios of that baseline, with the peak memory of each phase (each in its own process).

    python benchmarks/ingest.py                 # 1M contacts, 5M orders, 20M events
    python benchmarks/ingest.py --scale 0.01    # a quick smoke run
"""

from __future__ import annotations

import argparse
import shutil
import sys
import textwrap
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import run_phase, save_report

DATA = Path(__file__).parent / ".data"


def generate(directory: Path, contacts: int, orders: int, events: int) -> None:
    """Synthetic but realistic-looking files, written by DuckDB itself (seconds, not minutes)."""
    import duckdb

    directory.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute("SELECT setseed(0.42)").fetchall()
    con.execute(f"""
        COPY (
          SELECT 'CRM-' || lpad(i::VARCHAR, 8, '0') AS contact_id,
                 CASE WHEN i % 50 = 0 THEN 'not-an-email-' || i
                      ELSE lower(['marie','jean','louise','hugo','lea','lucas'][1 + i % 6])
                           || '.' || i || '@' || ['gmail.com','orange.fr','free.fr',
                           'laposte.net'][1 + i % 4] END AS email,
                 CASE i % 4 WHEN 0 THEN '06 ' || lpad((i % 100000000)::VARCHAR, 8, '0')
                            WHEN 1 THEN '+337' || lpad((i % 100000000)::VARCHAR, 8, '0')
                            WHEN 2 THEN '06.' || lpad((i % 100000000)::VARCHAR, 8, '0')
                            ELSE NULL END AS telephone,
                 ['Marie','Jean','Louise','Hugo','Léa','Lucas','Chloé','Gabriel'][1 + i % 8]
                   AS prenom,
                 upper(['Martin','Bernard','Dubois','Thomas','Robert','Richard','Petit',
                        'Durand','Lefèvre','Moreau'][1 + (i * 7) % 10]) AS nom,
                 strftime(DATE '1950-01-01' + (i * 37 % 20000)::INT, '%d/%m/%Y')
                   AS date_naissance,
                 lpad(((i * 13) % 95000 + 1000)::VARCHAR, 5, '0') AS code_postal,
                 ['Paris','Lyon','Marseille','Lille','Nantes','Bordeaux'][1 + i % 6] AS ville,
                 CASE WHEN i % 3 = 0 THEN 'oui' ELSE 'non' END AS optin_email,
                 TIMESTAMP '2025-01-01' + to_seconds(i * 17 % 30000000) AS modifie_le
          FROM range({contacts}) t(i)
        ) TO '{directory}/contacts.parquet' (FORMAT parquet)""").fetchall()
    con.execute(f"""
        COPY (
          SELECT 'O' || i AS order_id,
                 'CRM-' || lpad((i * 7919 % {contacts})::VARCHAR, 8, '0') AS customer_id,
                 TIMESTAMP '2025-01-01' + to_seconds(i * 3 % 30000000) AS ordered_at,
                 round(5 + (i * 7 % 30000) / 100.0, 2) AS amount,
                 'EUR' AS currency,
                 ['web','app','store'][1 + i % 3] AS channel,
                 'paid' AS status
          FROM range({orders}) t(i)
        ) TO '{directory}/orders.parquet' (FORMAT parquet)""").fetchall()
    con.execute(f"""
        COPY (
          SELECT 'm-' || i AS message_id,
                 CASE WHEN i % 10 = 0 THEN 'page' ELSE 'track' END AS type,
                 ['Product Viewed','Product Added','Order Completed','Page Viewed'][1 + i % 4]
                   AS event,
                 CASE WHEN i % 3 = 0 THEN 'CRM-' || lpad((i % {contacts})::VARCHAR, 8, '0')
                      END AS user_id,
                 'anon-' || (i % ({events} // 8 + 1)) AS anonymous_id,
                 TIMESTAMP '2025-01-01' + to_seconds(i % 30000000) AS timestamp,
                 ['search','social','email','direct'][1 + i % 4] AS channel,
                 '{{"product_id": "P' || (i % 5000) || '", "price": ' || (i % 300) || '}}'
                   AS properties
          FROM range({events}) t(i)
        ) TO '{directory}/events.parquet' (FORMAT parquet, ROW_GROUP_SIZE 1000000)
    """).fetchall()


def write_project(project: Path, data: Path) -> None:
    if project.exists():
        shutil.rmtree(project)
    (project / "sources").mkdir(parents=True)
    # The 4 GB target is met by telling DuckDB its budget, as a team would on a 4 GB host
    # (DuckDB's own default is 80% of the machine's memory, used as cache).
    (project / "passerelle.yml").write_text(
        "name: bench\nengine: {type: duckdb, memory_limit: 2GB}\n")
    (project / "sources" / "crm.yml").write_text(textwrap.dedent(f"""
        entity: customers
        connector: {{type: parquet, path: "{data}/contacts.parquet"}}
        columns:
          customer_id: contact_id
          email: email
          phone: telephone
          first_name: prenom
          last_name: nom
          birth_date: date_naissance
          postcode: code_postal
          city: ville
          consent_email: optin_email
          updated_at: modifie_le
    """))
    (project / "sources" / "orders.yml").write_text(textwrap.dedent(f"""
        entity: orders
        customer_source: crm
        connector: {{type: parquet, path: "{data}/orders.parquet"}}
        columns:
          order_id: order_id
          customer_id: customer_id
          ordered_at: ordered_at
          amount: amount
          currency: currency
          channel: channel
          status: status
    """))
    (project / "sources" / "events.yml").write_text(textwrap.dedent(f"""
        entity: events
        connector: {{type: parquet, path: "{data}/events.parquet"}}
        columns:
          message_id: message_id
          type: type
          event: event
          user_id: user_id
          anonymous_id: anonymous_id
          timestamp: timestamp
          channel: channel
          properties: properties
    """))


BASELINE = """
import duckdb
con = duckdb.connect({db!r})
rows = 0
for name in ("contacts", "orders", "events"):
    con.execute(f"CREATE TABLE {{name}} AS SELECT * FROM read_parquet('{data}/{{name}}.parquet')")
    rows += con.execute(f"SELECT count(*) FROM {{name}}").fetchone()[0]
con.close()
DETAIL = {{"rows": rows}}
"""

PASSERELLE = """
import passerelle
with passerelle.open({project!r}) as project:
    result = project.run()
steps = {{}}
for s in result.steps:
    steps[s.step] = steps.get(s.step, 0.0) + s.seconds
DETAIL = {{"steps": steps, "ok": result.ok,
          "staged": {{k: v.rows_staged for k, v in result.stages.items()}},
          "quarantined": {{k: v.rows_quarantined for k, v in result.stages.items()}},
          "errors": [e.reason for e in result.errors]}}
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0,
                        help="fraction of 1M contacts / 5M orders / 20M events (default 1)")
    args = parser.parse_args()
    contacts, orders, events = (int(n * args.scale) for n in (1_000_000, 5_000_000, 20_000_000))
    data = DATA / f"ingest-{contacts}"
    if not (data / "events.parquet").exists():
        print(f"generating {contacts:,} contacts, {orders:,} orders, {events:,} events...")
        generate(data, contacts, orders, events)
    work = DATA / "ingest-work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    total = contacts + orders + events

    print("baseline: DuckDB read_parquet -> CREATE TABLE")
    base = run_phase("baseline", BASELINE.format(db=str(work / "baseline.duckdb"), data=data))
    print("passerelle: load + stage (+ checks, unify)")
    write_project(work / "project", data)
    first = run_phase("passerelle run", PASSERELLE.format(project=str(work / "project")))
    print("passerelle: re-run with nothing new")
    rerun = run_phase("passerelle re-run", PASSERELLE.format(project=str(work / "project")))

    steps = first.detail["steps"]
    load_s, stage_s = steps.get("load", 0.0), steps.get("stage", 0.0)
    print()
    print(f"rows: {total:,}  (staged: {first.detail['staged']}, "
          f"quarantined: {first.detail['quarantined']})")
    print(f"{'phase':<28}{'seconds':>9}{'rows/s':>14}{'x baseline':>12}{'peak MB':>10}")
    for label, secs, peak in (
        ("baseline (read_parquet)", base.seconds, base.peak_mb),
        ("passerelle load", load_s, first.peak_mb),
        ("passerelle stage", stage_s, first.peak_mb),
        ("passerelle run (all steps)", first.seconds, first.peak_mb),
        ("passerelle re-run", rerun.seconds, rerun.peak_mb),
    ):
        print(f"{label:<28}{secs:>9.1f}{total / secs if secs else 0:>14,.0f}"
              f"{secs / base.seconds:>12.2f}{peak:>10.0f}")
    verdict = "met" if stage_s <= 3 * base.seconds and first.peak_mb < 4096 else "NOT met"
    print(f"\ntarget (staging within 3x of the bare load, peak < 4 GB): {verdict}")
    path = save_report("ingest", {
        "rows": {"contacts": contacts, "orders": orders, "events": events},
        "baseline": base, "run": first, "rerun": rerun,
        "ratios": {"load": load_s / base.seconds, "stage": stage_s / base.seconds,
                   "run": first.seconds / base.seconds},
    })
    print(f"report: {path}")
    return 0 if first.detail["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
