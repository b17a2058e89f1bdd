"""What the pages show, read from the warehouse with Ibis (one small query each).

Figures stay raw numbers here; the templates format them for the reader's language.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import ibis

from passerelle.core import Project
from passerelle.errors import PasserelleError
from passerelle.identity.view import mask_email, mask_phone

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


def home_tiles(project: Project) -> tuple[list[Tile], Any]:
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


def _orders(project: Project, tiles: dict[str, Tile]) -> Any:
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


def _incremental(project: Project, tile: Tile) -> None:
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


def _quality(project: Project, tile: Tile) -> None:
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


# --------------------------------------------------------------------------- customers
PERSON_ID = re.compile(r"P[0-9a-f]{12}")  # identity.ledger's ids ("P" + 12 hex digits)


def person_profile(project: Project, query: str, mask: bool) -> dict[str, Any]:
    """The 360° view of the person ``query`` designates. A person id (the search's links)
    goes straight to the view, without the search for any identifier it would otherwise
    run first; anything else (or an id no person has) is looked up as before."""
    from passerelle.identity import service
    from passerelle.identity.view import PersonNotFound, person_view

    if PERSON_ID.fullmatch(query):
        try:
            return person_view(
                project.engine, query,
                orders_sources=service.customer_sources(project.definition, "orders"),
                events_sources=service.customer_sources(project.definition, "events"),
                mask_pii=mask)
        except PersonNotFound:
            pass
    return service.profile(project.definition, project.engine, query, mask_pii=mask)


def search_rows(project: Project, hits: list[dict[str, Any]], mask: bool) -> list[dict]:
    """The found persons with the golden fields a list needs (masked for the role)."""
    engine = project.engine
    ids = [h["person_id"] for h in hits]
    found: dict[str, dict] = {}
    if ids and engine.exists("profiles"):
        def build(v: Any) -> Any:
            p = engine.table("profiles")
            return p.filter(p.person_id.isin(v["ids"])).select(
                "person_id", "first_name", "last_name", "email", "phone", "city", "country",
                "record_count")
        rows = engine.prepared("search_rows", {"ids": ids}, build).to_pylist()
        found = {r["person_id"]: r for r in rows}
    out = []
    for h in hits:
        row = dict(found.get(h["person_id"], {"person_id": h["person_id"]}))
        if mask:
            row["email"], row["phone"] = mask_email(row.get("email")), mask_phone(
                row.get("phone"))
        out.append({**row, "matched_by": h.get("matched_by", []), "nodes": h.get("nodes", [])})
    return out


def segments_of(project: Project, person_id: str) -> list[dict]:
    from passerelle.segments.membership import MEMBERSHIP

    engine = project.engine
    if not engine.exists(MEMBERSHIP):
        return []
    def build(v: Any) -> Any:
        m = engine.table(MEMBERSHIP)
        return m.filter(m.person_id == v["person"]).select("segment", "entered_at").order_by(
            "segment")
    return engine.prepared("segments_of", {"person": person_id}, build).to_pylist()


def ledger_of(project: Project, nodes: list[str], limit: int = 100) -> list[dict]:
    """The identity ledger's entries about the person's records, newest first."""
    from passerelle.identity.tables import IDENTITY_LEDGER

    engine = project.engine
    if not nodes or not engine.exists(IDENTITY_LEDGER):
        return []
    def build(v: Any) -> Any:
        t = engine.table(IDENTITY_LEDGER)
        return t.filter(t.node_a.isin(v["nodes"]) | t.node_b.isin(v["nodes"])).order_by(
            [ibis.desc("at"), "node_a", "node_b"]).limit(limit)
    return engine.prepared(("ledger_of", limit), {"nodes": sorted(set(nodes))},
                           build).to_pylist()


def timeline(view: dict[str, Any]) -> list[dict[str, Any]]:
    """Orders and events of a person's view, newest first."""
    items = [{"at": o.get("ordered_at"), "kind": "order", "id": o.get("order_id"),
              "amount": o.get("amount"), "currency": o.get("currency"),
              "channel": o.get("channel"), "source": o.get("_source")}
             for o in view["orders"]["recent"]]
    items += [{"at": e.get("timestamp"), "kind": "event", "name": e.get("event") or e.get(
        "type"), "channel": e.get("channel"), "campaign_id": e.get("campaign_id"),
        "source": e.get("_source")} for e in view["events"]["recent"]]
    return sorted(items, key=lambda i: str(i["at"] or ""), reverse=True)


def link_evidence(edges: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each edge with its comparisons as (name, level, weight) when Splink made it."""
    out = []
    for e in edges:
        evidence = e.get("evidence") or {}
        comparisons = [{"name": k, "level": v.get("level"), "weight": v.get("weight")}
                       for k, v in evidence.items() if isinstance(v, dict) and "weight" in v]
        out.append({**e, "comparisons": comparisons,
                    "field": evidence.get("field") if isinstance(evidence, dict) else None})
    return out


# --------------------------------------------------------------------------- data health
def quarantine_summary(project: Project, details: bool, samples: int = 3
                       ) -> list[dict[str, Any]]:
    """Quarantined rows counted by source and reason, with a few sample rows of each (their
    raw values, which may be personal data, only with ``details``)."""
    from passerelle.staging.stage import QUARANTINE

    engine = project.engine
    if not engine.exists(QUARANTINE):
        return []
    q = engine.table(QUARANTINE)
    groups = engine.to_arrow(q.group_by(["source", "reason"]).aggregate(rows=q.count())
                             .order_by([ibis.desc("rows"), "source", "reason"]).limit(50)
                             ).to_pylist()
    if not groups:
        return []
    ranked = q.mutate(_n=ibis.row_number().over(
        group_by=[q.source, q.reason], order_by=[q.source_file, q.source_row]))
    columns = ["source", "reason", "source_file", "source_row"] + (["detail"] if details else [])
    picked = engine.to_arrow(ranked.filter(ranked._n < samples).select(*columns)
        .order_by(["source", "reason", "source_file", "source_row"])).to_pylist()
    for g in groups:
        g["samples"] = [s for s in picked if (s["source"], s["reason"]) == (g["source"],
                                                                           g["reason"])]
    return groups


def check_results(project: Project) -> list[dict[str, Any]]:
    """The results of the last run's data-quality checks."""
    from passerelle.staging.checks import RESULTS_TABLE

    engine = project.engine
    if not engine.exists(RESULTS_TABLE):
        return []
    r = engine.table(RESULTS_TABLE)
    last = r.order_by(ibis.desc("checked_at")).limit(1).select("run_id")
    return engine.to_arrow(r.semi_join(last, "run_id").order_by(["passed", "name"])
                           ).to_pylist()
