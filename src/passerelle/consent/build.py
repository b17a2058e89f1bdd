"""The ``consent`` step: statements from customer sources and collector events, then the
current state per person and purpose, all in SQL.

``consent_statements`` has one row a statement: ``person_id, purpose, granted, stated_at,
source, origin, record, detail, run_id``. The proof of a statement is where it was read:

- ``origin = 'column'``: a column of a customer source's own data (``detail`` = the column,
  ``record`` = the source's record id), as the latest load of that record holds it;
- ``origin = 'field'``: a consent field of the standard model (``detail`` = the field);
- ``origin = 'event'``: a collector event's ``context.consent.categoryPreferences``
  (``detail`` = the category, ``record`` = the event's message id).

A record's statement is dated by its ``consent_updated_at``, else its ``updated_at``, else
when it was loaded; an event's by its timestamp.

``consents`` keeps, per person and purpose, the statement that wins under one rule: **the
latest statement wins; at the same time a withdrawal beats a grant** (then source and
record, so every engine picks the same row). A withdrawal therefore always beats an older
grant, from whichever source. Each row carries its proof and how many statements the
person made about the purpose. Both tables are rebuilt from scratch each run: person ids
change when people merge, and the statements are cheap to recompute.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir

from passerelle.engines.base import Engine
from passerelle.errors import Problem, ProjectError
from passerelle.identity.tables import PERSON_MAP, node_of
from passerelle.project.consent_models import CONSENT_FILE, ConsentConfig, SourceMapping
from passerelle.project.models import SourceConfig

CONSENT_STATEMENTS = "consent_statements"
CONSENTS = "consents"
STATEMENTS_SCHEMA = ibis.schema({
    "person_id": dt.string, "purpose": dt.string, "granted": dt.boolean,
    "stated_at": dt.timestamp, "source": dt.string, "origin": dt.string, "record": dt.string,
    "detail": dt.string, "run_id": dt.string})
CONSENTS_SCHEMA = ibis.schema({
    **dict(STATEMENTS_SCHEMA.items()), "statements": dt.int64})
_NEXT = "_consent_statements_next"


@dataclass
class ConsentSummary:
    statements: int = 0
    people: int = 0
    granted: dict[str, int] = field(default_factory=dict)  # purpose -> people granted now

    @property
    def message(self) -> str:
        per = ", ".join(f"{p} {n}" for p, n in sorted(self.granted.items()))
        return f"{self.statements} statements of {self.people} people; granted: {per or '-'}"


def _record_statements(engine: Engine, source: SourceConfig, purpose: str,
                       mapping: SourceMapping, run_id: str) -> ir.Table:
    stg = engine.table(f"stg_{source.name}")
    if mapping.field is not None:
        value = stg[mapping.field]
        rows = stg.mutate(_granted=value, _detail=ibis.literal(mapping.field))
    else:
        raw = engine.table(f"raw_{source.name}")
        if mapping.column not in raw.columns:
            raise ProjectError([Problem(
                CONSENT_FILE, f"purposes.{purpose}.sources.{source.name}: column "
                f"'{mapping.column}' is not in the source",
                hint="columns: " + ", ".join(c for c in raw.columns if not c.startswith("_")))])
        # the row staging kept for the record: same load, file and row
        r = raw.select(_rl=raw._load_id.cast(dt.string), _rf=raw._source_file.cast(dt.string),
                       _rr=raw._source_row.cast(dt.int64),
                       _value=raw[mapping.column].cast(dt.string).strip().lower())
        rows = stg.join(r, (stg._load_id == r._rl) & stg._source_file.identical_to(r._rf)
                        & (stg._source_row == r._rr))
        value = ibis.cases(
            (rows._value.isin([v.strip().lower() for v in mapping.granted]), True),
            (rows._value.isin([v.strip().lower() for v in mapping.withdrawn]), False),
            else_=ibis.null(dt.boolean))
        rows = rows.mutate(_granted=value, _detail=ibis.literal(mapping.column))
    rows = rows.filter(rows._granted.notnull())
    rows = rows.mutate(_node=node_of(rows))
    pm = engine.table(PERSON_MAP).select("node", "person_id")
    j = rows.join(pm, rows._node == pm.node)
    return j.select(
        person_id=j.person_id, purpose=ibis.literal(purpose, dt.string), granted=j._granted,
        stated_at=ibis.coalesce(j.consent_updated_at, j.updated_at, j._loaded_at)
        .cast(dt.timestamp),
        source=ibis.literal(source.name, dt.string),
        origin=ibis.literal("field" if mapping.field else "column", dt.string),
        record=j._record_id.cast(dt.string), detail=j._detail.cast(dt.string),
        run_id=ibis.literal(run_id, dt.string))


def _event_statements(engine: Engine, sources: Mapping[str, SourceConfig],
                      categories: dict[str, list[str]], run_id: str) -> list[ir.Table]:
    """``categories``: category -> purposes it states."""
    from passerelle.identity.attribution import person_events

    if not categories or not engine.exists("events"):
        return []
    e = person_events(engine, sources)
    ctx = e.context.cast(dt.json)
    prefs = engine.json_text(engine.json_text(ctx, "consent").cast(dt.json),
                             "categoryPreferences").cast(dt.json)
    e = e.mutate(_prefs=prefs).filter(lambda t: t._prefs.notnull())
    parts = []
    for category, purposes in sorted(categories.items()):
        text = engine.json_text(e._prefs, category)
        value = ibis.cases((text == "true", True), (text == "false", False),
                           else_=ibis.null(dt.boolean))
        rows = e.mutate(_granted=value).filter(lambda t: t._granted.notnull())
        for purpose in purposes:
            parts.append(rows.select(
                person_id=rows.person_id.cast(dt.string),
                purpose=ibis.literal(purpose, dt.string), granted=rows._granted,
                stated_at=rows.timestamp.cast(dt.timestamp), source=rows._source.cast(dt.string),
                origin=ibis.literal("event", dt.string), record=rows.message_id.cast(dt.string),
                detail=ibis.literal(category, dt.string),
                run_id=ibis.literal(run_id, dt.string)))
    return parts


def statements_expr(engine: Engine, config: ConsentConfig,
                    sources: Mapping[str, SourceConfig], run_id: str) -> ir.Table:
    """Every statement of every purpose, as one query."""
    parts: list[ir.Table] = []
    categories: dict[str, list[str]] = {}
    for purpose, spec in sorted(config.purposes.items()):
        for name, mapping in sorted(spec.sources.items()):
            source = sources.get(name)
            if source is not None and engine.exists(f"stg_{name}"):
                parts.append(_record_statements(engine, source, purpose, mapping, run_id))
        for category in spec.categories:
            categories.setdefault(category, []).append(purpose)
    parts += _event_statements(engine, sources, categories, run_id)
    if not parts:
        return ibis.memtable([], schema=STATEMENTS_SCHEMA)
    return ibis.union(*parts, distinct=False).cast(STATEMENTS_SCHEMA)


def current_expr(statements: ir.Table) -> ir.Table:
    """The reconciliation rule: per person and purpose, the latest statement; on equal
    times the withdrawal (``granted`` false sorts first); then source and record."""
    s = statements
    w = ibis.window(group_by=[s.person_id, s.purpose],
                    order_by=[ibis.desc(s.stated_at, nulls_first=False), ibis.asc(s.granted),
                              ibis.asc(s.source), ibis.asc(s.record)])
    ranked = s.mutate(_rank=ibis.row_number().over(w),
                      statements=s.count().over(ibis.window(group_by=[s.person_id,
                                                                      s.purpose])))
    won = ranked.filter(ranked._rank == 0).drop("_rank")
    return won.mutate(statements=won.statements.cast(dt.int64)).select(*CONSENTS_SCHEMA.names)


def build_consents(engine: Engine, config: ConsentConfig, sources: Mapping[str, SourceConfig],
                   run_id: str) -> ConsentSummary:
    """Rebuild ``consent_statements`` and ``consents``; returns what they hold."""
    engine.replace_table(_NEXT, statements_expr(engine, config, sources, run_id))
    engine.replace_table(CONSENTS, current_expr(engine.table(_NEXT)))
    engine.drop(CONSENT_STATEMENTS)
    engine.rename(_NEXT, CONSENT_STATEMENTS)
    c = engine.table(CONSENTS)
    summary = ConsentSummary(statements=engine.count(CONSENT_STATEMENTS))
    summary.people = int(engine.to_arrow(c.aggregate(n=c.person_id.nunique()))
                         .to_pylist()[0]["n"] or 0)
    ok = c.filter(c.granted)
    summary.granted = {r["purpose"]: int(r["n"]) for r in engine.to_arrow(
        ok.group_by("purpose").aggregate(n=ok.count())).to_pylist()}
    return summary
