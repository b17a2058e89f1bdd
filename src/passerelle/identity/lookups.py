"""Each person's orders and events, and every identifier a search finds them by, kept in
tables sorted by person id (or by the identifier): the customer pages' reads.

The view finds a person's orders by (source, customer id), loyalty card or e-mail, and their
events by user id, e-mail or stitched anonymous id: a condition no single column answers, so
every profile read scanned the whole orders and events tables (two seconds on a million
people). At the end of a run these tables hold each order and event once per person it
belongs to, with ``matched_by`` as the view computes it, written sorted by ``person_id``:
DuckDB's zone maps then skip every row group but the person's, and PostgreSQL gets an index.
The search's identifiers (ids, cards, e-mails, phones, folded name words) are one table
sorted by value, with the person of each: a search is one lookup, not a scan of every
record per kind of identifier.

They are rebuilt whole (idempotent; the replacement is atomic, so a crash leaves the old
ones) when their inputs changed, and :func:`current` tells the view whether they are still
those of the warehouse's data; when they are not, the view scans as before.
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import pairwise
from typing import Any

import ibis
import ibis.expr.types as ir

from passerelle.engines.base import Engine
from passerelle.identity.anonymous import ANONYMOUS_IDS
from passerelle.identity.tables import CUSTOMER_RECORDS, PERSON_MAP, node_of

PERSON_ORDERS = "identity_person_orders"
PERSON_EVENTS = "identity_person_events"
# Every identifier a search finds a person by, (value, kind, node, person_id) sorted by value.
SEARCH_KEYS = "identity_search_keys"
STATE_STEP = "person_lookups"
# The tables whose rows the lookups are made of (their counts are part of the fingerprint).
INPUTS = ("orders", "events", PERSON_MAP, CUSTOMER_RECORDS, ANONYMOUS_IDS)
# Bookkeeping columns of the lookup tables that the view does not show.
HIDDEN = ("person_id", "_row", "_prio")
# The rows sorted at a time when the tables are written (a slice of person ids each): what
# bounds the step's memory at a million people (17 M events).
SLICE_ROWS = 4_000_000


def inputs_print(engine: Engine) -> str:
    """A fingerprint of what the lookups are made of: the inputs' row counts, the person
    map's latest assignment, and the fingerprints of the steps that rewrite the inputs
    (each source's staging, identity, stitching). One query."""
    from passerelle import state

    names = [n for n in INPUTS if engine.exists(n)]
    with_state = engine.exists(state.STATE_TABLE)

    def build(_: Mapping[str, Any]) -> ir.Table:
        parts = []
        for name in names:
            t = engine.table(name)
            n = t.count().cast("string")
            if name == PERSON_MAP:
                n = n + "@" + t.assigned_at.max().cast("string").fill_null("")
            parts.append(t.aggregate(k=ibis.literal(name, "string"), v=n))
        if with_state:
            s = engine.table(state.STATE_TABLE)
            s = s.filter(s.step.startswith("stage:") | s.step.isin(["identity", "stitch"]))
            parts.append(s.select(k=s.step, v=s.fingerprint))
        union = ibis.union(*parts) if parts else None
        return union.order_by(["k", "v"]) if union is not None else ibis.memtable(
            {"k": ["none"], "v": ["none"]})

    rows = engine.prepared(("lookups_print", tuple(names), with_state), {}, build).to_pylist()
    return state.fingerprint(*(f"{r['k']}={r['v']}" for r in rows))


def current(engine: Engine) -> bool:
    """Whether the lookup tables exist and were built from the data as it is now."""
    from passerelle import state

    if not engine.exists(SEARCH_KEYS):
        return False
    if not engine.exists(state.STATE_TABLE):
        return False

    def build(_: Mapping[str, Any]) -> ir.Table:
        s = engine.table(state.STATE_TABLE)
        return s.filter(s.step == STATE_STEP).select("fingerprint")

    rows = engine.prepared("lookups_state", {}, build).to_pylist()
    return bool(rows) and rows[0]["fingerprint"] == inputs_print(engine)


def refresh(engine: Engine, orders_sources: dict[str, str], events_sources: dict[str, str],
            run_id: str, full: bool = False) -> dict[str, int] | None:
    """Rebuild both tables when their inputs changed (or ``full``); returns their row
    counts, or None when they were current."""
    from passerelle import state

    if not engine.exists(PERSON_MAP) or not engine.exists(CUSTOMER_RECORDS):
        return None
    before = inputs_print(engine)
    if not full and engine.exists(SEARCH_KEYS) and state.is_current(engine, STATE_STEP,
                                                                     before):
        return None
    out = {}
    for name, build in ((PERSON_ORDERS, _orders), (PERSON_EVENTS, _events)):
        source = "orders" if name == PERSON_ORDERS else "events"
        if not engine.exists(source):
            engine.drop(name)
            continue
        mapping = orders_sources if name == PERSON_ORDERS else events_sources
        # the rows numbered once (a numbering in the query would be redone per join), and
        # which person each belongs to (narrow: what the slices below are cut from)
        rows = engine.scratch_table(f"_{name}_rows", engine.table(source).mutate(
            _row=ibis.row_number()))
        try:
            matched = engine.scratch_table(f"_{name}_matched", build(engine, rows, mapping))
            _write_sorted(engine, name, matched, rows)
        finally:
            engine.drop(f"_{name}_rows")
            engine.drop(f"_{name}_matched")
        engine.index_on(name, "person_id")
        out[name] = engine.count(name)
    engine.replace_table(SEARCH_KEYS, _search_keys(engine).order_by(["value", "kind"]))
    engine.index_on(SEARCH_KEYS, "value")
    out[SEARCH_KEYS] = engine.count(SEARCH_KEYS)
    # the tables were built from the inputs as fingerprinted before (this step writes none)
    state.remember(engine, STATE_STEP, before, run_id)
    return out


def slices(engine: Engine, matched: ir.Table, size: int) -> list[tuple[Any, Any]]:
    """Ranges ``[low, high)`` of person ids (None: unbounded) that cut ``matched`` into
    slices of about ``size`` rows, in order; one unbounded range when it holds fewer."""
    total = int(engine.to_arrow(matched.count()).as_py())
    count = -(-total // size) if size > 0 else 1
    if count <= 1:
        return [(None, None)]
    per = -(-total // count)
    people = matched.group_by("person_id").aggregate(n=matched.count())
    people = people.mutate(c=people.n.cumsum().over(ibis.window(order_by="person_id")))
    people = people.mutate(s=((people.c - 1) // per).cast("int64"))
    lows = engine.to_arrow(people.group_by("s").aggregate(low=people.person_id.min())
                           .order_by("s")).column("low").to_pylist()
    bounds = [None, *lows[1:], None]
    return list(pairwise(bounds))


def _write_sorted(engine: Engine, name: str, matched: ir.Table, rows: ir.Table) -> None:
    """Write ``name``: each matched row with its columns, sorted by person id. A slice of
    person ids at a time (:data:`SLICE_ROWS` rows), each sorted and appended after the
    previous one, so the sort holds one slice, not every row (17 M events at 1 M people);
    written aside, then swapped in (a crash leaves the previous table)."""
    building = f"_{name}_next"
    engine.drop(building)
    for i, (low, high) in enumerate(slices(engine, matched, SLICE_ROWS)):
        m = matched
        if low is not None:
            m = m.filter(m.person_id >= low)
        if high is not None:
            m = m.filter(m.person_id < high)
        part = m.join(rows, "_row").select("person_id", *rows.columns, "_prio",
                                           "matched_by").order_by("person_id")
        if i == 0:
            engine.replace_table(building, part)
        else:
            engine.con.insert(building, part)
    with engine.transaction():
        engine.drop(name)
        engine.rename(building, name)


def _search_keys(engine: Engine) -> ir.Table:
    """What :func:`passerelle.identity.view.find_persons` looks a person up by: their id,
    their records' nodes, source and customer ids, cards, e-mails and phones (as staging
    wrote them), and the folded words of their names (the name index)."""
    from passerelle.identity.name_index import NAME_WORDS

    pm = engine.table(PERSON_MAP)
    r = _records(engine)

    def keys(t: ir.Table, value: ir.Value, kind: str, node: ir.Value) -> ir.Table:
        return t.select(value=value.cast("string"), kind=ibis.literal(kind, "string"),
                        node=node.cast("string"), person_id=t.person_id)

    parts = [keys(pm, pm.person_id, "person_id", ibis.null("string")),
             keys(pm, pm.node, "node", pm.node)]
    node = r._source + ":" + r._record_id
    for column, kind in (("_record_id", "customer_id"), ("customer_id", "customer_id"),
                         ("loyalty_card", "loyalty_card"), ("email", "email"),
                         ("phone", "phone")):
        parts.append(keys(r, r[column], kind, node))
    if engine.exists(NAME_WORDS):
        words = engine.table(NAME_WORDS)
        named = words.join(pm, words.node == pm.node)
        parts.append(keys(named, named.word, "name", named.node))
    union = ibis.union(*parts, distinct=True)
    return union.filter(union.value.notnull() & (union.value != ""))


def _records(engine: Engine) -> ir.Table:
    """Each customer record with its person."""
    cr = engine.table(CUSTOMER_RECORDS)
    pm = engine.table(PERSON_MAP)
    cr = cr.mutate(_node=node_of(cr))
    joined = cr.join(pm, cr._node == pm.node)
    return joined.select(person_id=joined.person_id, _source=joined._source,
                         _record_id=joined._record_id.cast("string"),
                         customer_id=joined.customer_id, loyalty_card=joined.loyalty_card,
                         email=joined.email, phone=joined.phone)


def _customer_source(t: ir.Table, mapping: dict[str, str]) -> ir.StringValue:
    """The customer source the row's ``_source`` refers to (NULL when none)."""
    if not mapping:
        return ibis.null("string")
    return ibis.cases(*[(t._source == s, ibis.literal(cs, "string"))
                        for s, cs in sorted(mapping.items())], else_=ibis.null("string"))


def _matches(parts: list[tuple[ir.Table, str]]) -> ir.Table:
    """Each row's number with each person it belongs to, by the best of ``parts`` (joins of
    the rows with the records, in the view's order of preference): ``matched_by``."""
    found = []
    for prio, (joined, kind) in enumerate(parts):
        found.append(joined.select(
            person_id=joined.person_id, _row=joined._row,
            _prio=ibis.literal(prio, "int64"), matched_by=ibis.literal(kind, "string")))
    union = ibis.union(*found, distinct=True)
    best = union.group_by(["person_id", "_row"]).aggregate(_prio=union._prio.min())
    return union.join(best, ["person_id", "_row", "_prio"]).select(
        "person_id", "_row", "_prio", "matched_by")


def _orders(engine: Engine, rows: ir.Table, mapping: dict[str, str]) -> ir.Table:
    o = rows.mutate(_cs=_customer_source(rows, mapping))
    r = _records(engine)
    by_customer = o.join(r, (o._cs == r._source) & (o.customer_id.cast("string")
                                                    == r._record_id))
    by_card = o.join(r, o.loyalty_card == r.loyalty_card)
    by_email = o.join(r, o.email == r.email)
    return _matches([(by_customer, "customer_id"), (by_card, "loyalty_card"),
                           (by_email, "email")])


def _events(engine: Engine, rows: ir.Table, mapping: dict[str, str]) -> ir.Table:
    e = rows.mutate(_cs=_customer_source(rows, mapping))
    r = _records(engine)
    by_user = e.join(r, (e._cs == r._source) & (e.user_id.cast("string") == r._record_id))
    by_email = e.join(r, e.email == r.email)
    parts = [(by_user, "user_id"), (by_email, "email")]
    if engine.exists(ANONYMOUS_IDS):
        # the device's visits before the login, and user ids an alias call replaced
        a = engine.table(ANONYMOUS_IDS).select("person_id", "anonymous_id")
        parts.append((e.join(a, e.anonymous_id == a.anonymous_id), "anonymous_id"))
        parts.append((e.join(a, e.user_id == a.anonymous_id), "anonymous_id"))
    return _matches(parts)
