"""The serving tables in the warehouse: what decisions read, built in SQL by a refresh.

- ``decision_ids`` (id, person_id): every identifier a caller may use (person id, customer
  ids, source record references, e-mail, anonymous ids), indexed;
- ``decision_people``: person_id, the golden fields and traits (``trait__<name>``) the
  offers' templates use, and for each placement that learns per segment the person's
  cell (``cell__<placement>``: the first of its segments they are in), indexed;
- ``decision_eligibility`` (person_id, offer): who may get which offer now (segment or
  inline condition, and consent), indexed;
- ``decision_counters`` (key, n, expires_at): caps and budgets (see :mod:`.caps`).

A request reads three indexed rows at most; it never scans a warehouse table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir
import sqlglot as sg
import sqlglot.expressions as sge

from passerelle.engines.base import Engine
from passerelle.personalize.context import PersonalizeError
from passerelle.personalize.validate import inline_segment
from passerelle.project.offers_models import OfferConfig, OfferDefinitions
from passerelle.project.segments_models import SegmentConfig
from passerelle.segments.compiler import PROFILES, TRAITS, VALUE_COLUMN, compile_many
from passerelle.segments.kinds import SegmentError

IDS, PEOPLE, ELIGIBILITY, COUNTERS = ("decision_ids", "decision_people",
                                      "decision_eligibility", "decision_counters")
TRAIT_PREFIX = "trait__"
ELIGIBILITY_SCHEMA = ibis.schema({"person_id": dt.string, "offer": dt.string})


@dataclass
class StoreSummary:
    people: int = 0
    ids: int = 0
    eligible: dict[str, int] = field(default_factory=dict)  # offer -> people
    failed: dict[str, str] = field(default_factory=dict)  # offer -> why it was left out
    redis: bool = False
    posteriors: int = 0  # rows of decision_posteriors (learned placements)


def consent_predicate(engine: Engine, p: ir.Table, purpose: str) -> ir.BooleanValue:
    """The consent an offer needs: a purpose of consent.yml, or the channel words of before
    purposes (email: ``email_marketing``, sms: ``sms_marketing``, ads: either of them, as
    ad audiences of the marketing flags do; none: everyone). A consent never expressed is
    none."""
    from passerelle.consent.grants import granted

    def ok(name: str) -> ir.BooleanValue:
        g = granted(engine, p, name)
        return g if g is not None else ibis.literal(False)

    if purpose == "none":
        return ibis.literal(True)
    if purpose == "ads":
        return ok("email_marketing") | ok("sms_marketing")
    return ok({"email": "email_marketing", "sms": "sms_marketing"}.get(purpose, purpose))


def _only(t: ir.Table, who: ir.Table | None) -> ir.Table:
    """``t`` limited to the people of ``who`` (a table with ``person_id``), or all of it."""
    return t if who is None else t.filter(t.person_id.cast(dt.string).isin(who.person_id))


def eligibility(engine: Engine, defs: OfferDefinitions, segments: Mapping[str, SegmentConfig],
                trait_kinds: Mapping[str, str] | None, now: datetime,
                failed: dict[str, str], who: ir.Table | None = None) -> ir.Table:
    """(person_id, offer) for every offer a person may get now (or only the people of
    ``who``, their segments evaluated for them alone); offers whose condition cannot
    compile go to ``failed`` with the reason."""
    if not engine.exists(PROFILES):
        raise PersonalizeError("There is no profiles table yet: decisions need people.",
                               "Run `passerelle run` with an identity.yml first.")
    every = dict(segments)
    target: dict[str, str | None] = {}
    for offer in defs.offers.values():
        elig = offer.eligibility
        if elig is None:
            target[offer.name] = None
        elif elig.segment is not None:
            target[offer.name] = elig.segment
        else:
            inline = inline_segment(offer)
            every[inline.name] = inline
            target[offer.name] = inline.name
    names = sorted({n for n in target.values() if n is not None})
    compiled = compile_many(engine, names, every, now, trait_kinds,
                            _within(names, who)) if names else {}
    p = _only(engine.table(PROFILES), who)
    parts = []
    for name, offer in sorted(defs.offers.items()):
        cond = consent_predicate(engine, p, offer.consent)
        seg = target[name]
        if seg is not None:
            members = compiled.get(seg)
            if isinstance(members, SegmentError) or members is None:
                failed[name] = members.reason if members is not None else "not compiled"
                continue
            cond = cond & p.person_id.isin(members.person_id)
        rows = p.filter(cond)
        parts.append(rows.select(person_id=rows.person_id.cast(dt.string),
                                 offer=ibis.literal(name, type=dt.string)))
    if not parts:
        return ibis.memtable([], schema=ELIGIBILITY_SCHEMA)
    return ibis.union(*parts, distinct=False) if len(parts) > 1 else parts[0]


def template_columns(offers: Mapping[str, OfferConfig]) -> tuple[list[str], list[str]]:
    """(golden fields, traits) some template uses."""
    fields = sorted({f for o in offers.values() for f in o.fields})
    traits = sorted({t for o in offers.values() for t in o.traits})
    return fields, traits


def _within(names: list[str], who: ir.Table | None) -> dict[str, ir.Table] | None:
    return None if who is None else {n: who for n in names}


def people(engine: Engine, defs: OfferDefinitions,
           trait_kinds: Mapping[str, str] | None, who: ir.Table | None = None) -> ir.Table:
    """One row a person (everyone, or the people of ``who``): the fields and traits
    templates use."""
    p = _only(engine.table(PROFILES), who)
    fields, traits = template_columns(defs.offers)
    base = p.select("person_id", *[f for f in fields if f in p.columns])
    if not traits or not engine.exists(TRAITS):
        return base.mutate(**{f"{TRAIT_PREFIX}{n}": ibis.null(dt.string) for n in traits})
    t = _only(engine.table(TRAITS), who)
    kinds = trait_kinds or {}
    t = t.filter(t.trait.isin(traits))
    per = t.group_by("person_id").aggregate(**{
        f"{TRAIT_PREFIX}{n}": t[VALUE_COLUMN.get(kinds.get(n, "text"), "value_text")].max(
            where=t.trait == n) for n in traits})
    joined = base.left_join(per, base.person_id == per.person_id)
    return joined.select(*[base[c] for c in base.columns],
                         *[per[f"{TRAIT_PREFIX}{n}"] for n in traits])


def with_cells(engine: Engine, rows: ir.Table, defs: OfferDefinitions,
               segments: Mapping[str, SegmentConfig], trait_kinds: Mapping[str, str] | None,
               now: datetime, failed: dict[str, str], who: ir.Table | None = None
               ) -> ir.Table:
    """``rows`` (one a person) with ``cell__<placement>`` for each placement that learns per
    segment: the first of its ``learn_per`` segments the person is in, else ``other``
    (``who``: the segments evaluated for those people only, the people of ``rows``)."""
    from passerelle.personalize.bandit import CELL_PREFIX, OTHERS

    per = {n: p.learn_per for n, p in defs.placements.items()
           if p.ranking == "learned" and isinstance(p.learn_per, list)}
    if not per:
        return rows
    names = sorted({s for listed in per.values() for s in listed})
    compiled = compile_many(engine, names, dict(segments), now, trait_kinds,
                            _within(names, who))
    cells = {}
    for placement, listed in per.items():
        cases = []
        for seg in listed:
            members = compiled.get(seg)
            if isinstance(members, SegmentError) or members is None:
                failed[f"placement {placement}"] = (
                    f"segment {seg}: " + (members.reason if members is not None
                                          else "not compiled"))
                continue
            cases.append((rows.person_id.isin(members.person_id.cast(dt.string)), seg))
        cells[f"{CELL_PREFIX}{placement}"] = ibis.cases(*cases, else_=OTHERS) if cases \
            else ibis.literal(OTHERS, type=dt.string)
    return rows.mutate(**cells)


def identifier_pairs(engine: Engine) -> ir.Table:
    """(id, person_id) for every identifier of a person a caller may send, as the
    warehouse has them (an identifier two people share appears once for each)."""
    from passerelle.identity.anonymous import ANONYMOUS_IDS
    from passerelle.identity.tables import PERSON_MAP

    p = engine.table(PROFILES)

    def part(t: ir.Table, value: ir.Value) -> ir.Table:
        return t.select(id=value.cast(dt.string), person_id=t.person_id.cast(dt.string))

    parts = [part(p, p.person_id), part(p, p.customer_id), part(p, p.email.lower())]
    if engine.exists(PERSON_MAP):
        pm = engine.table(PERSON_MAP)
        parts += [part(pm, pm.node), part(pm, pm.record_id)]
    if engine.exists(ANONYMOUS_IDS):
        a = engine.table(ANONYMOUS_IDS)
        parts.append(part(a, a.anonymous_id))
    every = ibis.union(*parts, distinct=False)
    return every.filter(every.id.notnull() & (every.id != ""))


def identifiers(engine: Engine, ids: ir.Table | None = None) -> ir.Table:
    """Every identifier of a person that a caller may send (or only those of ``ids``, a
    table with ``id``), mapped to its person."""
    every = identifier_pairs(engine)
    if ids is not None:
        every = every.filter(every.id.isin(ids.id))
    # an identifier two people share (rare: a family e-mail) resolves to one of them, the
    # same one every time
    return every.group_by("id").aggregate(person_id=every.person_id.min())


def create_index(engine: Engine, table: str, column: str) -> None:
    engine.execute(sge.Create(
        this=sge.Index(this=sg.to_identifier(f"ix_{table}_{column}", quoted=True),
                       table=sg.table(table, quoted=True),
                       params=sge.IndexParameters(columns=[sg.column(column, quoted=True)])),
        kind="INDEX", exists=True))


def ensure_counters(engine: Engine) -> None:
    if engine.exists(COUNTERS):
        return
    engine.execute(sg.parse_one(
        f"CREATE TABLE IF NOT EXISTS {COUNTERS} (key VARCHAR PRIMARY KEY, n BIGINT NOT NULL, "
        "expires_at TIMESTAMP)", read="postgres"))


def expire_counters(engine: Engine, now: datetime) -> None:
    """Forget the counters of windows that are over (budgets never expire)."""
    from passerelle.personalize.caps import _utc

    at = sge.cast(sge.convert(_utc(now).replace(tzinfo=None).isoformat(sep=" ")),
                  sge.DataType.build("timestamp"))
    engine.execute(sge.delete(sg.table(COUNTERS, quoted=True),
                              where=sge.LT(this=sg.column("expires_at"), expression=at)))


def write_tables(engine: Engine, defs: OfferDefinitions, segments: Mapping[str, SegmentConfig],
                 trait_kinds: Mapping[str, str] | None, now: datetime) -> StoreSummary:
    """(Re)build the serving tables in the warehouse."""
    summary = StoreSummary()
    elig = eligibility(engine, defs, segments, trait_kinds, now, summary.failed)
    persons = with_cells(engine, people(engine, defs, trait_kinds), defs, segments,
                         trait_kinds, now, summary.failed)
    # sorted on the look-up key: DuckDB answers a point query from the row groups whose
    # min/max hold the key (it does not use the index for it), ~8x faster than unsorted
    for name, expr, key in ((ELIGIBILITY, elig, "person_id"), (PEOPLE, persons, "person_id"),
                            (IDS, identifiers(engine), "id")):
        engine.replace_table(name, expr.order_by(key))
    for name, column in ((ELIGIBILITY, "person_id"), (PEOPLE, "person_id"), (IDS, "id")):
        create_index(engine, name, column)
    ensure_counters(engine)
    expire_counters(engine, now)
    e = engine.table(ELIGIBILITY)
    summary.eligible = {r["offer"]: int(r["n"]) for r in engine.to_arrow(
        e.group_by("offer").aggregate(n=e.count())).to_pylist()}
    summary.people, summary.ids = engine.count(PEOPLE), engine.count(IDS)
    return summary
