"""Event-driven refresh: segments over events brought up to date minutes after new events
land, re-evaluating only the people whose answer can have changed.

Why only some people need looking at: between the time ``t0`` a segment's stored members
were exact for (``segment_status.evaluated_at``) and now ``t1``, with profiles, traits and
orders unchanged, a person's answer to the whole definition (any mix of AND / OR / NOT and
references) can only change if the answer to one of its event or order conditions changed.
For a condition on rows named X in the window ``(now - D, now]`` that happens only to

- people whose rows named X changed (new, late, corrected or re-attributed events:
  ``segment_event_arrivals``);
- people with a row named X that entered the window (``at`` in ``(t0, t1]``) or left it
  (``at`` in ``(t0 - D, t1 - D]``): time passing makes people leave "did X in the last 30
  days", and enter "not bought in the last 60 days".

Those people (the candidates) are re-evaluated; entries and exits among them are applied to
``segment_membership`` and ``segment_membership_history`` exactly as a full refresh would.
Everyone else keeps their membership, which is provably unchanged. A segment falls back to
a full refresh when the shortcut does not hold: never refreshed, definition changed, an
input other than events changed (``segment_status.inputs``), its last refresh failed, or
``segment_events`` was rebuilt by `passerelle run` since it was evaluated.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir
import sqlglot as sg
import sqlglot.expressions as sge

from passerelle.engines.base import Engine
from passerelle.errors import PasserelleError
from passerelle.project.segments_models import BoughtCondition, DidCondition, SegmentConfig
from passerelle.segments import activity
from passerelle.segments.compiler import compile_many
from passerelle.segments.membership import (
    _EXITED,
    _NEXT,
    _TS,
    HISTORY,
    HISTORY_SCHEMA,
    MEMBERSHIP,
    MEMBERSHIP_SCHEMA,
    RefreshSummary,
    _status_rows,
    _write_status,
    activity_conditions,
    base_inputs,
    close_history,
    definition_hash,
    ensure_tables,
    input_parts,
    reads_events,
    refresh_memberships,
    segment_inputs,
)

_CANDIDATES, _ENTERED = "_segment_candidates", "_segment_entered"
_PAIR = ibis.schema({"segment": dt.string, "person_id": dt.string})


def event_segments(segments: Mapping[str, SegmentConfig]) -> list[str]:
    """Segments that depend on events: a ``did`` condition in them or in a segment they
    reference (so a segment built on an event segment is refreshed with it)."""
    return [name for name in segments if reads_events(name, segments)]


def refresh_after_events(engine: Engine, segments: Mapping[str, SegmentConfig],
                         run_id: str, now: datetime, *,
                         trait_kinds: Mapping[str, str] | None = None) -> RefreshSummary:
    """Bring every segment over events up to date as of ``now`` (naive UTC), after
    :func:`passerelle.segments.activity.refresh_events` logged the new events.

    Segments where the shortcut holds are refreshed from their candidates only (listed in
    ``summary.incremental`` with the number of people re-evaluated); the others in full.
    Segments without events are left alone.
    """
    ensure_tables(engine)
    activity.ensure_tracking(engine)
    summary = RefreshSummary(run_id)
    names = event_segments(segments)
    if not names:
        return summary
    parts = input_parts(engine)
    status = _status_rows(engine)
    since = activity.untracked_since(engine)
    quick, full = [], []
    for name in names:
        prev = status.get(name)
        t0 = prev.get("evaluated_at") if prev else None
        ok = (prev is not None and prev["status"] != "failed" and t0 is not None
              and t0 <= now and (since is None or t0 >= since)
              and prev["definition_hash"] == definition_hash(name, segments)
              and base_inputs(prev["inputs"])
              == base_inputs(segment_inputs(name, segments, parts)))
        (quick if ok else full).append(name)
    if full:
        done = refresh_memberships(engine, segments, run_id, now, full=True,
                                   trait_kinds=trait_kinds, only=full)
        summary.refreshed.update(done.refreshed)
        summary.failed.update(done.failed)
    if quick:
        _refresh_candidates(engine, segments, quick, {n: status[n]["evaluated_at"]
                                                      for n in quick},
                            run_id, now, trait_kinds, summary)
        _write_status(engine, segments, quick, summary, parts, now, run_id)
    _prune(engine, names)
    return summary


def candidates(engine: Engine, name: str, segments: Mapping[str, SegmentConfig],
               since: datetime, now: datetime) -> ir.Table:
    """``person_id`` of everyone whose answer to ``name`` may differ between ``since``
    and ``now`` when only events and the clock moved (see the module docstring)."""
    conds = activity_conditions(name, segments)
    parts: list[ir.Table] = []
    t0 = ibis.literal(since, type=_TS)
    t1 = ibis.literal(now, type=_TS)
    events = sorted({c.did.event for c in conds if isinstance(c, DidCondition)})
    if events and engine.exists(activity.ARRIVALS):
        a = engine.table(activity.ARRIVALS)
        parts.append(a.filter((a.arrived_at > t0) & a.event.isin(events)).select("person_id"))
    for cond in conds:
        if isinstance(cond, DidCondition):
            t = _table(engine, activity.EVENTS)
            rows = t.filter(t.event == ibis.literal(cond.did.event, type=dt.string))
            days = cond.did.in_last_days
        elif isinstance(cond, BoughtCondition) and cond.bought.category is not None:
            t = _table(engine, activity.PURCHASES)
            rows = t.filter(t.category == ibis.literal(cond.bought.category, type=dt.string))
            days = cond.bought.in_last_days
        else:
            rows = _table(engine, activity.ORDERS)
            days = cond.bought.in_last_days
        moved = (rows.at > t0) & (rows.at <= t1)
        if days is not None:
            back = timedelta(days=days)
            moved = moved | ((rows.at > ibis.literal(since - back, type=_TS))
                             & (rows.at <= ibis.literal(now - back, type=_TS)))
        parts.append(rows.filter(moved).select("person_id"))
    if not parts:
        return engine.table(activity.ARRIVALS).select("person_id").limit(0)
    return parts[0].union(*parts[1:], distinct=True) if len(parts) > 1 else parts[0].distinct()


def _table(engine: Engine, name: str) -> ir.Table:
    if not engine.exists(name):
        raise PasserelleError(f"The table {name} is missing.",
                              "Run `passerelle run` (the segments step builds it).")
    return engine.table(name)


def _refresh_candidates(engine: Engine, segments: Mapping[str, SegmentConfig],
                        names: list[str], since: Mapping[str, datetime], run_id: str,
                        now: datetime, trait_kinds: Mapping[str, str] | None,
                        summary: RefreshSummary) -> None:
    for table in (_CANDIDATES, _NEXT):
        engine.drop(table)
        engine.create_empty(table, _PAIR)
    try:
        for name in names:
            people = candidates(engine, name, segments, since[name], now)
            engine.con.insert(_CANDIDATES, people.select(
                segment=ibis.literal(name, type=dt.string), person_id=people.person_id))
        cand = engine.table(_CANDIDATES)
        within = {n: cand.filter(cand.segment == ibis.literal(n, type=dt.string))
                  for n in names}
        compiled = compile_many(engine, names, segments, now, trait_kinds, within=within)
        done = []
        for name, members in compiled.items():
            if isinstance(members, PasserelleError):
                summary.failed[name] = members.reason
                continue
            engine.con.insert(_NEXT, members.select(
                segment=ibis.literal(name, type=dt.string), person_id=members.person_id))
            done.append(name)
        if done:
            sizes = engine.to_arrow(cand.filter(cand.segment.isin(done)).group_by("segment")
                                    .aggregate(n=ibis._.count())).to_pylist()
            counted = {r["segment"]: int(r["n"]) for r in sizes}
            summary.incremental.update({n: counted.get(n, 0) for n in done})
            summary.refreshed.update(_apply(engine, done, run_id, now))
    finally:
        for table in (_CANDIDATES, _NEXT, _ENTERED, _EXITED):
            engine.drop(table)


def _apply(engine: Engine, done: list[str], run_id: str,
           now: datetime) -> dict[str, dict[str, int]]:
    """Entries and exits among the candidates, written in one transaction: the history
    closes and opens stays as a full refresh would, membership rows are deleted and
    inserted (the other members' rows are not rewritten)."""
    at = ibis.literal(now, type=_TS)
    run = ibis.literal(run_id, type=dt.string)
    nxt, cand, cur = engine.table(_NEXT), engine.table(_CANDIDATES), engine.table(MEMBERSHIP)
    keys = ["segment", "person_id"]
    mine = cur.filter(cur.segment.isin(done)).select(*keys)
    engine.replace_table(_ENTERED, nxt.anti_join(mine, keys).select(*keys))
    exited = mine.semi_join(cand, keys).anti_join(nxt, keys)
    engine.replace_table(_EXITED, exited.select(
        *keys, reason=ibis.literal("condition", type=dt.string)))
    entered = engine.table(_ENTERED)
    m, x = sg.table(MEMBERSHIP, quoted=True), sg.table(_EXITED, quoted=True)
    delete = sge.Delete(this=m, using=[x], where=sge.Where(this=sg.and_(*[
        sg.column(k, table=MEMBERSHIP, quoted=True).eq(sg.column(k, table=_EXITED, quoted=True))
        for k in keys])))
    with engine.transaction():
        engine.execute(close_history(now, run_id))
        engine.con.insert(HISTORY, entered.select(
            *keys, entered_at=at, exited_at=ibis.null(_TS), entered_run=run,
            exited_run=ibis.null(dt.string), exit_reason=ibis.null(dt.string)
        ).cast(HISTORY_SCHEMA))
        engine.execute(delete)
        engine.con.insert(MEMBERSHIP, entered.select(*keys, entered_at=at, run_id=run)
                          .cast(MEMBERSHIP_SCHEMA))
    counts = {n: {"members": 0, "entered": 0, "exited": 0} for n in done}
    m_t = engine.table(MEMBERSHIP)
    for table, key in ((m_t.filter(m_t.segment.isin(done)), "members"),
                       (entered, "entered"), (engine.table(_EXITED), "exited")):
        for r in engine.to_arrow(table.group_by("segment").aggregate(n=ibis._.count())
                                 ).to_pylist():
            counts[r["segment"]][key] = int(r["n"])
    return counts


def _prune(engine: Engine, names: list[str]) -> None:
    """Drop the arrivals every segment over events has already taken into account (one
    without an evaluation time, or failed, refreshes in full next time: it needs none)."""
    times = [r["evaluated_at"] for n, r in _status_rows(engine).items() if n in names
             and r["status"] != "failed" and r.get("evaluated_at") is not None]
    if times:
        activity.prune_arrivals(engine, min(times))


@dataclass
class EventRefreshSummary:
    run_id: str
    staged: list[str] = field(default_factory=list)  # events sources re-staged
    changed: int = 0  # (person, event) pairs whose events changed
    memberships: RefreshSummary | None = None
    audiences: dict[str, dict] = field(default_factory=dict)  # rebuilt: name -> summary
    failed_audiences: dict[str, str] = field(default_factory=dict)


def refresh_after_load(engine: Engine, definition: Any, *, now: datetime | None = None,
                       run_id: str | None = None, reporter: Any = None,
                       force: bool = False) -> EventRefreshSummary:
    """What to call once new events are loaded (``raw_<source>``): stage the events sources
    whose raw rows changed, rebuild ``segment_events`` logging who changed, refresh the
    segments over events (incrementally where possible) and rebuild their audiences.

    ``definition`` is the project's :class:`~passerelle.project.load.ProjectDefinition`.
    Does nothing (``staged`` empty) when no events source has new rows, unless ``force``.
    Orders, profiles and traits are not touched: they change with `passerelle run`. A
    project without segments over events still has its new events staged and their
    anonymous ids stitched (the decision store's refresh reads them), and nothing more.
    """
    from passerelle import state
    from passerelle.identity.anonymous import stitch_anonymous
    from passerelle.identity.tables import PERSON_MAP
    from passerelle.privacy import apply_to_sources, has_suppressions
    from passerelle.reporter import SilentReporter
    from passerelle.runlog import new_run_id, utcnow
    from passerelle.segments.audience import write_audience
    from passerelle.segments.kinds import trait_kinds as kinds_of
    from passerelle.staging import stage_source
    from passerelle.staging.unify import stage_fingerprint, unify_entities

    now = now or utcnow()
    out = EventRefreshSummary(run_id or new_run_id())
    defs = definition.segments
    over_events = defs is not None and bool(event_segments(defs.segments))
    for source in definition.sources.values():
        if source.entity != "events" or not engine.exists(f"raw_{source.name}"):
            continue
        # the same fingerprint `passerelle run` keeps, so it does not stage the rows again
        print_ = stage_fingerprint(definition, engine, source)
        if engine.exists(f"stg_{source.name}") and state.is_current(
                engine, f"stage:{source.name}", print_):
            continue
        stage_source(engine, source, definition.config, reporter or SilentReporter(),
                     out.run_id)
        state.remember(engine, f"stage:{source.name}", print_, out.run_id)
        out.staged.append(source.name)
    if not out.staged and not force:
        return out
    if has_suppressions(engine):  # erased people's new events go, as in `passerelle run`
        apply_to_sources(engine, [definition.sources[n] for n in out.staged],
                         request_id=f"run:{out.run_id}")
    unify_entities(definition, engine)
    if engine.exists(PERSON_MAP):  # a visitor who just logged in brings their past visits
        stitch_anonymous(engine, definition.sources, out.run_id)
    if not over_events:
        return out
    out.changed = activity.refresh_events(engine, definition.sources, now)
    kinds = kinds_of(definition.traits) if definition.traits is not None else None
    out.memberships = refresh_after_events(engine, defs.segments, out.run_id, now,
                                           trait_kinds=kinds)
    moved = {n for n, c in out.memberships.refreshed.items() if c["entered"] or c["exited"]}
    for name, audience in defs.audiences.items():
        if audience.segment not in moved:
            continue
        try:
            out.audiences[name] = write_audience(engine, audience, now, out.run_id).as_dict()
        except PasserelleError as exc:
            out.failed_audiences[name] = exc.reason
    return out
