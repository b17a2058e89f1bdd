"""Access (GDPR art. 15) and portability (art. 20): everything held about a person, as one
JSON document.

The rows are found exactly as an erasure would find them (:mod:`passerelle.privacy.footprint`),
so the answer to "what do you hold about me?" is also the list of what "forget me" removes:
the source records with their lineage (which file, which row, when loaded), the orders,
order lines, events and campaign sends carrying the person's identifiers, and every derived
table (golden record, traits and their history, segment memberships, audiences, exports,
identity links and the ledger of who linked them).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from passerelle.engines.base import Engine
from passerelle.privacy.audit import record_request
from passerelle.privacy.footprint import derived_tables, footprint
from passerelle.privacy.suppressions import suppressed
from passerelle.project.load import ProjectDefinition
from passerelle.runlog import new_run_id, utcnow


def access_report(project: ProjectDefinition, engine: Engine, person_id: str, *,
                  requested_by: str | None = None,
                  records: Sequence[str] | None = None) -> dict[str, Any]:
    """The whole footprint of one person (or of some of their records, when identity merged
    two people), registered as an access request."""
    fp = footprint(engine, person_id, records, project.sources)
    hashes = fp.hashes()
    sources: dict[str, list[dict[str, Any]]] = {}
    for source in sorted(project.sources.values(), key=lambda s: s.name):
        name = f"stg_{source.name}"
        if not engine.exists(name):
            continue
        stg = engine.table(name)
        condition = suppressed(engine, stg, source, hashes)
        if condition is None:
            continue
        rows = engine.to_arrow(stg.filter(condition).order_by("_record_id")).to_pylist()
        if rows:
            sources[source.name] = rows
    derived = {name: engine.to_arrow(rows).to_pylist()
               for name, rows in derived_tables(engine, fp).items()}
    request_id = f"access-{new_run_id()}"
    report = {
        "request_id": request_id,
        "generated_at": utcnow(),
        "person_id": person_id,
        "records": fp.nodes,
        "identifiers": fp.identifiers,
        "source_rows": sources,
        "derived_rows": {k: v for k, v in derived.items() if v},
        "exports": fp.exports,
    }
    record_request(engine, request_id, "access", person_id, requested_by, None, {
        "source_rows": {k: len(v) for k, v in sources.items()},
        "derived_rows": {k: len(v) for k, v in report["derived_rows"].items()},
        "exports": len(fp.exports)})
    return report
