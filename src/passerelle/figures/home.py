"""The home page's indicators (issue 17, page 1): at most seven tiles, each with its trend
against the previous period.

``project`` is anything with ``engine``, ``sources``, ``config`` and ``definition`` (a
:class:`passerelle.core.Project`, or :class:`passerelle.figures.compute.Scope` in a run).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import ibis

from passerelle.errors import PasserelleError

PERIOD = timedelta(days=90)


@dataclass
class Tile:
    key: str  # the glossary anchor: /glossary#indicator-<key>
    label: str  # English message id
    kind: str  # count, money, share, quality, incremental
    value: float | None = None
    previous: float | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    empty: str | None = None  # why there is no value (message id)

    @property
    def change(self) -> float | None:
        if self.value is None or not self.previous:
            return None
        return (self.value - self.previous) / abs(self.previous)


# The home tiles (key, label, kind) and their glossary definitions (English message ids).
INDICATORS = (
    ("customers", "Customers", "count"),
    ("active_customers", "Active customers", "count"),
    ("revenue", "Revenue", "money"),
    ("incremental_revenue", "Incremental revenue from campaigns", "incremental"),
    ("consent_email", "E-mail consent", "share"),
    ("consent_sms", "SMS consent", "share"),
    ("data_quality", "Data quality", "quality"),
)
DEFINITIONS = {
    "customers": "Customers: people with a profile (one golden record each, after identity "
                 "resolution).",
    "active_customers": "Active customers: people with at least one order (cancelled ones "
                        "excepted) in the last 90 days before the latest order.",
    "revenue": "Revenue: the amount of the orders (cancelled ones excepted) in the last 90 "
               "days before the latest order, in the project currency.",
    "incremental_revenue": "Incremental revenue from campaigns: revenue the audience's "
                           "sends caused, measured against its holdout group, with its 95% "
                           "interval.",
    "consent_email": "E-mail consent: share of customers whose golden record consents to "
                     "e-mail.",
    "consent_sms": "SMS consent: share of customers whose golden record consents to SMS.",
    "data_quality": "Data quality: share of the data-quality checks of the last run that "
                    "passed.",
}
LINEAGE = {
    "customers": ["profiles.person_id"],
    "active_customers": ["orders.ordered_at", "orders.status", "person_map.person_id"],
    "revenue": ["orders.amount", "orders.ordered_at", "orders.status"],
    "incremental_revenue": ["audience_holdouts", "activation_log", "orders.amount"],
    "consent_email": ["profiles.consent_email"],
    "consent_sms": ["profiles.consent_sms"],
    "data_quality": ["_passerelle_check_results.passed"],
}


def home_tiles(project: Any) -> tuple[list[Tile], Any]:
    """The home indicators and the end of their period (the latest order's time)."""
    engine = project.engine
    tiles = {k: Tile(k, label, kind) for k, label, kind in INDICATORS}
    if engine.exists("profiles"):
        p = engine.table("profiles")
        row = engine.to_arrow(p.aggregate(
            n=p.count(), email=p.count(where=p.consent_email),
            sms=p.count(where=p.consent_sms))).to_pylist()[0]
        tiles["customers"].value = row["n"]
        for key in ("email", "sms"):
            tiles[f"consent_{key}"].value = row[key] / row["n"] if row["n"] else None
            tiles[f"consent_{key}"].detail = {"people": row[key]}
    else:
        for key in ("customers", "consent_email", "consent_sms"):
            tiles[key].empty = "No profile yet: run the pipeline."
    period_end = _orders(project, tiles)
    _incremental(project, tiles["incremental_revenue"])
    _quality(project, tiles["data_quality"])
    return list(tiles.values()), period_end


def _orders(project: Any, tiles: dict[str, Tile]) -> Any:
    from passerelle.measure.warehouse import conversions

    engine = project.engine
    if not (engine.exists("orders") and engine.exists("person_map")):
        return None
    c = conversions(engine, project.sources)
    end = engine.to_arrow(c.aggregate(end=c.conversion_time.max())).column(0)[0].as_py()
    if end is None:
        return None
    start, before = end - PERIOD, end - 2 * PERIOD
    now = (c.conversion_time > start) & (c.conversion_time <= end)
    then = (c.conversion_time > before) & (c.conversion_time <= start)
    row = engine.to_arrow(c.aggregate(
        active=c.person_id.nunique(where=now), active_before=c.person_id.nunique(where=then),
        revenue=c.revenue.sum(where=now), revenue_before=c.revenue.sum(where=then),
    )).to_pylist()[0]
    tiles["active_customers"].value = row["active"]
    tiles["active_customers"].previous = row["active_before"]
    tiles["revenue"].value = row["revenue"] or 0.0
    tiles["revenue"].previous = row["revenue_before"] or 0.0
    return end


def _incremental(project: Any, tile: Tile) -> None:
    from passerelle.measure.holdouts import incrementality_report

    if not project.engine.exists("audience_holdouts"):
        tile.empty = "No audience with a holdout has been sent yet."
        return
    try:
        report = incrementality_report(project, project.engine)
    except PasserelleError as exc:
        tile.detail = {"error": exc.reason}
        return
    answered = [a for a in report["audiences"] if a.get("incremental_revenue")]
    if not report["audiences"]:
        tile.empty = "No audience with a holdout has been sent yet."
        return
    tile.detail = {"level": report["level"], "currency": report["currency"],
                   "audiences": report["audiences"][:3]}
    if len(answered) == 1:  # one figure, one interval; several stay side by side
        tile.value = answered[0]["incremental_revenue"]["estimate"]


def _quality(project: Any, tile: Tile) -> None:
    from passerelle.staging.checks import RESULTS_TABLE

    engine = project.engine
    if not engine.exists(RESULTS_TABLE):
        tile.empty = "No check has run yet."
        return
    r = engine.table(RESULTS_TABLE)
    runs = engine.to_arrow(r.group_by("run_id").aggregate(
        at=r.checked_at.max(), total=r.count(), passed=r.count(where=r.passed))
        .order_by(ibis.desc("at")).limit(2)).to_pylist()
    if not runs:
        tile.empty = "No check has run yet."
        return
    tile.value = runs[0]["passed"] / runs[0]["total"]
    tile.detail = {"passed": runs[0]["passed"], "total": runs[0]["total"]}
    if len(runs) > 1:
        tile.previous = runs[1]["passed"] / runs[1]["total"]
