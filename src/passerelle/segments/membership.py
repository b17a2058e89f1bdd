"""Memberships with history, refreshed only when something could have changed.

Tables:

- ``segment_membership(segment, person_id, entered_at, run_id)``: who is in each segment now
  (``run_id``: the refresh that let them in);
- ``segment_membership_history(segment, person_id, entered_at, exited_at, entered_run,
  exited_run, exit_reason)``: one row a stay; an open stay has ``exited_at`` NULL.
  ``exit_reason`` is ``condition`` (no longer matches) or ``person_id_changed`` (the id was
  merged into another, split or removed by identity: the new id enters on the same refresh);
- ``segment_status(segment, definition_hash, inputs, members, entered, exited,
  last_refreshed_at, refresh_every, next_refresh_at, stale, status, message, run_id,
  evaluated_at)``; ``evaluated_at`` is the clock time the stored members are exact for.

A segment is recomputed when its definition (or that of a segment it references) changed,
when an input it reads changed (profiles, traits, orders, person id changes; events only
for segments with ``did`` conditions), or when it is due (``refresh_every``) and depends on
time (an ``in_last_days`` window). Otherwise it is only marked fresh. Segments over events
can also be brought up to date between runs, incrementally
(:mod:`passerelle.segments.incremental`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir
import sqlglot as sg
import sqlglot.expressions as sge

from passerelle.engines.base import Engine
from passerelle.errors import PasserelleError
from passerelle.project.segments_models import DidCondition, SegmentConfig
from passerelle.segments import activity
from passerelle.segments.compiler import PROFILES, TRAITS, compile_many
from passerelle.segments.freshness import mark_stale
from passerelle.segments.validate import activity_conditions, references
from passerelle.tables import SEGMENT_HISTORY_TABLE, SEGMENT_STATUS_TABLE

MEMBERSHIP = "segment_membership"
HISTORY = SEGMENT_HISTORY_TABLE
STATUS = SEGMENT_STATUS_TABLE
_NEXT, _EXITED, _MEMBERSHIP_NEXT = "_segment_next", "_segment_exited", "_segment_membership_next"
_TS = dt.Timestamp()
_BATCH = 10

MEMBERSHIP_SCHEMA = ibis.schema({"segment": dt.string, "person_id": dt.string,
                                 "entered_at": _TS, "run_id": dt.string})
HISTORY_SCHEMA = ibis.schema({
    "segment": dt.string, "person_id": dt.string, "entered_at": _TS, "exited_at": _TS,
    "entered_run": dt.string, "exited_run": dt.string, "exit_reason": dt.string})
STATUS_SCHEMA = ibis.schema({
    "segment": dt.string, "definition_hash": dt.string, "inputs": dt.string,
    "members": dt.int64, "entered": dt.int64, "exited": dt.int64, "last_refreshed_at": _TS,
    "refresh_every": dt.string, "next_refresh_at": _TS, "stale": dt.boolean,
    "status": dt.string, "message": dt.string, "run_id": dt.string, "evaluated_at": _TS})


@dataclass
class RefreshSummary:
    run_id: str
    refreshed: dict[str, dict[str, int]] = field(default_factory=dict)  # members/entered/exited
    unchanged: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    # refreshed from the people whose events changed: segment -> people re-evaluated
    incremental: dict[str, int] = field(default_factory=dict)


def ensure_tables(engine: Engine) -> None:
    for name, schema in ((MEMBERSHIP, MEMBERSHIP_SCHEMA), (HISTORY, HISTORY_SCHEMA),
                         (STATUS, STATUS_SCHEMA)):
        engine.create_empty(name, schema)


def definition_hash(name: str, segments: Mapping[str, SegmentConfig]) -> str:
    """Hash of a segment's definition and of every segment it references."""
    seen: dict[str, str] = {}
    todo = [name]
    while todo:
        current = todo.pop()
        if current in seen or current not in segments:
            continue
        seg = segments[current]
        seen[current] = seg.model_dump_json(by_alias=True, exclude={"audiences", "description",
                                                                    "owner", "refresh_every"})
        todo.extend(references(seg))
    return hashlib.sha256(json.dumps(seen, sort_keys=True).encode()).hexdigest()[:16]


def time_dependent(name: str, segments: Mapping[str, SegmentConfig]) -> bool:
    """Does membership move with the clock alone (an ``in_last_days`` window)?"""
    return any((c.did if isinstance(c, DidCondition) else c.bought).in_last_days is not None
               for c in activity_conditions(name, segments))


def reads_events(name: str, segments: Mapping[str, SegmentConfig]) -> bool:
    """Does the segment (or one it references) have a ``did`` condition?"""
    return any(isinstance(c, DidCondition) for c in activity_conditions(name, segments))


def input_parts(engine: Engine) -> dict[str, str]:
    """A summary of each table segments read (one small query a table): it changes
    whenever the table does."""
    parts = {}
    for name, stamp in ((PROFILES, "run_id"), (TRAITS, "computed_at"),
                        (activity.EVENTS, "at"), (activity.ORDERS, "at"),
                        (activity.PURCHASES, "at"), ("person_id_changes", "run_id")):
        if not engine.exists(name):
            parts[name] = "-"
            continue
        t = engine.table(name)
        last = t[stamp].max().cast(dt.string) if stamp in t.columns else ibis.literal("")
        row = engine.to_arrow(t.aggregate(n=t.count(), last=last)).to_pylist()[0]
        parts[name] = f"{row['n']}:{row['last']}"
    return parts


def segment_inputs(name: str, segments: Mapping[str, SegmentConfig],
                   parts: Mapping[str, str]) -> str:
    """``<everything but events>:<events>`` as two short hashes; the events half is ``-``
    for a segment without ``did`` conditions, so new events do not make it stale."""
    def digest(text: str) -> str:
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    base = "|".join(f"{k}:{v}" for k, v in sorted(parts.items()) if k != activity.EVENTS)
    events = parts.get(activity.EVENTS, "-") if reads_events(name, segments) else "-"
    return f"{digest(base)}:{digest(events) if events != '-' else '-'}"


def base_inputs(inputs: str | None) -> str:
    """The half of :func:`segment_inputs` that event-driven refreshes must find unchanged."""
    return (inputs or "").split(":")[0]


def _status_rows(engine: Engine) -> dict[str, dict]:
    s = engine.table(STATUS)
    return {r["segment"]: r for r in engine.to_arrow(s).to_pylist()}


def _to_refresh(engine: Engine, segments: Mapping[str, SegmentConfig], names: list[str],
                now: datetime, full: bool, parts: Mapping[str, str]
                ) -> tuple[list[str], list[str]]:
    status = _status_rows(engine)
    todo, unchanged = [], []
    for name in names:
        prev = status.get(name)
        if full or prev is None or prev["status"] == "failed" \
                or prev["definition_hash"] != definition_hash(name, segments) \
                or prev["inputs"] != segment_inputs(name, segments, parts) \
                or (time_dependent(name, segments) and prev["next_refresh_at"] is not None
                    and now >= prev["next_refresh_at"]):
            todo.append(name)
        else:
            unchanged.append(name)
    return todo, unchanged


def refresh_memberships(engine: Engine, segments: Mapping[str, SegmentConfig], run_id: str,
                        now: datetime, *, full: bool = False,
                        trait_kinds: Mapping[str, str] | None = None,
                        only: list[str] | None = None) -> RefreshSummary:
    """Recompute the memberships of the segments that need it, as of ``now`` (naive UTC).

    People who now match and were not members enter (a history row opens); members who no
    longer match exit (their open history row closes with ``exited_at = now``). A segment
    that fails to compile is reported in ``failed``; the others still refresh and the
    failed one keeps its previous members (marked stale).
    """
    ensure_tables(engine)
    summary = RefreshSummary(run_id)
    inputs = input_parts(engine)
    chosen = [n for n in segments if only is None or n in only]
    todo, summary.unchanged = _to_refresh(engine, segments, chosen, now, full, inputs)

    engine.drop(_NEXT)
    engine.create_empty(_NEXT, ibis.schema({"segment": dt.string, "person_id": dt.string}))
    done: list[str] = []
    parts: list[ir.Table] = []
    try:
        compiled = compile_many(engine, todo, segments, now, trait_kinds) if todo else {}
    except PasserelleError as exc:  # no profiles at all
        compiled = {}
        summary.failed = {name: exc.reason for name in todo}
    for name, members in compiled.items():
        if isinstance(members, PasserelleError):
            summary.failed[name] = members.reason
            continue
        parts.append(members.select(segment=ibis.literal(name, type=dt.string),
                                    person_id=members.person_id).distinct())
        done.append(name)
    # a few segments a statement: one round trip and one plan instead of one a segment
    for i in range(0, len(parts), _BATCH):
        batch = parts[i:i + _BATCH]
        engine.con.insert(_NEXT, ibis.union(*batch, distinct=False) if len(batch) > 1
                          else batch[0])
    if done:
        _apply(engine, done, run_id, now)
        counts = _counts(engine, done, run_id)
        summary.refreshed = {n: counts.get(n, {"members": 0, "entered": 0, "exited": 0})
                             for n in done}
    _write_status(engine, segments, chosen, summary, inputs, now, run_id)
    for name in (_NEXT, _EXITED, _MEMBERSHIP_NEXT):
        engine.drop(name)
    return summary


def _apply(engine: Engine, done: list[str], run_id: str, now: datetime) -> None:
    at = ibis.literal(now, type=_TS)
    run = ibis.literal(run_id, type=dt.string)
    nxt, cur = engine.table(_NEXT), engine.table(MEMBERSHIP)
    cur_done = cur.filter(cur.segment.isin(done))
    profiles = engine.table(PROFILES).select(_pid="person_id")
    exited = cur_done.anti_join(nxt, ["segment", "person_id"]).select("segment", "person_id")
    exited = exited.left_join(profiles, exited.person_id == profiles._pid)
    engine.replace_table(_EXITED, exited.select(
        "segment", "person_id",
        reason=ibis.ifelse(exited._pid.isnull(), "person_id_changed", "condition")))
    entered = nxt.anti_join(cur_done, ["segment", "person_id"])
    old = cur_done.select(_s="segment", _p="person_id", _at="entered_at", _run="run_id")
    kept = nxt.left_join(old, [nxt.segment == old._s, nxt.person_id == old._p])
    new_rows = kept.select(segment=kept.segment, person_id=kept.person_id,
                           entered_at=ibis.coalesce(kept._at, at),
                           run_id=ibis.coalesce(kept._run, run))
    others = cur.filter(~cur.segment.isin(done))
    engine.replace_table(_MEMBERSHIP_NEXT, others.cast(MEMBERSHIP_SCHEMA).union(
        new_rows.cast(MEMBERSHIP_SCHEMA)))

    close = close_history(now, run_id)
    opened = entered.select(
        segment=entered.segment, person_id=entered.person_id, entered_at=at,
        exited_at=ibis.null(_TS), entered_run=run, exited_run=ibis.null(dt.string),
        exit_reason=ibis.null(dt.string)).cast(HISTORY_SCHEMA)
    with engine.transaction():
        engine.execute(close)
        engine.con.insert(HISTORY, opened)
        engine.drop(MEMBERSHIP)
        engine.rename(_MEMBERSHIP_NEXT, MEMBERSHIP)


def close_history(now: datetime, run_id: str) -> sge.Expression:
    """UPDATE closing the open stays of the people in ``_segment_exited(segment, person_id,
    reason)``."""
    h = sg.table(HISTORY, quoted=True)
    x = sg.table(_EXITED, quoted=True)
    return sge.Update(
        this=h,
        expressions=[
            sge.EQ(this=sg.column("exited_at", quoted=True), expression=_ts_literal(now)),
            sge.EQ(this=sg.column("exited_run", quoted=True), expression=sge.convert(run_id)),
            sge.EQ(this=sg.column("exit_reason", quoted=True),
                   expression=sg.column("reason", table=_EXITED, quoted=True)),
        ],
        from_=sge.From(this=x),
        where=sge.Where(this=sg.and_(
            sg.column("segment", table=HISTORY, quoted=True).eq(
                sg.column("segment", table=_EXITED, quoted=True)),
            sg.column("person_id", table=HISTORY, quoted=True).eq(
                sg.column("person_id", table=_EXITED, quoted=True)),
            sg.column("exited_at", table=HISTORY, quoted=True).is_(sge.null()))),
    )


def _unchanged_at(name: str, segments: Mapping[str, SegmentConfig], prev: Mapping,
                  now: datetime) -> datetime | None:
    """Members left as they were are exact for now unless time moves them: a window
    slides, and even without one an event stamped in the future counts once it is past."""
    return prev.get("evaluated_at") if activity_conditions(name, segments) else now


def _ts_literal(now: datetime) -> sge.Expression:
    return sge.Cast(this=sge.convert(now.strftime("%Y-%m-%d %H:%M:%S.%f")),
                    to=sge.DataType.build("timestamp"))


def _counts(engine: Engine, done: list[str], run_id: str) -> dict[str, dict[str, int]]:
    m = engine.table(MEMBERSHIP)
    m = m.filter(m.segment.isin(done))
    rows = engine.to_arrow(m.group_by("segment").aggregate(
        members=m.count(), entered=(m.run_id == run_id).sum())).to_pylist()
    out = {r["segment"]: {"members": int(r["members"]), "entered": int(r["entered"] or 0),
                          "exited": 0} for r in rows}
    x = engine.table(_EXITED)
    for r in engine.to_arrow(x.group_by("segment").aggregate(n=x.count())).to_pylist():
        out.setdefault(r["segment"], {"members": 0, "entered": 0, "exited": 0})
        out[r["segment"]]["exited"] = int(r["n"])
    return out


def _write_status(engine: Engine, segments: Mapping[str, SegmentConfig], names: list[str],
                  summary: RefreshSummary, parts: Mapping[str, str], now: datetime,
                  run_id: str) -> None:
    """Status rows of ``names`` (the others are kept). ``evaluated_at`` is the clock time
    the stored members are exact for: now when recomputed, unchanged otherwise."""
    import pyarrow as pa

    previous = _status_rows(engine)
    rows = []
    for name in names:
        seg = segments[name]
        prev = previous.get(name, {})
        nxt = now + timedelta(minutes=seg.refresh_minutes)
        if name in summary.failed:
            row = {**{k: prev.get(k) for k in STATUS_SCHEMA.names}, "segment": name,
                   "refresh_every": seg.refresh_every, "stale": True, "status": "failed",
                   "message": summary.failed[name][:2000], "run_id": run_id}
            row["definition_hash"] = prev.get("definition_hash") or ""
            row["inputs"] = prev.get("inputs") or ""
        else:
            c = summary.refreshed.get(name)
            row = {"segment": name, "definition_hash": definition_hash(name, segments),
                   "inputs": segment_inputs(name, segments, parts),
                   "members": c["members"] if c else prev.get("members"),
                   "entered": c["entered"] if c else 0, "exited": c["exited"] if c else 0,
                   "last_refreshed_at": now, "refresh_every": seg.refresh_every,
                   "next_refresh_at": nxt, "stale": False,
                   "status": "refreshed" if c else "unchanged", "message": None,
                   "run_id": run_id,
                   "evaluated_at": now if c else _unchanged_at(name, segments, prev, now)}
        rows.append(row)
    kept = [r for n, r in previous.items() if n not in names]
    table = pa.Table.from_pylist(kept + rows, schema=STATUS_SCHEMA.to_pyarrow())
    engine.drop(STATUS)
    engine.append_arrow(STATUS, pa.RecordBatchReader.from_batches(table.schema,
                                                                  table.to_batches()))


# -- questions answered from the history, one query each -----------------------------------
def new_members_since(engine: Engine, segment: str, since: datetime) -> ir.Table:
    """People who entered ``segment`` after ``since`` and are still in it."""
    h = engine.table(HISTORY)
    return h.filter((h.segment == ibis.literal(segment, type=dt.string))
                    & (h.entered_at > ibis.literal(since, type=_TS))
                    & h.exited_at.isnull()).select("person_id", "entered_at", "entered_run")


def changes_since(engine: Engine, segment: str, since: datetime) -> ir.Table:
    """Entries and exits of ``segment`` after ``since``: ``person_id, change, at, run_id``
    (the diff a sync sends)."""
    h = engine.table(HISTORY)
    mine = h.filter(h.segment == ibis.literal(segment, type=dt.string))
    t = ibis.literal(since, type=_TS)
    entered = mine.filter(mine.entered_at > t).select(
        person_id=mine.person_id, change=ibis.literal("entered"), at=mine.entered_at,
        run_id=mine.entered_run)
    exited = mine.filter(mine.exited_at > t).select(
        person_id=mine.person_id, change=ibis.literal("exited"), at=mine.exited_at,
        run_id=mine.exited_run)
    return entered.union(exited, distinct=False)


def members_on(engine: Engine, segment: str, at: datetime) -> ir.Table:
    """Who was in ``segment`` at the instant ``at`` (as recorded by the refreshes)."""
    h = engine.table(HISTORY)
    when = ibis.literal(at, type=_TS)
    return h.filter((h.segment == ibis.literal(segment, type=dt.string))
                    & (h.entered_at <= when)
                    & (h.exited_at.isnull() | (h.exited_at > when))).select(
        "person_id", "entered_at", "entered_run")


def was_member(engine: Engine, segment: str, person_id: str, at: datetime) -> bool:
    m = members_on(engine, segment, at)
    hit = m.filter(m.person_id == ibis.literal(person_id, type=dt.string)).count()
    return bool(engine.to_arrow(hit).as_py())


def freshness(engine: Engine, now: datetime) -> list[dict]:
    """Every segment's status with ``stale`` as of ``now`` (past its next refresh, or its
    last refresh failed)."""
    if not engine.exists(STATUS):
        return []
    return mark_stale(engine.to_arrow(engine.table(STATUS).order_by("segment")).to_pylist(), now)
