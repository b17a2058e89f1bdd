"""Deterministic matching: records sharing a normalised key value are one person.

Staging has already normalised the values (lower-case e-mail, E.164 phone...), so matching
is an equality join, done in SQL. Two things keep it safe and small:

- the *shared-key guard*: a value seen with more distinct names than ``max_names`` (a
  family e-mail, a shop's phone number) is not used to merge, and is listed instead;
- a *spanning* set of edges: the k records holding one value are each linked to the
  smallest of them (k-1 edges), never all k·(k-1)/2 pairs, so a loyalty card typed on
  10,000 till tickets stays 9,999 edges. Components are the same either way. Records
  already in ``person_map`` (earlier runs) are preferred as the root, so a new record
  with a smaller reference adds one edge instead of re-wiring the k-1 existing ones
  (which the ledger would report as k-1 unlinks and k links).

With ``first_names_must_agree`` a key also asks the first names to agree (see
:func:`first_names_agree`): a couple sharing one e-mail address is two people, each linked
to their own records. The records of a value are then grouped by first name (folded,
nicknames mapped to one form); each group is spanned as above and two groups are joined by
one edge between their roots when their names agree. Records without a first name join the
value only when every name on it agrees (else nobody can tell whose record it is).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import ibis
import ibis.expr.types as ir

from passerelle.engines.base import Engine
from passerelle.identity.tables import (
    EDGE_SCHEMA,
    IDENTITY_SHARED_KEYS,
    KEY_EDGES,
    KEY_WEIGHT,
    PERSON_MAP,
    SHARED_KEYS_SCHEMA,
    node_of,
)
from passerelle.project.identity_models import DeterministicKey

_EDGE_COLUMNS = [c for c in EDGE_SCHEMA.names if c != "first_seen_run"]


def key_rule(field: str) -> str:
    """The ``rule`` written on edges made by a key on ``field``."""
    return f"key:{field}"


def _keyed(records: ir.Table, key: DeterministicKey) -> ir.Table:
    """(node, value, name) of the records that hold a usable value for ``key``; with
    ``first_names_must_agree`` the name is the folded first name (nicknames mapped to one
    form) and ``last`` the folded last name."""
    if key.sources:
        records = records.filter(records["_source"].isin(list(key.sources)))
    value = records[key.field].cast("string")
    records = records.filter(value.notnull() & (value.strip() != ""))
    first, last = records["first_name"], records["last_name"]
    if key.first_names_must_agree:
        firsts, lasts = _folded_names(records)
        j = records.left_join(firsts, records.first_name.cast("string") == firsts.raw_first)
        j = j.left_join(lasts, j.last_name.cast("string") == lasts.raw_last)
        return j.select(node=node_of(j), value=j[key.field].cast("string"),
                        name=j.folded_first, last=j.folded_last)
    # NULL names say nothing: they never count as a distinct name.
    name = ibis.ifelse(
        first.isnull() & last.isnull(), ibis.null("string"),
        first.cast("string").fill_null("") + "|" + last.cast("string").fill_null(""),
    )
    return records.select(node=node_of(records), value=value, name=name)


def _folded_names(records: ir.Table) -> tuple[ir.Table, ir.Table]:
    """(raw_first, folded_first) with nicknames mapped to one form, and (raw_last,
    folded_last), over distinct names: folding runs once per name, not once per record (a
    million records hold a few hundred thousand names). A NULL name joins nothing and
    stays NULL, as folding it would give."""
    from passerelle.identity.names import fold
    from passerelle.identity.splink_settings import nickname_map

    firsts = records.select(raw_first=records.first_name.cast("string")).distinct()
    folded = fold(firsts.raw_first)
    lasts = records.select(raw_last=records.last_name.cast("string")).distinct()
    return (firsts.mutate(folded_first=folded.substitute(nickname_map(), else_=folded)),
            lasts.mutate(folded_last=fold(lasts.raw_last)))


def first_names_agree(a: ir.StringValue, b: ir.StringValue, last_a: ir.StringValue,
                      last_b: ir.StringValue) -> ir.BooleanValue:
    """Folded first names that may be one person's: equal, one the start or the end of the
    other (an initial, a short form: Alex, Manue), the same first three letters (Margot and
    Margaux, a typo late in the name), one typo apart (same first letter, lengths within
    one, same last letters; or, four letters at least, same first letter and length and
    one half of the name as written: a letter replaced or two swapped early in the name,
    Akix/Alix, Édtih/Édith, Mrrc/Marc), or first and last names swapped. Written with
    portable string functions, so every engine gives the same answer."""
    la, lb = a.length(), b.length()
    half = (la // 2).cast("int32")  # PostgreSQL: substring takes int positions
    in_half = ((la == lb) & (la >= 4) & (a.substr(0, 1) == b.substr(0, 1))
               & ((a.substr(0, half) == b.substr(0, half))
                  | (a.substr(half) == b.substr(half))))
    typo = (a.substr(0, 3) == b.substr(0, 3)) | in_half | (
        (a.substr(0, 1) == b.substr(0, 1)) & ((la - lb).abs() <= 1)
        & ((a.right(3) == b.right(3))
           | ((a.substr(0, 2) == b.substr(0, 2)) & (a.right(2) == b.right(2)))))
    short = (a.startswith(b) | b.startswith(a)
             | ((lb >= 4) & a.endswith(b)) | ((la >= 4) & b.endswith(a)))
    swapped = (a == last_b.fill_null("")) | (b == last_a.fill_null(""))
    return (a == b) | short | typo | swapped


def _roots(keyed: ir.Table, by: list[str], known: ir.Table | None) -> ir.Table:
    """The root of each group of ``by``: its smallest node, records of earlier runs first
    (a newcomer never moves the root)."""
    if known is not None:
        marked = keyed.left_join(known, "node")
        rank = ibis.ifelse(marked.seen.isnull(), "1", "0") + marked.node
        return marked.group_by(by).agg(root=rank.min().substr(1))
    return keyed.group_by(by).agg(root=keyed.node.min())


def _as_edges(pairs: ir.Table, key: DeterministicKey, run_id: str) -> ir.Table:
    return pairs.select(
        node_a=pairs.root, node_b=pairs.node,
        rule=ibis.literal(key_rule(key.field)),
        weight=ibis.literal(KEY_WEIGHT, "float64"),
        match_probability=ibis.literal(1.0, "float64"),
        evidence=ibis.literal(json.dumps({"field": key.field})),
        run_id=ibis.literal(run_id),
    ).distinct()


def _span(keyed: ir.Table, by: list[str], known: ir.Table | None) -> ir.Table:
    """(root, node) for every record of a group but its root."""
    joined = keyed.join(_roots(keyed, by, known), by)
    joined = joined.filter(joined.node != joined.root)
    return joined.select("root", "node")


def _name_pairs(named: ir.Table, known: ir.Table | None) -> ir.Table:
    """Every two first-name groups of a value: their roots, the later name, and whether
    the two names agree."""
    groups = _roots(named, ["value", "name"], known).join(
        named.group_by(["value", "name"]).agg(last=named["last"].min()), ["value", "name"])
    g1, g2 = groups.view(), groups.view()
    return g1.join(g2, (g1.value == g2.value) & (g1.name < g2.name)).select(
        value=g1.value, root=g1.root, node=g2.root, later=g2.name,
        agree=first_names_agree(g1.name, g2.name, g1["last"], g2["last"]))


def _name_stats(keyed: ir.Table, key: DeterministicKey, pairs: ir.Table | None) -> ir.Table:
    """(value, distinct_names, records). With ``first_names_must_agree`` a first name that
    agrees with an earlier one (a nickname, a typo, swapped names) is not a new name."""
    stats = keyed.group_by("value").agg(
        distinct_names=keyed.name.nunique(), records=keyed.count())
    if pairs is None:
        return stats
    echoes = pairs.filter(pairs.agree).select("value", "later").distinct()
    echoes = echoes.group_by("value").agg(echoes=echoes.count())
    joined = stats.left_join(echoes, "value")
    return joined.select(joined.value, distinct_names=joined.distinct_names
                         - joined.echoes.fill_null(0), records=joined.records)


def _edges_for_key(keyed: ir.Table, key: DeterministicKey, run_id: str,
                   known: ir.Table | None, pairs: ir.Table | None) -> ir.Table:
    if not key.first_names_must_agree:
        return _as_edges(_span(keyed, ["value"], known), key, run_id)
    named = keyed.filter(keyed.name.notnull())
    if pairs is None:
        pairs = _name_pairs(named, known)
    # a value whose names all agree: its records without a first name join its first group
    mixed = pairs.filter(~pairs.agree).select("value").distinct()
    unnamed = keyed.filter(keyed.name.isnull()).anti_join(mixed, "value")
    anchor = _roots(named, ["value"], known).rename(anchor="root")
    unnamed = unnamed.left_join(anchor, "value").select("value", "node", "anchor")
    lone = _span(unnamed.filter(unnamed.anchor.isnull()).drop("anchor"), ["value"], known)
    parts = [
        _span(named, ["value", "name"], known),  # same first name
        pairs.filter(pairs.agree).select("root", "node"),  # agreeing names, root to root
        unnamed.filter(unnamed.anchor.notnull()).select(root=unnamed.anchor,
                                                        node=unnamed.node),
        lone,  # nobody on the value has a first name
    ]
    return _as_edges(ibis.union(*parts, distinct=True), key, run_id)


def key_values(records: ir.Table, key: DeterministicKey) -> ir.Table:
    """``(node, value)``: the usable values of ``key`` the records hold."""
    return _keyed(records, key).select("node", "value")


def _holding(records: ir.Table, values_of: ir.Table, key: DeterministicKey) -> ir.Table:
    """The records holding a value of ``key`` that one of ``values_of``'s records holds."""
    values = key_values(values_of, key).select("value").distinct()
    return records.semi_join(values, records[key.field].cast("string") == values.value)


def holders(records: ir.Table, values_of: ir.Table, key: DeterministicKey) -> ir.Table:
    """``(node, value)`` of every record holding a value of ``key`` that one of
    ``values_of``'s records holds: the records whose edges on ``key`` those values decide."""
    return key_values(_holding(records, values_of, key), key)


def deterministic_edges(engine: Engine, records: ir.Table, keys: Sequence[DeterministicKey],
                        run_id: str, *, edges_table: str = KEY_EDGES,
                        shared_table: str = IDENTITY_SHARED_KEYS,
                        values_of: ir.Table | None = None) -> tuple[ir.Table, ir.Table]:
    """Link the records sharing a value of each key; refuse values shared by many names.

    Writes the edges to the working table ``_identity_key_edges`` (identity_edges columns
    without ``first_seen_run``, which the graph step adds) and the refused values to
    ``identity_shared_keys`` (replaced: it describes this run). Returns both tables. A
    preview (`identity diff`) passes other table names so the current graph is untouched.

    ``values_of`` (an incremental run: the new records) limits the work to the values those
    records hold: every edge and refusal of such a value is computed on all the records
    holding it, exactly as a full run would, and no other value is looked at.
    """
    known = None
    if engine.exists(PERSON_MAP):
        pm = engine.table(PERSON_MAP)
        known = pm.select(node=pm.node, seen=ibis.literal(True))
    edge_parts: list[ir.Table] = []
    shared_parts: list[ir.Table] = []
    scratch: list[str] = []

    def materialised(name: str, expr: ir.Table) -> ir.Table:
        # Each key's records and name pairs are read by the guard and by the edges: written
        # once, they are not folded and self-joined twice.
        scratch.append(name)
        return engine.scratch_table(name, expr)

    for i, key in enumerate(keys):
        holders = records if values_of is None else _holding(records, values_of, key)
        keyed = materialised(f"_{edges_table}_keyed_{i}", _keyed(holders, key))
        pairs = None
        if key.first_names_must_agree:
            pairs = materialised(f"_{edges_table}_pairs_{i}",
                                 _name_pairs(keyed.filter(keyed.name.notnull()), known))
        if key.max_names is not None:
            stats = _name_stats(keyed, key, pairs)
            refused = materialised(f"_{edges_table}_refused_{i}", stats.filter(
                stats.distinct_names > key.max_names))
            shared_parts.append(refused.select(
                field=ibis.literal(key.field), value=refused.value,
                distinct_names=refused.distinct_names.cast("int64"),
                records=refused.records.cast("int64"), run_id=ibis.literal(run_id)))
            keyed = keyed.anti_join(refused.select("value"), "value")
            if pairs is not None:
                pairs = pairs.anti_join(refused.select("value"), "value")
        edge_parts.append(_edges_for_key(keyed, key, run_id, known, pairs))

    if edge_parts:
        edges = ibis.union(*edge_parts, distinct=True) if len(edge_parts) > 1 else edge_parts[0]
        engine.replace_table(edges_table, edges.cast(
            {c: EDGE_SCHEMA[c] for c in _EDGE_COLUMNS}).select(_EDGE_COLUMNS))
    else:
        engine.drop(edges_table)
        engine.create_empty(edges_table, ibis.schema({c: EDGE_SCHEMA[c] for c in _EDGE_COLUMNS}))

    if shared_parts:
        shared = ibis.union(*shared_parts) if len(shared_parts) > 1 else shared_parts[0]
        engine.replace_table(shared_table, shared)
    else:
        engine.drop(shared_table)
        engine.create_empty(shared_table, SHARED_KEYS_SCHEMA)
    for name in scratch:
        engine.drop(name)
    return engine.table(edges_table), engine.table(shared_table)
