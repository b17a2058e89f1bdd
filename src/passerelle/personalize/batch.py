"""Batch decisions: one placement decided for every member of an audience, in SQL.

The same rules as :func:`passerelle.personalize.decide`, as Ibis expressions over the
whole audience: the audience's treated members (its own holdout is never sent), the
placement's stable holdout drawn by the same hash in SQL, eligibility and consent from the
offers' conditions, caps already reached and budgets left read from ``decision_counters``.
Offers are taken in priority order (a loop over the few offers, never over people): each
takes the people still without a message who may get it, within its remaining budget
(the lowest hash buckets first, so a re-run picks the same people). The context is the
same for everyone (the send's channel, the time of the send).

Writes ``batch_decisions`` (placement, audience, person_id, offer, decision_id, group,
probability, decided_at) and counts the sends in ``decision_counters``. The message is
rendered by the sending tool from the offer's name (see docs/personalisation.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir
import sqlglot as sg
import sqlglot.expressions as sge

from passerelle.engines.base import Engine
from passerelle.measure.design import assign_expr
from passerelle.measure.hashing import bucket_expr, join_key
from passerelle.personalize import caps as _caps
from passerelle.personalize.context import decision_context, rules_hold
from passerelle.personalize.decide import HOLDOUT, TREATED, holdout_salt
from passerelle.personalize.tables import COUNTERS, eligibility, ensure_counters
from passerelle.project.offers_models import Cap, OfferConfig, PlacementConfig

BATCH = "batch_decisions"
_TS = dt.Timestamp()
BATCH_SCHEMA = ibis.schema({
    "placement": dt.string, "audience": dt.string, "person_id": dt.string,
    "offer": dt.string, "decision_id": dt.string, "group": dt.string,
    "probability": dt.float64, "decided_at": _TS})


@dataclass
class BatchSummary:
    placement: str
    audience: str
    people: int = 0
    holdout: int = 0
    default: int = 0  # treated people with no eligible offer left: the default experience
    offers: dict[str, int] = field(default_factory=dict)  # offer -> people
    failed: dict[str, str] = field(default_factory=dict)


def _group(person_id: ir.Value, place: PlacementConfig) -> ir.StringValue:
    pct = place.holdout_percent
    if pct <= 0:
        return ibis.literal(TREATED, type=dt.string)
    return assign_expr(person_id, holdout_salt(place), {HOLDOUT: pct, TREATED: 100 - pct})


def _under_caps(engine: Engine, people: ir.Table, scope: str, name: str, caps: list[Cap],
                now: datetime) -> ir.Table:
    """``people`` without those whose counter of one of ``caps`` is at its limit."""
    c = engine.table(COUNTERS)
    for cap in caps:
        prefix = ibis.literal(_caps.cap_prefix(scope, name, cap, now), type=dt.string)
        full = c.filter(c.n >= cap.at_most)
        people = people.anti_join(full, (prefix + people.person_id) == full.key)
    return people


def _budget_left(engine: Engine, offer: OfferConfig) -> int | None:
    if offer.budget is None:
        return None
    c = engine.table(COUNTERS)
    used = engine.to_arrow(c.filter(c.key == _caps.budget_key(offer.name)).n.sum()).as_py()
    return max(offer.budget - int(used or 0), 0)


def decide_batch(project: Any, placement: str, audience: str,
                 context: Mapping[str, Any] | None = None, *,
                 now: datetime | None = None) -> BatchSummary:
    """Decide ``placement`` for every treated member of ``audience`` (see the module)."""
    from passerelle.activation.members import treated
    from passerelle.personalize.decide import placement_of
    from passerelle.personalize.service import definitions
    from passerelle.personalize.validate import project_context

    engine: Engine = project.engine
    defs = definitions(project)
    place = placement_of(defs, placement)
    now = now or datetime.now(UTC)
    values = decision_context(place, context or {}, now, project.config.timezone)
    naive = now.astimezone(UTC).replace(tzinfo=None) if now.tzinfo else now
    summary = BatchSummary(placement, audience)
    ensure_counters(engine)
    segments, kinds = project_context(project.root)

    members = treated(engine, audience).select("person_id").distinct()
    members = members.mutate(group=_group(members.person_id, place),
                             _bucket=bucket_expr(join_key(f"batch:{placement}",
                                                          members.person_id)))
    work = f"_batch_{placement}"
    engine.scratch_table(work, members)
    open_people = _under_caps(engine, engine.table(work), "p", place.name, place.caps, now)
    open_people = open_people.filter(open_people.group == TREATED)
    elig = eligibility(engine, defs, segments, kinds, naive, summary.failed)
    channel = values.get("channel")
    chosen = f"_batch_{placement}_chosen"
    engine.scratch_table(chosen, ibis.memtable([], schema=ibis.schema(
        {"person_id": dt.string, "offer": dt.string})))
    for offer in defs.offers_of(place.name):
        if offer.name in summary.failed or not rules_hold(offer.context, values) or (
                offer.channels and channel is not None and channel not in offer.channels):
            continue
        left = _budget_left(engine, offer)
        if left == 0:
            continue
        mine = elig.filter(elig.offer == offer.name)
        takers = open_people.semi_join(mine, "person_id").anti_join(
            engine.table(chosen), "person_id")
        takers = _under_caps(engine, takers, "o", offer.name, offer.caps, now)
        if left is not None:
            takers = takers.order_by(["_bucket", "person_id"]).limit(left)
        engine.con.insert(chosen, takers.select(
            "person_id", offer=ibis.literal(offer.name, type=dt.string)))

    t, c = engine.table(work), engine.table(chosen)
    rows = t.left_join(c, t.person_id == c.person_id)
    out = rows.select(
        placement=ibis.literal(placement, type=dt.string),
        audience=ibis.literal(audience, type=dt.string), person_id=t.person_id,
        offer=c.offer, decision_id=ibis.uuid().cast(dt.string), group=t.group,
        probability=ibis.literal(1.0, type=dt.float64),
        decided_at=ibis.literal(naive, type=_TS)).cast(BATCH_SCHEMA)
    engine.create_empty(BATCH, BATCH_SCHEMA)
    with engine.transaction():
        engine.execute(sge.delete(sg.table(BATCH, quoted=True), where=sge.and_(
            sg.column("placement", quoted=True).eq(sge.convert(placement)),
            sg.column("audience", quoted=True).eq(sge.convert(audience)))))
        engine.con.insert(BATCH, out)
    _count_sends(engine, defs.offers, place, chosen, now)
    mine = engine.table(BATCH)
    mine = mine.filter((mine.placement == placement) & (mine.audience == audience))
    for r in engine.to_arrow(mine.group_by(["group", "offer"]).aggregate(
            n=mine.count())).to_pylist():
        summary.people += int(r["n"])
        if r["group"] == HOLDOUT:
            summary.holdout += int(r["n"])
        elif r["offer"] is None:
            summary.default += int(r["n"])
        else:
            summary.offers[r["offer"]] = int(r["n"])
    engine.drop(work)
    engine.drop(chosen)
    return summary


def _count_sends(engine: Engine, offers: Mapping[str, OfferConfig], place: PlacementConfig,
                 chosen: str, now: datetime) -> None:
    """Add the batch's sends to the caps and budgets (one upsert over all counters)."""
    c = engine.table(chosen)
    parts = []
    for name, offer in offers.items():
        mine = c.filter(c.offer == name)
        for scope, owner, caps in (("o", name, offer.caps), ("p", place.name, place.caps)):
            for cap in caps:
                end = _caps.window_end(now, cap.minutes)
                prefix = ibis.literal(_caps.cap_prefix(scope, owner, cap, now), type=dt.string)
                parts.append(mine.select(key=prefix + mine.person_id,
                                         n=ibis.literal(1, type=dt.int64),
                                         expires_at=ibis.literal(
                                             end.replace(tzinfo=None), type=_TS)))
        if offer.budget is not None:
            parts.append(mine.aggregate(n=mine.count().cast(dt.int64)).select(
                key=ibis.literal(_caps.budget_key(name), type=dt.string), n="n",
                expires_at=ibis.null(_TS)))
    if not parts:
        return
    every = ibis.union(*parts, distinct=False)
    sums = every.group_by("key").aggregate(n=every.n.sum(), expires_at=every.expires_at.max())
    sums = sums.filter(sums.n > 0)
    # the SELECT is Ibis's compilation of an expression (names and values are literals in
    # it); the upsert around it is fixed text
    query = engine.con.compile(sums.select("key", "n", "expires_at"))
    engine.execute(sg.parse_one(
        f"INSERT INTO {COUNTERS} (key, n, expires_at) {query} ON CONFLICT (key) DO UPDATE "
        f"SET n = {COUNTERS}.n + excluded.n", read=engine.dialect))
