"""Ingest benchmark: load and stage CRM contacts, orders and events from Parquet on DuckDB.

Baseline, measured in the same run on the same files: DuckDB's own
``CREATE TABLE ... AS SELECT * FROM read_parquet(...)``. Passerelle's load (raw tables with
lineage and bookkeeping) and staging (typing, normalisation, dedupe, quarantine) are reported
as ratios of that baseline, with the peak memory of each phase (each in its own process).
Then a day's events arrive (1 % more, a new file of the append-only events source): the
next run stages only them, and its staging of the events is compared with the first, full
one. Seconds are wall-clock; CPU seconds (every thread of the process) are given too, as they
move less than wall time on a machine shared with other work.

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
    # the next day: 1 % more events, new message ids
    con.execute(f"""
        COPY (
          SELECT 'm-' || i AS message_id, 'track' AS type, 'Product Viewed' AS event,
                 CASE WHEN i % 3 = 0 THEN 'CRM-' || lpad((i % {contacts})::VARCHAR, 8, '0')
                      END AS user_id,
                 'anon-' || (i % ({events} // 8 + 1)) AS anonymous_id,
                 TIMESTAMP '2025-12-01' + to_seconds(i % 86400) AS timestamp,
                 'direct' AS channel,
                 '{{"product_id": "P' || (i % 5000) || '"}}' AS properties
          FROM range({events}, {events} + {events} // 100) t(i)
        ) TO '{directory}/events-next.parquet' (FORMAT parquet)
    """).fetchall()


def write_project(project: Path, data: Path) -> None:
    if project.exists():
        shutil.rmtree(project)
    (project / "sources").mkdir(parents=True)
    # the events source reads a folder of daily files: today only the first
    (project / "events").mkdir()
    (project / "events" / "events-1.parquet").symlink_to(data / "events.parquet")
    # The 4 GB target is met by telling DuckDB its budget, as a team would on a 4 GB host
    # (DuckDB's own default is 80% of the machine's memory, used as cache).
    (project / "passerelle.yml").write_text(
        "name: bench\nengine: {type: duckdb, memory_limit: 2GB}\n"
        f"allowed_paths: [{data}]\n")
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
    (project / "sources" / "events.yml").write_text(textwrap.dedent("""
        entity: events
        connector: {type: parquet, path: "events/events-*.parquet"}
        incremental: {staging: append}
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


CPU = """
import resource
def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
"""

BASELINE = CPU + """
import duckdb
start = cpu()
con = duckdb.connect({db!r})
rows = 0
for name in ("contacts", "orders", "events"):
    con.execute(f"CREATE TABLE {{name}} AS SELECT * FROM read_parquet('{data}/{{name}}.parquet')")
    rows += con.execute(f"SELECT count(*) FROM {{name}}").fetchone()[0]
con.close()
DETAIL = {{"rows": rows, "cpu": cpu() - start}}
"""

# Each staging of a source is timed (wall and CPU) where the pipeline calls it.
PASSERELLE = CPU + """
import time
import passerelle
import passerelle.staging
from passerelle.staging import stage as stage_module

staging = {{}}
def timed(engine, source, *args, **kwargs):
    wall, start = time.perf_counter(), cpu()
    result = stage_module.stage_source(engine, source, *args, **kwargs)
    staging[source.name] = {{"seconds": time.perf_counter() - wall, "cpu": cpu() - start,
                            "mode": result.mode, "rows_in": result.rows_in}}
    return result
passerelle.staging.StageResult  # binds the package's lazy names first, so they keep ours
passerelle.staging.stage_source = timed
start = cpu()
with passerelle.open({project!r}) as project:
    result = project.run()
steps = {{}}
for s in result.steps:
    steps[s.step] = steps.get(s.step, 0.0) + s.seconds
DETAIL = {{"steps": steps, "ok": result.ok, "cpu": cpu() - start, "staging": staging,
          "stage_cpu": sum(s["cpu"] for s in staging.values()),
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
    if not (data / "events-next.parquet").exists():
        print(f"generating {contacts:,} contacts, {orders:,} orders, {events:,} events...")
        generate(data, contacts, orders, events)
    work = DATA / "ingest-work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    total = contacts + orders + events
    project = work / "project"

    print("baseline: DuckDB read_parquet -> CREATE TABLE")
    base = run_phase("baseline", BASELINE.format(db=str(work / "baseline.duckdb"), data=data))
    print("passerelle: load + stage (+ checks, unify)")
    write_project(project, data)
    first = run_phase("passerelle run", PASSERELLE.format(project=str(project)))
    print("passerelle: re-run with nothing new")
    rerun = run_phase("passerelle re-run", PASSERELLE.format(project=str(project)))
    print(f"passerelle: a day later, {events // 100:,} new events (1 %) in a new file")
    (project / "events" / "events-2.parquet").symlink_to(data / "events-next.parquet")
    daily = run_phase("passerelle daily run", PASSERELLE.format(project=str(project)))

    steps = first.detail["steps"]
    load_s, stage_s = steps.get("load", 0.0), steps.get("stage", 0.0)
    stage_cpu = first.detail["stage_cpu"]
    print()
    print(f"rows: {total:,}  (staged: {first.detail['staged']}, "
          f"quarantined: {first.detail['quarantined']})")
    print(f"{'phase':<30}{'seconds':>9}{'x baseline':>12}{'CPU s':>8}{'x base CPU':>12}"
          f"{'peak MB':>9}")
    base_cpu = base.detail["cpu"]
    for label, secs, cpu_s, peak in (
        ("baseline (read_parquet)", base.seconds, base_cpu, base.peak_mb),
        ("passerelle load", load_s, None, first.peak_mb),
        ("passerelle stage", stage_s, stage_cpu, first.peak_mb),
        ("passerelle run (all steps)", first.seconds, first.detail["cpu"], first.peak_mb),
        ("passerelle re-run", rerun.seconds, rerun.detail["cpu"], rerun.peak_mb),
        ("passerelle daily run", daily.seconds, daily.detail["cpu"], daily.peak_mb),
    ):
        cpu_cols = (f"{cpu_s:>8.1f}{cpu_s / base_cpu:>12.2f}" if cpu_s is not None
                    else f"{'':>8}{'':>12}")
        print(f"{label:<30}{secs:>9.1f}{secs / base.seconds:>12.2f}{cpu_cols}{peak:>9.0f}")
    full_events, day_events = first.detail["staging"]["events"], daily.detail["staging"]["events"]
    print(f"\nstaging the events: full {full_events['seconds']:.1f} s ({full_events['cpu']:.1f} "
          f"CPU s, {full_events['rows_in']:,} rows); the day's {day_events['rows_in']:,} "
          f"({day_events['mode']}): {day_events['seconds']:.2f} s "
          f"({day_events['cpu']:.2f} CPU s) = {day_events['seconds'] / full_events['seconds']:.1%}"
          f" of the full staging ({day_events['cpu'] / full_events['cpu']:.1%} in CPU)")
    verdict = "met" if stage_s <= 3 * base.seconds and first.peak_mb < 4096 else "NOT met"
    print(f"target (staging within 3x of the bare load, peak < 4 GB): {verdict}")
    path = save_report("ingest", {
        "rows": {"contacts": contacts, "orders": orders, "events": events},
        "baseline": base, "run": first, "rerun": rerun, "daily": daily,
        "ratios": {"load": load_s / base.seconds, "stage": stage_s / base.seconds,
                   "stage_cpu": stage_cpu / base_cpu, "run": first.seconds / base.seconds,
                   "daily_events_staging": day_events["seconds"] / full_events["seconds"],
                   "daily_events_staging_cpu": day_events["cpu"] / full_events["cpu"]},
    })
    print(f"report: {path}")
    return 0 if first.detail["ok"] and daily.detail["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
