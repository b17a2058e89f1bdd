"""Segments compiled to Ibis: one boolean predicate over ``profiles`` per segment.

Every condition becomes a predicate on the profiles row: field comparisons directly;
traits, events and orders as ``person_id IN (narrow subquery)``, which DuckDB and PostgreSQL
plan as semi joins (anti joins under ``not``); ``in_segment`` inlines the other segment's
predicate, so a reference costs no extra join; ``all``/``any`` become balanced trees, and the
depth and size of a segment once its references are inlined are bounded
(:data:`MAX_COMPILED_DEPTH`, :data:`MAX_COMPILED_CONDITIONS`) before anything recurses.
Comparisons are two-valued (an unknown value does not match, and ``not`` of it does), so
``not`` means "everyone else".

User values only ever become Ibis literals; names are checked against the schema first.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from itertools import combinations

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir

from passerelle.engines.base import Engine
from passerelle.metrics.expr import balanced
from passerelle.project.segments_models import (
    AllCondition,
    AnyCondition,
    BoughtCondition,
    DidCondition,
    FieldCondition,
    InSegmentCondition,
    NotCondition,
    SegmentConfig,
    TraitCondition,
)
from passerelle.segments import activity
from passerelle.segments.kinds import (
    DATE,
    NUMBER,
    TEXT,
    SegmentError,
    coerce,
    schema_kinds,
    value_kind,
)
from passerelle.segments.validate import check_all

PROFILES = "profiles"
TRAITS = "traits"
VALUE_COLUMN = {NUMBER: "value_number", TEXT: "value_text", DATE: "value_date"}
MAX_OVERLAP = 8
# A file allows 20 levels (segments_models.MAX_DEPTH); references add to it when inlined.
MAX_COMPILED_DEPTH = 40
MAX_COMPILED_CONDITIONS = 2000


Now = datetime | ir.TimestampValue  # a time, or a timestamp slot of a kept query


class _Compiler:
    def __init__(self, engine: Engine, segments: Mapping[str, SegmentConfig], now: Now,
                 trait_kinds: Mapping[str, str] | None) -> None:
        self._existing = set(engine.list_tables())
        self._tables: dict[str, ir.Table | None] = {}
        if PROFILES not in self._existing:
            raise SegmentError("There is no profiles table yet.",
                               "Run `passerelle run` with an identity.yml first.")
        self.engine, self.segments, self.now = engine, segments, now
        self.trait_kinds = trait_kinds
        self.profiles = engine.table(PROFILES)
        self.kinds = schema_kinds(self.profiles.schema().items())

    def check(self) -> None:
        check_all(self.segments, self.kinds, self.trait_kinds)

    def _table(self, name: str) -> ir.Table | None:
        """Tables looked up once a compilation (each lookup is a catalog query)."""
        if name not in self._tables:
            self._tables[name] = self.engine.table(name) if name in self._existing else None
        return self._tables[name]

    def _activity(self, name: str) -> ir.Table:
        if self._table(name) is None:
            raise SegmentError(f"The table {name} is missing: event and order conditions "
                               "need it.", "Run `passerelle run` (the segments step builds "
                               "it) or call passerelle.segments.prepare_activity.")
        return self._tables[name]  # type: ignore[return-value]

    def _window(self, t: ir.Table, days: int | None) -> ir.BooleanValue:
        if isinstance(self.now, ir.Expr):  # a parameter: the SQL is kept for any time
            now: ir.TimestampValue = self.now
            since = None if days is None else now - ibis.interval(days=days)
        else:
            now = ibis.literal(self.now, type=dt.timestamp)
            since = None if days is None else ibis.literal(self.now - timedelta(days=days),
                                                           type=dt.timestamp)
        cond = t.at <= now
        if since is not None:
            cond = cond & (t.at > since)
        return cond

    def _persons(self, rows: ir.Table, at_least: int) -> ir.Column:
        """People with at least ``at_least`` rows (activity rows are distinct events, and
        distinct orders once filtered on one category)."""
        if at_least <= 1:
            return rows.person_id
        grouped = rows.group_by("person_id").aggregate(_n=rows.count())
        return grouped.filter(grouped._n >= at_least).person_id

    def predicate(self, cond: object, stack: tuple[str, ...],
                  strict: bool = False) -> ir.BooleanValue:
        """``strict``: the result must be TRUE or FALSE, never NULL (under ``not``, or as a
        value). Elsewhere NULL already acts as false in a WHERE, and leaving out the
        COALESCE keeps the filter simple for the planner."""
        p = self.profiles
        if isinstance(cond, AllCondition):
            return balanced([self.predicate(c, stack, strict) for c in cond.all],
                            operator.and_)
        if isinstance(cond, AnyCondition):
            return balanced([self.predicate(c, stack, strict) for c in cond.any],
                            operator.or_)
        if isinstance(cond, NotCondition):
            return ~self.predicate(cond.not_, stack, True)
        if isinstance(cond, InSegmentCondition):
            return self.segment_predicate(cond.in_segment, stack, strict)
        if isinstance(cond, FieldCondition):
            kind = self.kinds[cond.field]
            match = _compare(p[cond.field], cond.op, cond.value, kind)
            return match.fill_null(False) if strict and cond.op not in (
                "is_null", "not_null") else match
        if isinstance(cond, TraitCondition):
            return self._trait(cond)
        if isinstance(cond, DidCondition):
            spec = cond.did
            e = self._activity(activity.EVENTS)
            filt = (e.event == ibis.literal(spec.event, type=dt.string)) & self._window(
                e, spec.in_last_days)
            for key, value in spec.properties.items():
                filt = filt & _json_value(self.engine, e.properties, key, value)
            rows = e.filter(filt)
            return p.person_id.isin(self._persons(rows, spec.at_least))
        if isinstance(cond, BoughtCondition):
            spec = cond.bought
            if spec.category is None:
                rows = self._activity(activity.ORDERS)
                rows = rows.filter(self._window(rows, spec.in_last_days))
            else:
                rows = self._activity(activity.PURCHASES)
                rows = rows.filter((rows.category == ibis.literal(spec.category, type=dt.string))
                                   & self._window(rows, spec.in_last_days))
            return p.person_id.isin(self._persons(rows, spec.at_least))
        raise SegmentError(f"Unknown condition {cond!r}.", "See docs/segments.md.")

    def _trait(self, cond: TraitCondition) -> ir.BooleanValue:
        t = self._table(TRAITS)
        if t is None:
            raise SegmentError(f"Trait '{cond.trait}' cannot be read: there is no traits "
                               "table yet.", "Run `passerelle run` with traits/*.yml first.")
        kinds = self.trait_kinds or {}
        kind = kinds.get(cond.trait)
        if kind is None:  # no definitions given: the literal decides the value column
            values = cond.value if isinstance(cond.value, list) else [cond.value]
            kind = value_kind(values[0]) if cond.value is not None else None
        mine = t.trait == ibis.literal(cond.trait, type=dt.string)
        if cond.op in ("is_null", "not_null"):
            has = ibis.or_(*[t[c].notnull() for c in VALUE_COLUMN.values()]) \
                if kind is None else t[VALUE_COLUMN.get(kind, "value_text")].notnull()
            found = self.profiles.person_id.isin(t.filter(mine & has).person_id)
            return ~found if cond.op == "is_null" else found
        column = t[VALUE_COLUMN.get(kind, "value_text")]
        match = _compare(column, cond.op, cond.value, kind)
        return self.profiles.person_id.isin(t.filter(mine & match).person_id)

    def segment_predicate(self, name: str, stack: tuple[str, ...] = (),
                          strict: bool = False) -> ir.BooleanValue:
        if name in stack:
            raise SegmentError(f"Circular segment reference: {' -> '.join((*stack, name))}.",
                               "A segment cannot contain itself, directly or through others.")
        seg = self.segments.get(name)
        if seg is None:
            raise SegmentError(f"Unknown segment '{name}'.",
                               f"Segments: {', '.join(sorted(self.segments)) or 'none'}.")
        if not stack:  # the top of one compilation: bound it before recursing
            check_size(name, self.segments)
        return self.predicate(seg.where, (*stack, name), strict)


def check_size(name: str, segments: Mapping[str, SegmentConfig]) -> None:
    """Depth and number of conditions of ``name`` with its references inlined, counted
    iteratively (a reference cycle stops at the size limit; check_all names it)."""
    deepest = count = 0
    todo: list[tuple[object, int]] = [(segments[name].where, 0)]
    while todo and count <= MAX_COMPILED_CONDITIONS:
        cond, depth = todo.pop()
        count += 1
        deepest = max(deepest, depth)
        if isinstance(cond, AllCondition):
            todo += [(c, depth + 1) for c in cond.all]
        elif isinstance(cond, AnyCondition):
            todo += [(c, depth + 1) for c in cond.any]
        elif isinstance(cond, NotCondition):
            todo.append((cond.not_, depth + 1))
        elif isinstance(cond, InSegmentCondition) and cond.in_segment in segments:
            todo.append((segments[cond.in_segment].where, depth + 1))
    if deepest > MAX_COMPILED_DEPTH or count > MAX_COMPILED_CONDITIONS:
        raise SegmentError(
            f"Segment '{name}' is too large once the segments it uses are included: "
            f"{'more than ' if todo else ''}{count} conditions nested {deepest} deep (at most "
            f"{MAX_COMPILED_CONDITIONS} conditions, {MAX_COMPILED_DEPTH} levels).",
            "Simplify it: fewer levels of all/any/not/in_segment, `in` with a list of "
            "values instead of many `=`.")


def _literal(value: object, kind: str | None = None) -> ir.Value:
    if kind == "timestamp":
        value = coerce(value, DATE)
        if isinstance(value, date) and not isinstance(value, datetime):
            value = datetime(value.year, value.month, value.day)
    elif kind is not None:
        value = coerce(value, kind)
    if isinstance(value, bool):
        return ibis.literal(value, type=dt.boolean)
    if isinstance(value, (int, float)):
        return ibis.literal(float(value), type=dt.float64)
    if isinstance(value, datetime):
        return ibis.literal(value, type=dt.timestamp)
    if kind == DATE and not isinstance(value, str):
        return ibis.literal(value, type=dt.date)
    return ibis.literal(str(value), type=dt.string)


def _compare(col: ir.Value, op: str, value: object, kind: str | None) -> ir.BooleanValue:
    if kind == DATE and col.type().is_timestamp():
        kind = "timestamp"  # a date literal compares with a timestamp column at midnight
    if op == "is_null":
        return col.isnull()
    if op == "not_null":
        return col.notnull()
    if op in ("in", "not_in"):
        values = [_literal(v, kind) for v in value]  # type: ignore[union-attr]
        hit = col.isin(values)
        return hit if op == "in" else ~hit
    if op == "between":
        low, high = value  # type: ignore[misc]
        return col.between(_literal(low, kind), _literal(high, kind))
    if op == "contains":
        return col.cast(dt.string).contains(ibis.literal(str(value), type=dt.string))
    if op == "starts_with":
        return col.cast(dt.string).startswith(ibis.literal(str(value), type=dt.string))
    lit = _literal(value, kind)
    return {"=": col == lit, "!=": col != lit, "<": col < lit, "<=": col <= lit,
            ">": col > lit, ">=": col >= lit}[op]


def _json_value(engine: Engine, properties: ir.StringValue, key: str,
                value: object) -> ir.Value:
    # One text extraction, cheaper than Ibis's typed unwrapping (no type probe)
    doc = properties if properties.type().is_json() else properties.cast(dt.json)
    text = engine.json_text(doc, key)
    if isinstance(value, bool):
        return text == ibis.literal("true" if value else "false")
    if isinstance(value, (int, float)):
        return text.try_cast(dt.float64) == ibis.literal(float(value), type=dt.float64)
    return text == ibis.literal(str(value), type=dt.string)


def _segments_with(segment: SegmentConfig,
                   segments_by_name: Mapping[str, SegmentConfig] | None) -> dict:
    merged = dict(segments_by_name or {})
    merged[segment.name] = segment
    return merged


def compile_segment(engine: Engine, segment: SegmentConfig,
                    segments_by_name: Mapping[str, SegmentConfig] | None, now: Now,
                    trait_kinds: Mapping[str, str] | None = None) -> ir.Table:
    """The members of ``segment`` as of ``now`` (naive UTC, or a timestamp expression):
    a table of ``person_id``.

    ``segments_by_name`` resolves ``in_segment`` references; ``trait_kinds`` (from the
    project's trait definitions) picks each trait's value column and enables type checks.
    Raises :class:`SegmentError` for unknown fields, type mismatches and cycles.
    """
    c = _Compiler(engine, _segments_with(segment, segments_by_name), now, trait_kinds)
    c.check()
    return c.profiles.filter(c.segment_predicate(segment.name)).select("person_id")


def compile_many(engine: Engine, names: Sequence[str],
                 segments: Mapping[str, SegmentConfig], now: datetime,
                 trait_kinds: Mapping[str, str] | None = None,
                 within: Mapping[str, ir.Table] | None = None,
                 ) -> dict[str, ir.Table | SegmentError]:
    """Several segments with one catalog lookup: each name maps to its members, or to the
    error that keeps it from compiling (the others still compile). ``within[name]`` (a
    table with ``person_id``) limits the people that segment is evaluated for."""
    c = _Compiler(engine, segments, now, trait_kinds)
    out: dict[str, ir.Table | SegmentError] = {}
    for name in names:
        try:
            check_all({n: segments[n] for n in _closure(name, segments)}, c.kinds,
                      trait_kinds)
            pred = c.segment_predicate(name)
            if within is not None and name in within:
                pred = c.profiles.person_id.isin(within[name].person_id) & pred
            out[name] = c.profiles.filter(pred).select("person_id")
        except SegmentError as exc:
            out[name] = exc
    return out


def _closure(name: str, segments: Mapping[str, SegmentConfig]) -> list[str]:
    from passerelle.segments.validate import references

    seen: list[str] = []
    todo = [name]
    while todo:
        current = todo.pop()
        if current in seen or current not in segments:
            continue
        seen.append(current)
        todo.extend(references(segments[current]))
    return seen


def count(engine: Engine, segment: SegmentConfig,
          segments_by_name: Mapping[str, SegmentConfig] | None, now: datetime,
          trait_kinds: Mapping[str, str] | None = None) -> int:
    """How many people are in ``segment`` right now (the live count of the builder)."""
    expr = compile_segment(engine, segment, segments_by_name, now, trait_kinds)
    return int(engine.to_arrow(expr.count()).as_py())


SAMPLE_COLUMNS = ("person_id", "first_name", "last_name", "email", "phone", "postcode", "city",
                  "country")
# Who sees what in a sample. There is no user system: the caller (CLI option, API parameter,
# the web app's session) states the role, and the role decides what is masked.
ROLES: dict[str, tuple[str, ...]] = {
    "marketer": ("email", "phone", "last_name"),  # enough to recognise, not to contact
    "it": (),
    "admin": (),
}
DEFAULT_ROLE = "marketer"


def masked_columns(role: str) -> tuple[str, ...]:
    if role not in ROLES:
        raise SegmentError(f"Unknown role '{role}'.", f"Roles: {', '.join(ROLES)}.")
    return ROLES[role]


def sample(engine: Engine, segment: SegmentConfig,
           segments_by_name: Mapping[str, SegmentConfig] | None, now: datetime, n: int = 20,
           role: str = DEFAULT_ROLE, trait_kinds: Mapping[str, str] | None = None
           ) -> list[dict]:
    """``n`` members with a few profile columns, masked for ``role`` (:data:`ROLES`): a
    ``marketer`` sees ``a***@example.fr``, ``+33 6** ** ** 11`` and ``D.``; ``it`` and
    ``admin`` see the values. The same members come back each time (ordered by a hash of
    the person id), so a sample does not flicker while editing."""
    from passerelle.identity.view import mask_email, mask_phone
    from passerelle.measure.hashing import bucket_expr, join_key

    hidden = masked_columns(role)
    c = _Compiler(engine, _segments_with(segment, segments_by_name), now, trait_kinds)
    c.check()
    p = c.profiles
    cols = [col for col in SAMPLE_COLUMNS if col in p.columns]
    rows = p.filter(c.segment_predicate(segment.name)).select(*cols)
    rows = rows.order_by([bucket_expr(join_key("sample", rows.person_id)), rows.person_id])
    out = engine.to_arrow(rows.limit(n)).to_pylist()
    maskers = {"email": mask_email, "phone": mask_phone, "last_name": _initial}
    for row in out:
        for col in hidden:
            if col in row:
                row[col] = maskers[col](row[col])
    return out


def _initial(value: str | None) -> str | None:
    return f"{value.strip()[:1]}." if value and value.strip() else value


def overlap(engine: Engine, segments: Sequence[SegmentConfig],
            segments_by_name: Mapping[str, SegmentConfig] | None, now: datetime,
            trait_kinds: Mapping[str, str] | None = None) -> dict[str, object]:
    """Counts of every intersection of 2 to 8 segments, from one scan of profiles.

    Returns ``{"segments": [names], "regions": [{"in": [...], "people": n}],
    "intersections": [{"segments": [...], "people": n}]}``: regions are exclusive (in
    exactly these segments), intersections inclusive (in at least all of these).
    """
    if not 1 <= len(segments) <= MAX_OVERLAP:
        raise SegmentError(f"Overlap takes 1 to {MAX_OVERLAP} segments, not {len(segments)}.",
                           "Pick fewer segments.")
    merged = dict(segments_by_name or {})
    merged.update({s.name: s for s in segments})
    c = _Compiler(engine, merged, now, trait_kinds)
    c.check()
    names = [s.name for s in segments]
    flags = {f"s{i}": c.segment_predicate(name, strict=True) for i, name in enumerate(names)}
    t = c.profiles.select(**flags)
    keys = list(flags)
    grouped = t.group_by(keys).aggregate(people=t.count())
    rows = engine.to_arrow(grouped).to_pylist()
    regions = []
    for row in rows:
        inside = [names[i] for i, k in enumerate(keys) if row[k]]
        if inside:
            regions.append({"in": inside, "people": int(row["people"])})
    regions.sort(key=lambda r: (-len(r["in"]), r["in"]))
    intersections = []
    for size in range(1, len(names) + 1):
        for combo in combinations(names, size):
            people = sum(r["people"] for r in regions if set(combo) <= set(r["in"]))
            intersections.append({"segments": list(combo), "people": people})
    return {"segments": names, "regions": regions, "intersections": intersections}
