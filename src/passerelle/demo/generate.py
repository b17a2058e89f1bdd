"""``generate_demo``: the Maison Lumière project folder and its ground truth.

Reproducible: the same ``seed`` and the same ``today`` give byte-identical files (with the
same versions of Faker, numpy and pyarrow). The data window is the 365 days that end
yesterday, so freshness checks pass on the day the demo is generated.
"""

from __future__ import annotations

import datetime as dt
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from passerelle.demo import activity, customers, events, outputs, project
from passerelle.demo.eshop_mysql import CUSTOMERS_VIEW_NAME
from passerelle.demo.people import make_people
from passerelle.demo.pools import build_pools
from passerelle.errors import PasserelleError
from passerelle.reporter import Reporter, SilentReporter


@dataclass
class DemoManifest:
    project_dir: Path
    truth_dir: Path
    size: int
    seed: int
    counts: dict[str, int] = field(default_factory=dict)  # rows per source file / table
    seconds: float = 0.0
    end_date: dt.date | None = None  # last day with data (yesterday at generation)


def _clean(folder: Path, names: list[str]) -> None:
    for name in names:
        target = folder / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()


def generate_demo(
    project_dir: Path,
    truth_dir: Path,
    size: int = 2000,
    seed: int = 42,
    eshop_mysql: dict | None = None,
    reporter: Reporter | None = None,
    *,
    today: dt.date | None = None,
) -> DemoManifest:
    """Write the demo project (sources, data, checks, README) and its truth folder.

    Args:
        project_dir: folder of the project; its ``data/``, ``sources/`` and ``checks/``
            are replaced, anything else (a warehouse file) is left alone.
        truth_dir: folder for the ground truth; must not be inside the project.
        size: number of true people.
        seed: random seed; same seed and same ``today`` give the same bytes.
        eshop_mysql: ``{host, port, user, password, database}`` to write the e-shop as
            MariaDB tables (``type: mysql`` sources) instead of Parquet files.
        reporter: progress and messages.
        today: the generation date (default: the real current date); data ends the day
            before.
    """
    started = time.perf_counter()
    reporter = reporter or SilentReporter()
    project_dir, truth_dir = Path(project_dir), Path(truth_dir)
    if size < 50:
        raise PasserelleError(f"A demo of {size} people is too small.", "Use --size 50 or more.")
    if truth_dir.resolve().is_relative_to(project_dir.resolve()):
        raise PasserelleError(
            f"The truth folder {truth_dir} is inside the project {project_dir}.",
            "Put the ground truth beside the project, never inside it.",
        )
    today = today or dt.date.today()
    origin_day = np.datetime64(today) - np.timedelta64(365, "D")
    origin = int(origin_day.astype("datetime64[s]").astype(np.int64))
    days = origin_day + np.arange(365)
    month = days.astype("datetime64[M]").astype(np.int64) % 12 + 1
    weekday0 = int((origin_day.astype(np.int64) + 3) % 7)  # 1970-01-01 was a Thursday
    weights = activity.day_weights(weekday0, month)
    counts: dict[str, int] = {}
    data = project_dir / "data"
    _clean(project_dir, ["data", "sources", "checks", "README.md"])
    _clean(truth_dir, ["records.csv", "persons.csv", "effects.csv", "campaign_audiences.csv",
                       "experiment_assignments.csv"])

    with reporter.step("Demo: people and customer records"):
        pools = build_pools(seed)
        people = make_people(size, pools, seed)
        rng = np.random.default_rng([seed, 40])
        crm = customers.crm(people, pools, origin, rng)
        eshop = customers.eshop(people, pools, origin, rng)
        loyal = customers.loyalty(people, pools, origin, rng)
        news = customers.newsletter(people, pools, origin, rng)
    with reporter.step("Demo: purchases, campaigns and tests"):
        orders, sends, assign = activity.simulate(people, pools, crm, eshop, loyal, weights,
                                                  seed)
    with reporter.step("Demo: writing source files"):
        frng = np.random.default_rng([seed, 50])
        counts["crm_contacts"] = outputs.write_csv(data / "crm_contacts.csv", crm.columns)
        counts["loyalty_members"] = outputs.write_csv(
            data / "store" / "loyalty_members.csv", loyal.columns, ";", "cp1252", "\r\n")
        counts["newsletter_signups"] = outputs.write_csv(
            data / "newsletter" / "inscriptions.csv", news.columns, ";", "cp1252", "\r\n")
        # a stream of its own: the addresses came later, the rest of the demo is unchanged
        addresses = customers.eshop_addresses(people, pools, eshop, origin,
                                              np.random.default_rng([seed, 41]))
        tables = outputs.eshop_tables(orders, eshop, addresses, pools, origin, frng)
        if eshop_mysql is None:  # what the sources read: the customers view, the orders
            (data / "eshop").mkdir(parents=True, exist_ok=True)
            files = {CUSTOMERS_VIEW_NAME: outputs.customers_with_address(tables),
                     "ps_orders": tables["ps_orders"],
                     "ps_order_detail": tables["ps_order_detail"]}
            for name, table in files.items():
                pq.write_table(table, data / "eshop" / f"{name}.parquet", compression="zstd")
        else:
            outputs_counts = _mysql(eshop_mysql, tables)
            reporter.info(f"E-shop written to MariaDB database {eshop_mysql['database']} "
                          f"({', '.join(f'{k}: {v:,}' for k, v in outputs_counts.items())})")
            if eshop_mysql.get("password"):
                reporter.warning(f"Set {project.PASSWORD_ENV} to the MariaDB password before "
                                 "running the demo project.")
        rows_of = {CUSTOMERS_VIEW_NAME: "ps_customer"}  # the view: one row an account
        for source, table in project.ESHOP_TABLES.items():
            counts[source] = tables[rows_of.get(table, table)].num_rows
        counts["store_tickets"] = outputs.write_tickets(data / "store" / "tickets.csv", orders,
                                                        loyal, origin, frng)
        counts["ad_spend"] = outputs.write_csv(
            data / "marketing" / "ad_spend.csv", outputs.ad_spend(size, origin, weekday0, frng))
        counts["campaign_sends"] = outputs.write_csv(
            data / "marketing" / "campaign_sends.csv", outputs.campaign_sends(sends, crm, origin))
    with reporter.step("Demo: web events"):
        sess = events.sessions(people, orders, sends, assign, crm,
                               activity.owners(eshop, people.n, rng).first, weights, seed)
        rows, _files, devices, accounts = events.write_events(
            data / "events", sess, people, pools, orders, assign, eshop, origin, seed)
        counts["web_events"] = rows
    with reporter.step("Demo: project files and ground truth"):
        end = today - dt.timedelta(days=1)
        project.write_project(project_dir, eshop_mysql, counts, end.isoformat())
        truth_dir.mkdir(parents=True, exist_ok=True)
        outputs.write_csv(truth_dir / "records.csv", outputs.truth_records(
            [crm, eshop, loyal, news], people, eshop, devices, accounts))
        outputs.write_csv(truth_dir / "persons.csv", outputs.truth_persons(people, pools))
        outputs.write_csv(truth_dir / "effects.csv", outputs.truth_effects())
        audiences, exposures = outputs.truth_assignments(assign, origin)
        outputs.write_csv(truth_dir / "campaign_audiences.csv", audiences)
        outputs.write_csv(truth_dir / "experiment_assignments.csv", exposures)
    return DemoManifest(project_dir, truth_dir, size, seed, counts,
                        time.perf_counter() - started, end)


def _mysql(conn: dict, tables: dict) -> dict[str, int]:
    from passerelle.demo.eshop_mysql import write_eshop

    return write_eshop(conn, tables)
