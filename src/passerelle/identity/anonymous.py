"""Anonymous visitors stitched to the person they turn out to be.

A site sees a device (``anonymousId``) long before it knows who holds it. The day that
visitor logs in, subscribes or is aliased, one call carries both identifiers, and from then
on every event of that device, the earlier ones included, belongs to the person. Evidence
that ``anonymous_id`` X is person P:

- ``event``: an event with ``anonymous_id`` X that is attributed to P by its ``user_id`` or
  ``email`` (an identify call after a login, a tracked purchase of a logged-in visitor);
- ``alias``: a row of the collector's ``identity_aliases`` view (identify and alias calls)
  whose ``user_id`` is a customer record of P; an alias call's ``previousId`` (an earlier
  anonymous id, or a user id the site no longer uses) is stitched the same way.

An identifier with evidence for two people or more (a shared family tablet, a shop's demo
device) is stitched to nobody and counted as ambiguous: attributing a whole device's history
to the wrong person is worse than attributing it to no one.

The result is the table ``identity_anonymous_ids``, rebuilt after every identity resolution
and whenever events arrive; :func:`passerelle.identity.attribution.person_events` reads it, so
traits, segments, journeys and the 360° view all see the stitched events.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir

from passerelle.engines.base import Engine
from passerelle.identity.tables import ANONYMOUS_IDS, PERSON_MAP
from passerelle.project.models import SourceConfig

ALIASES_VIEW = "identity_aliases"  # written by the collector's loader
ANONYMOUS_IDS_SCHEMA = ibis.schema({
    "anonymous_id": "string", "person_id": "string", "evidence": "string",
    "first_seen": "timestamp", "last_seen": "timestamp", "run_id": "string",
})


@dataclass
class StitchResult:
    stitched: int  # identifiers attributed to exactly one person
    ambiguous: int  # identifiers with evidence for several people: attributed to nobody


def stitch_anonymous(engine: Engine, sources: Mapping[str, SourceConfig],
                     run_id: str) -> StitchResult:
    """Rebuild ``identity_anonymous_ids`` from the events and the collector's aliases."""
    from passerelle.identity.attribution import attributed_events

    parts: list[ir.Table] = []
    if engine.exists("events"):
        known = attributed_events(engine, sources)
        seen = known.filter(known.anonymous_id.notnull() & (known.anonymous_id != ""))
        parts.append(seen.select(identifier=seen.anonymous_id.cast(dt.string),
                                 person_id=seen.person_id, evidence=ibis.literal("event"),
                                 at=seen.timestamp.cast(dt.timestamp)))
    if engine.exists(ALIASES_VIEW):
        parts += _alias_evidence(engine, sources)
    if not parts:
        engine.drop(ANONYMOUS_IDS)
        engine.create_empty(ANONYMOUS_IDS, ANONYMOUS_IDS_SCHEMA)
        return StitchResult(0, 0)
    evidence = parts[0].union(*parts[1:], distinct=False) if len(parts) > 1 else parts[0]
    grouped = evidence.group_by(evidence.identifier).aggregate(
        people=evidence.person_id.nunique(), person_id=evidence.person_id.min(),
        evidence=evidence.evidence.min(),  # "alias" < "event": the stronger one when both
        first_seen=evidence.at.min(), last_seen=evidence.at.max())
    stitched = grouped.filter(grouped.people == 1).select(
        anonymous_id=grouped.identifier, person_id=grouped.person_id,
        evidence=grouped.evidence, first_seen=grouped.first_seen,
        last_seen=grouped.last_seen, run_id=ibis.literal(run_id))
    engine.replace_table(ANONYMOUS_IDS, stitched)
    ambiguous = grouped.filter(grouped.people > 1).count()
    return StitchResult(stitched=engine.count(ANONYMOUS_IDS),
                        ambiguous=int(engine.to_arrow(ambiguous).as_py()))


def _alias_evidence(engine: Engine, sources: Mapping[str, SourceConfig]) -> list[ir.Table]:
    """(identifier, person) from identify and alias calls whose user id is a known record."""
    aliases = engine.table(ALIASES_VIEW)
    pairs = [(aliases.source == name, ibis.literal(cfg.customer_source))
             for name, cfg in sorted(sources.items())
             if cfg.entity == "events" and cfg.customer_source]
    if not pairs:
        return []
    aliases = aliases.mutate(_customer_source=ibis.cases(*pairs, else_=ibis.null(dt.string)))
    pm = engine.table(PERSON_MAP)
    joined = aliases.join(pm, (aliases._customer_source == pm.source)
                          & (aliases.user_id == pm.record_id))
    out = []
    for column in ("anonymous_id", "previous_id"):
        rows = joined.filter(joined[column].notnull() & (joined[column] != ""))
        out.append(rows.select(identifier=rows[column].cast(dt.string),
                               person_id=rows.person_id, evidence=ibis.literal("alias"),
                               at=rows.first_seen.cast(dt.timestamp)))
    return out


def anonymous_ids_of(engine: Engine, person_id: str) -> list[str]:
    """The anonymous identifiers stitched to one person (for the 360° view)."""
    if not engine.exists(ANONYMOUS_IDS):
        return []

    def build(v: Mapping[str, ir.StringValue]) -> ir.Table:
        t = engine.table(ANONYMOUS_IDS)
        return t.filter(t.person_id == v["person"]).select("anonymous_id").order_by(
            "anonymous_id")

    rows = engine.prepared("anonymous_ids_of", {"person": person_id}, build)
    return rows.column("anonymous_id").to_pylist()
