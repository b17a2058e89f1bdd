"""Finding a person from any identifier: person id, node, customer id, e-mail, phone, card,
name words. Every query is built with Ibis and run with bound values (engine.prepared); no
user input becomes SQL text. While the table of identifiers sorted by value is current
(:mod:`passerelle.identity.lookups`) a search reads only it; otherwise each kind of
identifier is looked for in the records.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import ibis
import ibis.expr.types as ir

from passerelle.engines.base import Engine
from passerelle.errors import PasserelleError
from passerelle.identity import lookups
from passerelle.identity.name_index import NAME_WORDS, has_words, name_words, scan_words
from passerelle.identity.tables import CUSTOMER_RECORDS, PERSON_MAP, node_of

# How a query matched, best first: the order of find_persons' results.
MATCH_KINDS = ("person_id", "node", "customer_id", "email", "phone", "loyalty_card", "name")


class IdentityNotBuilt(PasserelleError, LookupError):
    """There is no identity graph yet in this warehouse."""


def normalise_email(text: str) -> str:
    """The staging rule for e-mail keys: trimmed and lower-cased."""
    return text.strip().lower()


def normalise_phone(text: str, default_region: str | None) -> str | None:
    """E.164 as staging writes it (``06 12 34 56 78`` -> ``+33612345678`` in FR), else None."""
    from passerelle.staging.dictionaries import normalize_phone

    number, _issue = normalize_phone(text.strip(), default_region)  # type: ignore[arg-type]
    return number


def _require_identity(engine: Engine) -> None:
    if not engine.exists(PERSON_MAP):
        raise IdentityNotBuilt(
            "Identity has not been resolved in this warehouse yet (no person_map table).",
            "Run `passerelle run` to load the sources and resolve identity.")


def find_persons(engine: Engine, query: str, limit: int = 20, *,
                 default_region: str | None = None) -> list[dict[str, Any]]:
    """Persons matching any identifier: person id, node, customer id, e-mail, phone, card.

    Returns ``[{"person_id", "matched_by": [kinds], "nodes": [matched records]}]``, exact ids
    first, at most ``limit`` persons. ``default_region`` is the project's phone region.
    """
    _require_identity(engine)
    text = query.strip()
    if not text:
        return []
    values: dict[str, Any] = {"text": text}
    with_records, indexed, words = engine.exists(CUSTOMER_RECORDS), False, []
    if with_records:
        if "@" in text:
            values["email"] = normalise_email(text)
        phone = normalise_phone(text, default_region)
        if phone:
            values["phone"] = phone
        words = name_words(text)
        indexed = engine.exists(NAME_WORDS)
        if words:
            values["words"] = sorted(set(words)) if indexed else [f" {w} " for w in words]
    lit = ibis.literal

    def build(v: Mapping[str, Any]) -> ir.Table:
        pm = engine.table(PERSON_MAP)

        def hits(t: ir.Table, kind: str, node: ir.StringValue) -> ir.Table:
            return t.select(person_id=t.person_id, node=node, kind=lit(kind, "string"),
                            prio=lit(MATCH_KINDS.index(kind), "int64"))

        by_id, by_node = pm.filter(pm.person_id == v["text"]), pm.filter(pm.node == v["text"])
        parts = [hits(by_id, "person_id", lit(None, "string")),
                 hits(by_node, "node", by_node.node)]
        if with_records:
            cr = engine.table(CUSTOMER_RECORDS)
            conds: list[tuple[ir.BooleanValue, str]] = [
                ((cr._record_id == v["text"]) | (cr.customer_id == v["text"]), "customer_id"),
                (cr.loyalty_card == v["text"], "loyalty_card"),
            ]
            if "email" in v:
                conds.append((cr.email == v["email"], "email"))
            if "phone" in v:
                conds.append((cr.phone == v["phone"], "phone"))
            if "words" in v and not indexed:
                conds.append((scan_words(cr, v["words"]), "name"))
            for cond, kind in conds:
                found = cr.filter(cond)
                found = found.mutate(_node=node_of(found))
                joined = found.join(pm, found._node == pm.node)
                parts.append(hits(joined, kind, joined.node))
            if "words" in v and indexed:  # the index of folded name words (name_index.py)
                named = has_words(engine, v["words"])
                joined = named.join(pm, named.node == pm.node)
                parts.append(hits(joined, "name", joined.node))
        union = ibis.union(*parts, distinct=True)
        best = union.group_by("person_id").aggregate(best=union.prio.min())
        chosen = best.order_by(["best", "person_id"]).limit(limit)
        return union.join(chosen, "person_id").order_by(["best", "person_id", "prio", "node"])

    keyed = with_records and lookups.current(engine)
    if keyed:
        values["words"] = sorted(set(words)) if words else []

    def by_keys(v: Mapping[str, Any]) -> ir.Table:
        """The same matches from the table of identifiers sorted by value (lookups.py)."""
        k = engine.table(lookups.SEARCH_KEYS)
        wanted = [v["text"], *(v[n] for n in ("email", "phone") if n in v), *v["words"]]
        # one lookup per value (an IN list lets the engine skip only what lies outside the
        # lowest and highest of them: "dupont helene" read every key from d to h)
        k = ibis.union(*[k.filter(k.value == w) for w in wanted], distinct=False)
        exact = k.kind.isin(["person_id", "node", "customer_id", "loyalty_card"]) & (
            k.value == v["text"])
        for name in ("email", "phone"):
            if name in v:
                exact |= (k.kind == name) & (k.value == v[name])
        found = k.filter(exact).select("person_id", "node", "kind")
        if v["words"]:
            named = k.filter((k.kind == "name") & k.value.isin(v["words"]))
            nodes = named.group_by(["person_id", "node"]).aggregate(
                n=named.value.nunique())
            nodes = nodes.filter(nodes.n == len(v["words"]))
            found = found.union(nodes.select("person_id", "node",
                                             kind=lit("name", "string")))
        prio = ibis.cases(*[(found.kind == kind, i) for i, kind in enumerate(MATCH_KINDS)])
        union = found.mutate(prio=prio.cast("int64")).distinct()
        best = union.group_by("person_id").aggregate(best=union.prio.min())
        chosen = best.order_by(["best", "person_id"]).limit(limit)
        return union.join(chosen, "person_id").order_by(["best", "person_id", "prio", "node"])

    if keyed:
        shape = ("find_persons_keyed", limit, "email" in values, "phone" in values,
                 bool(values["words"]))
        rows = engine.prepared(shape, values, by_keys).to_pylist()
    else:
        rows = engine.prepared(("find_persons", with_records, indexed, limit), values,
                               build).to_pylist()
    out: dict[str, dict[str, Any]] = {}
    for r in rows:  # at most `limit` persons' matches
        item = out.setdefault(r["person_id"], {"person_id": r["person_id"], "matched_by": [],
                                               "nodes": []})
        if r["kind"] not in item["matched_by"]:
            item["matched_by"].append(r["kind"])
        if r["node"] and r["node"] not in item["nodes"]:
            item["nodes"].append(r["node"])
    return list(out.values())
