"""The 360° view of one person (finding a person from any identifier: search.py).

:func:`person_view` returns plain dicts and lists (JSON-serialisable: dates as ISO strings,
amounts as floats) so the CLI, the HTTP API and the web app all show the same thing. Every
query filters on one person's handful of records and is built with Ibis literals; no user
input becomes SQL text.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import ibis
import ibis.expr.types as ir

from passerelle.engines.base import Engine
from passerelle.errors import PasserelleError
from passerelle.identity import lookups
from passerelle.identity.anonymous import anonymous_ids_of
from passerelle.identity.golden import CONSENT_FIELDS, GOLDEN_FIELDS
from passerelle.identity.render import render_person  # noqa: F401  (re-exported for the CLI)
from passerelle.identity.search import (  # noqa: F401  (re-exported: the view's callers)
    MATCH_KINDS,
    IdentityNotBuilt,
    _require_identity,
    find_persons,
    normalise_email,
    normalise_phone,
)
from passerelle.identity.tables import (
    CUSTOMER_RECORDS,
    IDENTITY_EDGES,
    IDENTITY_PINS,
    PERSON_MAP,
    PROFILES,
)

MASKED_FIELDS = ("email", "phone", "birth_date", "address_line1", "address_line2",
                 "national_id")


class PersonNotFound(PasserelleError, LookupError):
    """No person has this id."""


# ----------------------------------------------------------------------------- masking
def mask_email(value: str | None) -> str | None:
    """``helene@example.fr`` -> ``h***@example.fr``."""
    if not value:
        return value
    local, at, domain = value.partition("@")
    return f"{local[:1]}***@{domain}" if at else "***"


def mask_phone(value: str | None) -> str | None:
    """``+33612345678`` -> ``+33 6** ** ** 78``: country, first and last two digits kept."""
    if not value:
        return value
    import phonenumbers

    try:
        number = phonenumbers.parse(value, None)
        prefix, digits = f"+{number.country_code} ", phonenumbers.national_significant_number(
            number)
    except phonenumbers.NumberParseException:
        prefix, digits = "", "".join(c for c in value if c.isdigit())
    if len(digits) <= 3:
        return prefix + "*" * len(digits)
    masked = digits[0] + "*" * (len(digits) - 3) + digits[-2:]
    head = 3 if len(masked) % 2 else 2  # pairs from the right; an odd digit joins the first
    groups = [masked[:head]] + [masked[i:i + 2] for i in range(head, len(masked), 2)]
    return prefix + " ".join(groups)


def mask_field(field: str, value: Any) -> Any:
    """A golden or record field as a role without ``pii:read`` sees it."""
    if value is None or field not in MASKED_FIELDS:
        return value
    if field == "email":
        return mask_email(value)
    if field == "phone":
        return mask_phone(value)
    if field == "birth_date":
        return str(value)[:4]  # the year only
    if field in ("address_line1", "address_line2", "national_id"):
        return "***"
    return value


# ------------------------------------------------------------------------------ helpers
def _plain(value: Any) -> Any:
    """A value as JSON can carry it."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _rows(engine: Engine, key: str, values: Mapping[str, Any],
          build: Callable[[Mapping[str, Any]], ir.Table]) -> list[dict[str, Any]]:
    """The rows of a query of this view, prepared once per shape (engine.prepared)."""
    return [{k: _plain(v) for k, v in r.items()}
            for r in engine.prepared(("person_view", key), values, build).to_pylist()]


def _json(text: Any) -> Any:
    """Parse JSON text (evidence, event properties); anything else is returned as is."""
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def _mask_row(row: dict[str, Any], mask: bool) -> dict[str, Any]:
    return {k: mask_field(k, v) for k, v in row.items()} if mask else row


def _distinct(values: Iterable[Any]) -> list[Any]:
    return sorted({v for v in values if v is not None})


def _in(column: ir.Value, slots: list[Any]) -> ir.BooleanValue:
    return column.isin(slots) if slots else ibis.literal(False)


# --------------------------------------------------------------------------------- view
def person_view(engine: Engine, person_id: str, *, orders_sources: dict[str, str],
                events_sources: dict[str, str], recent_events: int = 20,
                recent_orders: int = 20, mask_pii: bool = False) -> dict[str, Any]:
    """Everything known about one person, and why their records are one person.

    ``orders_sources`` maps each orders source to the customer source its ``customer_id``
    refers to; ``events_sources`` does the same for events' ``user_id``. ``mask_pii`` hides
    e-mails, phones, birth dates (year kept) and address lines, for roles that must not see
    raw personal data.
    """
    _require_identity(engine)

    def mapped(v: Mapping[str, Any]) -> ir.Table:
        pm = engine.table(PERSON_MAP)
        return pm.filter(pm.person_id == v["person"]).select("node").order_by("node")

    nodes = [r["node"] for r in _rows(engine, "nodes", {"person": person_id}, mapped)]
    if not nodes:
        raise PersonNotFound(
            f"No person has the id {person_id}.",
            "Look the person up by e-mail, phone, card or customer id: "
            "`passerelle profile <identifier>`; ids change when people are merged.")
    # the tables of each person's records, orders and events when they are those of the
    # data now
    sorted_by_person = person_id if lookups.current(engine) else None
    records = _records(engine, nodes, sorted_by_person)
    golden, summary = _golden(engine, person_id, records, mask_pii)
    orders = _orders(engine, records, orders_sources, recent_orders, mask_pii,
                     sorted_by_person)
    anonymous_ids = anonymous_ids_of(engine, person_id)
    events = _events(engine, records, anonymous_ids, events_sources, recent_events, mask_pii,
                     sorted_by_person)
    summary |= {"orders": orders["total"], "revenue": orders["amount"], "events": events["total"]}
    return {
        "person_id": person_id,
        "masked": mask_pii,
        "summary": summary,
        "golden": golden,
        "records": [{**r, "fields": _mask_row(r["fields"], mask_pii)} for r in records],
        "orders": orders,
        "events": events,
        "consents": _consents(engine, person_id, golden, records),
        "traits": _traits(engine, person_id),
        "why": {**_why(engine, nodes), "anonymous_ids": anonymous_ids},
    }


def _records(engine: Engine, nodes: list[str], person: str | None = None
             ) -> list[dict[str, Any]]:
    """Every linked source record: its fields and its lineage (``_``-prefixed columns);
    read from the person's records table when ``person`` is given and it exists."""
    if not engine.exists(CUSTOMER_RECORDS):
        return []
    if person and engine.exists(lookups.PERSON_RECORDS):
        def sorted_build(v: Mapping[str, Any]) -> ir.Table:
            t = engine.table(lookups.PERSON_RECORDS)
            return t.filter(t.person_id == v["person"]).drop("person_id").order_by(
                ["_source", "_record_id"])
        return _record_rows(_rows(engine, "records_sorted", {"person": person},
                                  sorted_build))
    by_source: dict[str, list[str]] = {}
    for node in nodes:
        source, _, record_id = node.partition(":")
        by_source.setdefault(source, []).append(record_id)
    values: dict[str, Any] = {}
    for i, (source, ids) in enumerate(sorted(by_source.items())):
        values[f"source{i}"], values[f"ids{i}"] = source, _distinct(ids)

    def build(v: Mapping[str, Any]) -> ir.Table:
        # (source, record id) rather than the node text, so engines can use their indexes
        cr = engine.table(CUSTOMER_RECORDS)
        cr = cr.filter(ibis.or_(*[(cr._source == v[f"source{i}"]) & _in(cr._record_id,
                                                                         v[f"ids{i}"])
                                  for i in range(len(by_source))]))
        return cr.order_by(["_source", "_record_id"])

    return _record_rows(_rows(engine, "records", values, build))


def _record_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for row in rows:
        source, record_id = row.pop("_source"), row.pop("_record_id")
        out.append({
            "node": f"{source}:{record_id}", "source": source, "record_id": record_id,
            "fields": {k: v for k, v in row.items() if not k.startswith("_")},
            "lineage": {k: v for k, v in row.items() if k.startswith("_")},
        })
    return out


def _of_person(engine: Engine, table: str, person_id: str) -> list[dict[str, Any]]:
    """The rows of ``table`` about one person."""
    def build(v: Mapping[str, Any]) -> ir.Table:
        t = engine.table(table)
        return t.filter(t.person_id == v["person"])

    return _rows(engine, table, {"person": person_id}, build)


def _golden(engine: Engine, person_id: str, records: list[dict[str, Any]],
            mask: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    row: dict[str, Any] = {}
    if engine.exists(PROFILES):
        found = _of_person(engine, PROFILES, person_id)
        row = found[0] if found else {}
    golden = {}
    for f in (*GOLDEN_FIELDS, *CONSENT_FIELDS):
        entry = {"value": mask_field(f, row.get(f)) if mask else row.get(f),
                 "source": row.get(f"{f}__source")}
        if f in CONSENT_FIELDS:
            entry["updated_at"] = row.get(f"{f}__updated_at")
        golden[f] = entry
    sources = sorted({r["source"] for r in records})
    summary = {
        "record_count": row.get("record_count", len(records)),
        "sources": row["sources"].split(",") if row.get("sources") else sources,
        "first_seen_at": row.get("first_seen_at"),
        "last_updated_at": row.get("last_updated_at"),
        "profile_built": bool(row),
    }
    return golden, summary


def _customer_values(mapping: dict[str, str], records: list[dict[str, Any]]
                     ) -> dict[str, Any]:
    """For each customer source of the person's records: the sources whose rows refer to
    it (``from<i>``) and the person's record ids there (``ids<i>``)."""
    ids: dict[str, set[str]] = {}
    for r in records:
        ids.setdefault(r["source"], set()).add(r["record_id"])
    values: dict[str, Any] = {}
    for customer_source, record_ids in sorted(ids.items()):
        sources = _distinct(s for s, cs in mapping.items() if cs == customer_source)
        if sources:
            i = len(values) // 2
            values[f"from{i}"], values[f"ids{i}"] = sources, _distinct(record_ids)
    return values


def _customer_match(table: ir.Table, id_column: str, v: Mapping[str, Any]) -> ir.BooleanValue:
    """(the row's source, its customer id) is one of the person's records."""
    cond: ir.BooleanValue = ibis.literal(False)
    i = 0
    while f"from{i}" in v:
        cond |= _in(table._source, v[f"from{i}"]) & _in(table[id_column], v[f"ids{i}"])
        i += 1
    return cond


def _values(records: list[dict[str, Any]], field: str) -> list[Any]:
    return _distinct(r["fields"].get(field) for r in records)


def _of_lookup(engine: Engine, table: str, v: Mapping[str, Any]) -> ir.Table:
    """One person's rows of a lookup table (:mod:`passerelle.identity.lookups`), with the
    columns the scan below gives."""
    t = engine.table(table)
    return t.filter(t.person_id == v["person"]).drop(
        *(c for c in lookups.HIDDEN if c in t.columns))


def _orders(engine: Engine, records: list[dict[str, Any]], mapping: dict[str, str],
            limit: int, mask: bool, person: str | None = None) -> dict[str, Any]:
    """The person's orders: read from the lookup table when ``person`` is given, else found
    by their records' customer ids, cards and e-mails."""
    empty = {"total": 0, "amount": 0.0, "recent": []}
    if not records or not engine.exists("orders"):
        return empty
    values: dict[str, Any] = {"person": person} if person else {
        **_customer_values(mapping, records), "cards": _values(records, "loyalty_card"),
        "emails": _values(records, "email")}

    def mine(v: Mapping[str, Any]) -> ir.Table:
        if person:
            return _of_lookup(engine, lookups.PERSON_ORDERS, v)
        o = engine.table("orders")
        by_customer = _customer_match(o, "customer_id", v)
        by_card, by_email = _in(o.loyalty_card, v["cards"]), _in(o.email, v["emails"])
        return o.filter(by_customer | by_card | by_email).mutate(
            matched_by=ibis.cases((by_customer, "customer_id"), (by_card, "loyalty_card"),
                                  else_="email"))

    def recent(v: Mapping[str, Any]) -> ir.Table:
        # the totals ride along as window columns: one pass over the orders, not two
        m = mine(v)
        every = ibis.window()
        return m.mutate(_total=m._source.count().over(every),
                        _amount=m.amount.sum().over(every)).order_by(
            [ibis.desc("ordered_at"), "_source", "order_id"]).limit(limit)

    rows = _rows(engine, f"orders_recent{limit}{'_sorted' if person else ''}", values, recent)
    total, amount = (rows[0]["_total"], rows[0]["_amount"]) if rows else (0, 0.0)
    for r in rows:
        del r["_total"], r["_amount"]
    return {"total": int(total), "amount": float(amount or 0.0),
            "recent": [_mask_row(r, mask) for r in rows]}


def _events(engine: Engine, records: list[dict[str, Any]], anonymous_ids: list[str],
            mapping: dict[str, str], limit: int, mask: bool,
            person: str | None = None) -> dict[str, Any]:
    """The person's events, from the lookup table when ``person`` is given (as orders)."""
    if not records or not engine.exists("events"):
        return {"total": 0, "recent": []}
    values: dict[str, Any] = {"person": person} if person else {
        **_customer_values(mapping, records), "emails": _values(records, "email"),
        "anonymous": _distinct(anonymous_ids)}

    def mine(v: Mapping[str, Any]) -> ir.Table:
        if person:
            return _of_lookup(engine, lookups.PERSON_EVENTS, v)
        e = engine.table("events")
        by_user = _customer_match(e, "user_id", v)
        by_email = _in(e.email, v["emails"])
        # the device's visits from before the login, and user ids replaced by an alias call
        by_anon = _in(e.anonymous_id, v["anonymous"]) | _in(e.user_id, v["anonymous"])
        return e.filter(by_user | by_email | by_anon).mutate(
            matched_by=ibis.cases((by_user, "user_id"), (by_email, "email"),
                                  else_="anonymous_id"))

    def recent(v: Mapping[str, Any]) -> ir.Table:
        m = mine(v)  # the count rides along as a window column: one pass over the events
        return m.mutate(_total=m._source.count().over(ibis.window())).order_by(
            [ibis.desc("timestamp"), "_source", "message_id"]).limit(limit)

    found = _rows(engine, f"events_recent{limit}{'_sorted' if person else ''}", values, recent)
    total = int(found[0]["_total"]) if found else 0
    rows = []
    for r in found:
        del r["_total"]
        for k in ("properties", "context"):
            if k in r:
                r[k] = _json(r[k])
        rows.append(_mask_row(r, mask))
    return {"total": total, "recent": rows}


def _consents(engine: Engine, person_id: str, golden: dict[str, Any],
              records: list[dict[str, Any]]) -> dict[str, Any]:
    """The flags of the golden record and of each record, and the state of each purpose
    (``purposes``: the winning statement with its proof and the count of statements;
    ``statements``: every statement, newest first)."""
    from passerelle.consent.build import CONSENT_STATEMENTS, CONSENTS

    by_purpose: dict[str, list[dict[str, Any]]] = {}
    for table, key in ((CONSENTS, "purposes"), (CONSENT_STATEMENTS, "statements")):
        if engine.exists(table):
            def build(v: Mapping[str, Any], table: str = table) -> ir.Table:
                t = engine.table(table)
                rows = t.filter(t.person_id == v["person"]).drop("person_id", "run_id")
                return rows.order_by(
                    ["purpose", ibis.desc("stated_at"), "granted", "source", "record"])
            by_purpose[key] = _rows(engine, table, {"person": person_id}, build)
    return {
        "purposes": by_purpose.get("purposes", []),
        "statements": by_purpose.get("statements", []),
        "golden": {f: golden[f] for f in CONSENT_FIELDS},
        "by_record": [
            {"node": r["node"], "source": r["source"],
             **{f: r["fields"].get(f) for f in (*CONSENT_FIELDS, "consent_updated_at")}}
            for r in records
        ],
    }


def _traits(engine: Engine, person_id: str) -> list[dict[str, Any]] | None:
    if not engine.exists("traits"):
        return None
    rows = _of_person(engine, "traits", person_id)
    # each value sits in the one typed column of its kind (traits/store.py)
    out = [{"trait": r["trait"],
            "value": next((r[c] for c in _TRAIT_VALUES if r.get(c) is not None), None),
            "computed_at": r.get("computed_at")} for r in rows]
    return sorted(out, key=lambda r: str(r["trait"]))


_TRAIT_VALUES = ("value_number", "value_text", "value_date")


def _why(engine: Engine, nodes: list[str]) -> dict[str, Any]:
    """The edges inside the person (rule, evidence, since which run) and the pins on it."""
    values = {"nodes": _distinct(nodes)}
    edges: list[dict[str, Any]] = []
    if engine.exists(IDENTITY_EDGES):
        def inside(v: Mapping[str, Any]) -> ir.Table:
            e = engine.table(IDENTITY_EDGES)
            # one lookup per record (the table is kept sorted by node_a: lookups.py); an IN
            # list would read every edge between the lowest and the highest node
            found = ibis.union(*[e.filter((e.node_a == n) & _in(e.node_b, v["nodes"]))
                                 for n in v["nodes"]], distinct=False)
            return found.order_by(["rule", "node_a", "node_b"])
        for r in _rows(engine, "edges", values, inside):
            r["evidence"] = _json(r.get("evidence"))
            edges.append(r)
    pins: list[dict[str, Any]] = []
    if engine.exists(IDENTITY_PINS):
        def touching(v: Mapping[str, Any]) -> ir.Table:
            p = engine.table(IDENTITY_PINS)
            return p.filter(_in(p.node_a, v["nodes"]) | _in(p.node_b, v["nodes"])).order_by(
                ["created_at", "pin_id"])
        pins = _rows(engine, "pins", values, touching)
    return {"edges": edges, "pins": pins}
