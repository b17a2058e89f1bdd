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
from passerelle.identity.tables import CUSTOMER_RECORDS, IDENTITY_LEDGER, PERSON_MAP, node_of

PERSON_ORDERS = "identity_person_orders"
PERSON_EVENTS = "identity_person_events"
# Every identifier a search finds a person by, (value, kind, node, person_id) sorted by value.
SEARCH_KEYS = "identity_search_keys"
# Each person's customer records (their columns and ``person_id``), sorted by person id.
PERSON_RECORDS = "identity_person_records"
# The identity ledger once per record an entry names (``_node``: node_a, then node_b when
# another), sorted by it: the entries about a person's records without a scan.
LEDGER_NODES = "identity_ledger_nodes"
STATE_STEP = "person_lookups"
# The tables whose rows the lookups are made of (their counts are part of the fingerprint).
INPUTS = ("orders", "events", PERSON_MAP, CUSTOMER_RECORDS, ANONYMOUS_IDS, IDENTITY_LEDGER)
# Bookkeeping columns of the lookup tables that the view does not show (``_row``: tables
# written before the rows were matched without numbering them).
HIDDEN = ("person_id", "_row", "_prio")
# The rows written at a time (a slice of person ids each). DuckDB's sort and joins spill
# under the engine's memory_limit (measured on the 100k demo: 1.5 M event rows written in one
# slice with a 400 MB limit, peak 644 MB, as fast as without), so slices are a bound on each
# statement's spill and time, not what keeps the memory down; each one reads the whole
# orders or events again (six slices instead of one: 1.4x as long).
SLICE_ROWS = 20_000_000


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
    """Whether the lookup tables exist and were built from the data as it is now (asked
    once per page: ``engine.page_memo``)."""
    memo = getattr(engine, "page_memo", None)
    if memo is not None:
        if "lookups_current" not in memo:
            memo["lookups_current"] = _current(engine)
        return bool(memo["lookups_current"])
    return _current(engine)


def _current(engine: Engine) -> bool:
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
    keys = _person_keys(engine)
    try:
        for name, build in ((PERSON_ORDERS, _orders), (PERSON_EVENTS, _events)):
            source = "orders" if name == PERSON_ORDERS else "events"
            if not engine.exists(source):
                engine.drop(name)
                continue
            mapping = orders_sources if name == PERSON_ORDERS else events_sources
            _write_sorted(engine, name, source, mapping, keys, build)
            engine.index_on(name, "person_id")
            out[name] = engine.count(name)
    finally:
        for key in _KEYS:
            engine.drop(key)
    engine.replace_table(SEARCH_KEYS, _search_keys(engine).order_by(["value", "kind"]))
    engine.index_on(SEARCH_KEYS, "value")
    out[SEARCH_KEYS] = engine.count(SEARCH_KEYS)
    cr, pm = engine.table(CUSTOMER_RECORDS), engine.table(PERSON_MAP)
    cr = cr.mutate(_node=node_of(cr))
    records = cr.join(pm, cr._node == pm.node).select(
        pm.person_id, *(cr[c] for c in cr.columns if c != "_node"))
    engine.replace_table(PERSON_RECORDS, records.order_by("person_id"))
    engine.index_on(PERSON_RECORDS, "person_id")
    out[PERSON_RECORDS] = engine.count(PERSON_RECORDS)
    if engine.exists(IDENTITY_LEDGER):
        led = engine.table(IDENTITY_LEDGER)
        other = led.filter(led.node_b.notnull() & (led.node_a.isnull()
                                                   | (led.node_b != led.node_a)))
        nodes = ibis.union(led.mutate(_node=led.node_a), other.mutate(_node=other.node_b),
                           distinct=False)
        engine.replace_table(LEDGER_NODES, nodes.filter(nodes._node.notnull())
                             .order_by("_node"))
        engine.index_on(LEDGER_NODES, "_node")
        out[LEDGER_NODES] = engine.count(LEDGER_NODES)
    else:
        engine.drop(LEDGER_NODES)
    # the tables were built from the inputs as fingerprinted before (this step writes none)
    state.remember(engine, STATE_STEP, before, run_id)
    return out


def slices(engine: Engine, rows: int, size: int) -> list[tuple[Any, Any]]:
    """Ranges ``[low, high)`` of person ids (None: unbounded), in order, each holding about
    as many people, that cut ``rows`` rows into slices of about ``size``; one unbounded
    range when there are fewer."""
    count = -(-rows // size) if size > 0 else 1
    if count <= 1:
        return [(None, None)]
    pm = engine.table(PERSON_MAP)
    people = pm.select("person_id").distinct()
    people = people.mutate(s=ibis.ntile(count).over(ibis.window(order_by="person_id")))
    lows = engine.to_arrow(people.group_by("s").aggregate(low=people.person_id.min())
                           .order_by("s")).column("low").to_pylist()
    bounds = [None, *lows[1:], None]
    return list(pairwise(bounds))


# The people's identifiers that orders and events are matched on (work tables of the step).
_NODES, _CARDS, _EMAILS, _ANONYMOUS = ("_lookups_nodes", "_lookups_cards", "_lookups_emails",
                                       "_lookups_anonymous")
_KEYS = (_NODES, _CARDS, _EMAILS, _ANONYMOUS)


def _person_keys(engine: Engine) -> dict[str, ir.Table]:
    """Each person's records (source, id), cards, e-mails and anonymous ids, once each:
    narrow work tables the slices filter by person id."""
    r = _records(engine)
    out = {_NODES: engine.scratch_table(_NODES, r.select(
        _person=r.person_id, _k_source=r._source, _k_record=r._record_id).distinct())}
    for name, column in ((_CARDS, "loyalty_card"), (_EMAILS, "email")):
        found = r.filter(r[column].notnull())
        out[name] = engine.scratch_table(name, found.select(
            _person=found.person_id, _k_value=found[column]).distinct())
    if engine.exists(ANONYMOUS_IDS):
        a = engine.table(ANONYMOUS_IDS)
        out[_ANONYMOUS] = engine.scratch_table(_ANONYMOUS, a.select(
            _person=a.person_id, _k_value=a.anonymous_id).distinct())
    return out


def _write_sorted(engine: Engine, name: str, source: str, mapping: dict[str, str],
                  keys: dict[str, ir.Table], build: Any) -> None:
    """Write ``name``: each row of ``source`` once per person it belongs to, sorted by
    person id. A slice of person ids at a time (about :data:`SLICE_ROWS` rows), each sorted
    and appended after the previous one, so a sort holds one slice, not every row (17 M
    events at 1 M people); written aside, then swapped in (a crash leaves the old table)."""
    building = f"_{name}_next"
    engine.drop(building)
    rows = engine.table(source)
    total = engine.count(source)
    for i, (low, high) in enumerate(slices(engine, total, SLICE_ROWS)):
        mine = {}
        for key, t in keys.items():
            if low is not None:
                t = t.filter(t._person >= low)
            if high is not None:
                t = t.filter(t._person < high)
            mine[key] = t
        part = build(rows, mapping, mine).order_by("person_id")
        if i == 0:
            engine.replace_table(building, part)
        else:
            engine.con.insert(building, part)
    with engine.transaction():
        engine.drop(name)
        engine.rename(building, name)


# The tables the customer pages read one person's rows of, by the column they filter on:
# kept sorted on it (DuckDB: its zone maps then skip the other rows) or indexed (PostgreSQL).
PAGE_TABLES = (("person_map", "person_id"), (CUSTOMER_RECORDS, "_record_id"),
               ("profiles", "person_id"), ("traits", "person_id"), ("consents", "person_id"),
               ("consent_statements", "person_id"), ("identity_edges", "node_a"),
               ("identity_ledger", "node_a"), (ANONYMOUS_IDS, "person_id"),
               ("segment_membership", "person_id"))


def sort_page_tables(engine: Engine) -> dict[str, int]:
    """Sort each of :data:`PAGE_TABLES` that is not stored sorted (the steps that write
    them write in any order); returns the row counts of those sorted now. On engines with
    indexes, index them instead (idempotent)."""
    done = {}
    tables = set(engine.base_tables())  # views hold no rows of their own
    for table, column in PAGE_TABLES:
        if table not in tables:
            continue
        stored = engine.stored_sorted(table, column)
        if stored is None:  # an engine with indexes
            engine.index_on(table, column)
            continue
        if stored:
            continue
        engine.replace_table(table, engine.table(table).order_by(column))
        done[table] = engine.count(table)
    return done


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


def _part(rows: ir.Table, joined: ir.Table, prio: int, kind: str) -> ir.Table:
    return joined.select(joined._person.name("person_id"), *(joined[c] for c in rows.columns),
                         _prio=ibis.literal(prio, "int64"),
                         matched_by=ibis.literal(kind, "string"))


def _by_node(t: ir.Table, id_column: str, nodes: ir.Table) -> ir.Table:
    """The rows whose (customer source, id) is a person's record, with the person."""
    return t.join(nodes, (t._cs == nodes._k_source)
                  & (t[id_column].cast("string") == nodes._k_record))


def _not_by_node(t: ir.Table, id_column: str, nodes: ir.Table) -> ir.Table:
    """The matches whose row is not also one of the same person's records' (a better
    match): each row is kept once per person, with the best way it matched."""
    nodes = nodes.view()  # the rows may have been joined with it already
    return t.anti_join(nodes, (t._cs == nodes._k_source)
                       & (t[id_column].cast("string") == nodes._k_record)
                       & (t._person == nodes._person))


def _not_by_value(t: ir.Table, column: str, values: ir.Table) -> ir.Table:
    values = values.view()
    return t.anti_join(values, (t[column] == values._k_value) & (t._person == values._person))


def _orders(rows: ir.Table, mapping: dict[str, str], keys: dict[str, ir.Table]) -> ir.Table:
    """Each order with each person it belongs to, by the best of: their customer id, their
    loyalty card, their e-mail (the view's order of preference): ``matched_by``."""
    o = rows.mutate(_cs=_customer_source(rows, mapping))
    nodes, cards, emails = keys[_NODES], keys[_CARDS], keys[_EMAILS]
    by_customer = _by_node(o, "customer_id", nodes)
    by_card = _not_by_node(o.join(cards, o.loyalty_card == cards._k_value), "customer_id",
                           nodes)
    by_email = _not_by_value(_not_by_node(o.join(emails, o.email == emails._k_value),
                                          "customer_id", nodes), "loyalty_card", cards)
    return ibis.union(_part(rows, by_customer, 0, "customer_id"),
                      _part(rows, by_card, 1, "loyalty_card"),
                      _part(rows, by_email, 2, "email"), distinct=False)


def _events(rows: ir.Table, mapping: dict[str, str], keys: dict[str, ir.Table]) -> ir.Table:
    """Each event with each person it belongs to, by the best of: their user id, their
    e-mail, one of their anonymous ids (the device's visits before the login, and user ids
    an alias call replaced)."""
    e = rows.mutate(_cs=_customer_source(rows, mapping))
    nodes, emails = keys[_NODES], keys[_EMAILS]
    by_user = _by_node(e, "user_id", nodes)
    by_email = _not_by_node(e.join(emails, e.email == emails._k_value), "user_id", nodes)
    parts = [_part(rows, by_user, 0, "user_id"), _part(rows, by_email, 1, "email")]
    if _ANONYMOUS in keys:
        anonymous = keys[_ANONYMOUS]
        for column in ("anonymous_id", "user_id"):
            found = e.join(anonymous, e[column] == anonymous._k_value)
            found = _not_by_value(_not_by_node(found, "user_id", nodes), "email", emails)
            if column == "user_id":  # once: not when its anonymous id found the person
                found = _not_by_value(found, "anonymous_id", anonymous)
            parts.append(_part(rows, found, 2, "anonymous_id"))
    return ibis.union(*parts, distinct=False)
