"""What the pages show, read from the warehouse with Ibis (one small query each).

Figures stay raw numbers here; the templates format them for the reader's language.
"""

from __future__ import annotations

import re
from typing import Any

import ibis

from passerelle.core import Project
from passerelle.figures.home import (  # noqa: F401  (the pages' names for them)
    DEFINITIONS,
    INDICATORS,
    LINEAGE,
    PERIOD,
    Tile,
    home_tiles,
)
from passerelle.identity.view import mask_email, mask_phone

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
            # one lookup per person (profiles are kept sorted by person id: lookups.py)
            p = ibis.union(*[p.filter(p.person_id == i) for i in v["ids"]], distinct=False)
            return p.select(
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
    from passerelle.identity import lookups
    from passerelle.identity.tables import IDENTITY_LEDGER

    engine = project.engine
    if not nodes or not engine.exists(IDENTITY_LEDGER):
        return []
    by_node = engine.exists(lookups.LEDGER_NODES) and lookups.current(engine)

    def build(v: Any) -> Any:
        if by_node:  # the entries sorted by each record they name: one lookup per record
            t = engine.table(lookups.LEDGER_NODES)
            found = ibis.union(*[t.filter(t._node == n) for n in v["nodes"]],
                               distinct=False).drop("_node").distinct()
        else:
            t = engine.table(IDENTITY_LEDGER)
            found = t.filter(t.node_a.isin(v["nodes"]) | t.node_b.isin(v["nodes"]))
        return found.order_by([ibis.desc("at"), "node_a", "node_b"]).limit(limit)
    return engine.prepared(("ledger_of", limit, by_node), {"nodes": sorted(set(nodes))},
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
