"""The serving store brought up to date for the people new events and identify calls
touched, seconds after they land, without rebuilding it for everyone.

Who is touched (both read in SQL):

- people of the events an event-driven refresh staged: the events of the loads after the
  last one staged before it (:func:`mark`, :func:`refresh_loaded`), or, for callers
  that log arrivals themselves, ``segment_event_arrivals`` since a time
  (:func:`refresh_touched`);
- people with an identifier the store does not map to them yet (an identify call that
  stitched an anonymous id, a new record): the identifiers of now against
  ``decision_ids``.

For them only, the rows of ``decision_people``, ``decision_eligibility`` and
``decision_ids`` are computed as a full refresh would (same expressions, filtered on the
touched people) and replaced in one transaction; with Redis configured, their keys in the
current generation are rewritten. Everyone else keeps their rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir
import sqlglot as sg
import sqlglot.expressions as sge

from passerelle.engines.base import Engine
from passerelle.personalize.profiles import write_serving
from passerelle.personalize.tables import (
    ELIGIBILITY,
    IDS,
    PEOPLE,
    eligibility,
    identifier_pairs,
    identifiers,
    people,
    with_cells,
)
from passerelle.personalize.validate import load_offers, project_context

TOUCHED, NEW_IDS = "_decision_touched", "_decision_touched_ids"
ALIAS_LOG = "_identity_alias_log"  # the collector's log of identify and alias calls


def changed_identifiers(engine: Engine, after: str) -> ir.Table:
    """``id``: the identifiers the loads after load id ``after`` brought (load ids sort by
    time): the anonymous and user ids and e-mails of their events, and the ids of the
    identify and alias calls the collector logged. Between two full refreshes, they are
    the only way an identifier appears or moves (stitching follows this evidence)."""
    def ids(t: ir.Table, columns: list[str]) -> list[ir.Table]:
        t = t.filter(t._load_id > after)
        return [t.select(id=(t[c].lower() if c == "email" else t[c]).cast(dt.string))
                for c in columns if c in t.columns]

    parts: list[ir.Table] = []
    if engine.exists("events") and "_load_id" in engine.table("events").columns:
        parts += ids(engine.table("events"), ["anonymous_id", "user_id", "email"])
    if engine.exists(ALIAS_LOG):
        parts += ids(engine.table(ALIAS_LOG), ["anonymous_id", "previous_id", "user_id"])
    if not parts:
        return ibis.memtable({"id": []}, schema={"id": "string"})
    every = ibis.union(*parts, distinct=True)
    return every.filter(every.id.notnull() & (every.id != ""))


def load_bound(since: datetime) -> str:
    """The load id every load made at or after ``since`` sorts after."""
    at = since.astimezone(UTC).replace(tzinfo=None) if since.tzinfo else since
    return at.strftime("%Y%m%dT%H%M%S%f")


def touched_people(engine: Engine, since: datetime | None,
                   after_load: str | None = None) -> ir.Table:
    """``person_id`` of everyone whose decision inputs changed (see the module's doc):
    people with arrivals logged since ``since``, and the owners, new and former, of the
    identifiers the loads after ``after_load`` (else those made since ``since``) brought,
    where the store maps them otherwise; only those identifiers are compared with the
    store, never every identifier of the warehouse."""
    from passerelle.segments.activity import ARRIVALS

    parts = []
    if since is not None and engine.exists(ARRIVALS):
        a = engine.table(ARRIVALS)
        at = since.astimezone(UTC).replace(tzinfo=None) if since.tzinfo else since
        parts.append(a.filter(a.arrived_at >= ibis.literal(at, type=dt.timestamp))
                     .select(person_id=a.person_id.cast(dt.string)))
    after = after_load if after_load is not None else (
        load_bound(since) if since is not None else None)
    if engine.exists(IDS) and after is not None:
        changed, known = changed_identifiers(engine, after), engine.table(IDS)
        owners = identifiers(engine, changed)  # each one's owner now (a shared one: one)
        parts.append(owners.anti_join(known, ["id", "person_id"]).select("person_id"))
        # one that left its owner (moved, or no longer attributed): its former owner
        left = known.semi_join(changed, "id").anti_join(owners, ["id", "person_id"])
        parts.append(left.select("person_id"))
    if not parts:
        return ibis.memtable({"person_id": []}, schema={"person_id": "string"})
    return ibis.union(*parts, distinct=True)


def _delete_in(engine: Engine, table: str, column: str, source: str, key: str) -> None:
    engine.execute(sge.delete(sg.table(table, quoted=True), where=sg.column(
        column, quoted=True).isin(query=sg.select(sg.column(key, quoted=True)).from_(
            sg.table(source, quoted=True)))))


def _insert(engine: Engine, table: str, rows: ir.Table) -> None:
    """``rows`` into ``table`` in its columns, those of the last full refresh: a field
    templates no longer use is left empty, one they now use waits for the next one."""
    schema = engine.table(table).schema()
    engine.con.insert(table, rows.select(*[
        (rows[c] if c in rows.columns else ibis.null()).cast(t).name(c)
        for c, t in schema.items()]))


def refresh_people(root: Path | str, engine: Engine, touched: ir.Table | list[str],
                   now: datetime | None = None, *, redis_url: str | None = None,
                   redis_prefix: str = "passerelle:decide:") -> int:
    """Recompute the serving rows of the ``touched`` people (a table with ``person_id``, or
    a list of ids); returns how many people were touched. Does nothing when the store was
    never built (`passerelle run` builds it)."""
    if not (engine.exists(PEOPLE) and engine.exists(ELIGIBILITY) and engine.exists(IDS)):
        return 0
    now = now or datetime.now(UTC)
    naive = now.astimezone(UTC).replace(tzinfo=None) if now.tzinfo else now
    if isinstance(touched, list):
        touched = ibis.memtable({"person_id": [str(p) for p in touched]},
                                schema={"person_id": "string"})
    engine.replace_table(TOUCHED, touched.select("person_id").distinct())
    try:
        n = engine.count(TOUCHED)
        if n == 0:
            return 0
        defs, _ = load_offers(root)
        segments, kinds = project_context(Path(root))
        # every step limited to the touched people at its source (profiles, traits, the
        # segments' evaluation, identifiers): nothing is computed for everyone
        who = engine.table(TOUCHED)
        failed: dict[str, str] = {}
        elig = eligibility(engine, defs, segments, kinds, naive, failed, who)
        rows = with_cells(engine, people(engine, defs, kinds, who), defs, segments, kinds,
                          naive, failed, who)
        pairs = identifier_pairs(engine)
        # their identifiers, each with its owner among everyone (a shared one keeps its)
        engine.replace_table(NEW_IDS, identifiers(
            engine, pairs.filter(pairs.person_id.isin(who.person_id))))
        # identifiers of theirs no one has any more (moved ones are rewritten by their owner)
        known = engine.table(IDS)
        dropped = engine.to_arrow(known.filter(known.person_id.isin(who.person_id)).anti_join(
            engine.table(NEW_IDS), "id").select("id"))["id"].to_pylist()
        with engine.transaction():
            _delete_in(engine, ELIGIBILITY, "person_id", TOUCHED, "person_id")
            _delete_in(engine, PEOPLE, "person_id", TOUCHED, "person_id")
            _delete_in(engine, IDS, "person_id", TOUCHED, "person_id")
            _insert(engine, ELIGIBILITY, elig)
            _insert(engine, PEOPLE, rows)
            # an identifier that moved to a touched person leaves its former owner
            _delete_in(engine, IDS, "id", NEW_IDS, "id")
            _insert(engine, IDS, engine.table(NEW_IDS))
        write_serving(engine, engine.table(TOUCHED))  # the profile API's copies
        if redis_url is not None:
            _to_redis(engine, redis_url, redis_prefix, dropped)
        return n
    finally:
        engine.drop(TOUCHED)
        engine.drop(NEW_IDS)


def _to_redis(engine: Engine, url: str, prefix: str, dropped: list[str]) -> None:
    """The touched people's keys rewritten in the generation decisions read, in one
    MULTI/EXEC (the commands built in SQL, as a full load does); the ``dropped``
    identifiers removed from their buckets."""
    import redis

    from passerelle.personalize.redis_load import id_digest, write_all
    from passerelle.personalize.redis_store import load_redis

    r = redis.Redis.from_url(url)
    gen = r.get(f"{prefix}gen")
    if gen is None:
        return  # never loaded: the next full refresh loads everyone
    base = f"{prefix}{gen.decode()}:"
    width = r.get(f"{base}width")
    if width is None:  # a store of an earlier layout (a key per identifier): reloaded
        load_redis(engine, url, prefix)
        return
    who, p = engine.table(TOUCHED), engine.table(PEOPLE)
    gone = engine.to_arrow(who.filter(~who.person_id.isin(p.person_id)))
    write_all(engine, r, base, int(width), who, atomic=True)
    keys = [f"{base}{kind}:{pid}" for pid in gone["person_id"].to_pylist()
            for kind in ("p", "pr")]
    if keys:  # merged away or erased: no longer served
        r.unlink(*keys)
    pipe = r.pipeline(transaction=True)
    for any_id in dropped:
        pipe.hdel(f"{base}id:{id_digest(any_id)[:int(width)]}", any_id)
    pipe.execute()


@dataclass(frozen=True)
class Mark:
    """Where the staged events stood before an event-driven refresh: the newest load among
    them (load ids sort by time) and the time."""

    load: str | None
    at: datetime


def mark(engine: Engine) -> Mark:
    """Read before an event-driven refresh; give it to :func:`refresh_loaded` after."""
    now = datetime.now(UTC).replace(tzinfo=None)
    if not engine.exists("events") or "_load_id" not in engine.table("events").columns:
        return Mark(None, now)
    e = engine.table("events")
    return Mark(engine.to_arrow(e.aggregate(last=e._load_id.max()))["last"][0].as_py(), now)


def people_of_loads(engine: Engine, sources: Any, after: str | None) -> ir.Table:
    """``person_id`` of the events of the loads after ``after`` (every event when None),
    as attributed now (an identify call of the same load counts)."""
    from passerelle.identity.attribution import person_events
    from passerelle.identity.tables import PERSON_MAP

    if not engine.exists("events") or not engine.exists(PERSON_MAP):
        return ibis.memtable({"person_id": []}, schema={"person_id": "string"})
    e = engine.table("events")
    new = e.filter(e._load_id > after) if after is not None else e
    pe = person_events(engine, sources)
    pe = pe.filter(pe.person_id.notnull()).semi_join(
        new.select("_source", "_record_id"), ["_source", "_record_id"])
    return pe.select(person_id=pe.person_id.cast(dt.string)).distinct()


def refresh_loaded(project: Any, before: Mark, now: datetime | None = None) -> int:
    """After an event-driven refresh: the serving store of the people of the events staged
    since ``before`` (:func:`mark`), of those whose arrivals were logged since, and of those
    with new identifiers, in the warehouse and in Redis when passerelle.yml names one. (The
    arrivals alone cannot tell: the segments' refresh prunes them once taken in.)"""
    engine = project.engine
    touched = ibis.union(people_of_loads(engine, project.sources, before.load),
                         touched_people(engine, before.at, before.load), distinct=True)
    config = project.config.personalisation
    return refresh_people(project.root, engine, touched, now, redis_url=config.redis,
                          redis_prefix=config.redis_prefix)


def refresh_touched(project: Any, since: datetime | None, now: datetime | None = None) -> int:
    """After an event-driven refresh that started at ``since``: the serving store of the
    people it touched (and of those with new identifiers), in the warehouse and in Redis
    when passerelle.yml names one."""
    config = project.config.personalisation
    engine = project.engine
    return refresh_people(project.root, engine, touched_people(engine, since), now,
                          redis_url=config.redis, redis_prefix=config.redis_prefix)


__all__ = ["Mark", "mark", "people_of_loads", "refresh_loaded", "refresh_people",
           "refresh_touched", "touched_people"]
