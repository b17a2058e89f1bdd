"""The golden record: one row a person in ``profiles``, each value with the source it came from.

Survivorship is decided per field in SQL: every record of a person is ranked with a window
function under the field's rule (records without a value come last), and the first-ranked
record gives both the value and ``<field>__source``. Ties always end on ``_source`` then
``_record_id`` so every engine picks the same winner.

Rules (``identity.yml`` -> ``survivorship``):

- ``source_priority``: the first source of ``source_priority`` that has a value; sources not
  listed come after, then the most recent record wins.
- ``most_recent``: the value of the record updated last (``updated_at``, else ``_loaded_at``).
- ``most_frequent``: the value most records agree on; ties go to the most recent.
- ``first_non_empty``: the oldest value (``created_at``, else ``updated_at``, else
  ``_loaded_at``): what the person first told us.

Consents never follow these rules: ``consent_email`` and ``consent_sms`` keep the latest choice
the person expressed (``consent_updated_at``; at the same time a withdrawal wins, as in
``consents``, see passerelle.consent; then the record's recency), whichever source recorded
it. A withdrawal in the newest system must win over an older opt-in in the most trusted one.
"""

from __future__ import annotations

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir

from passerelle.engines.base import Engine
from passerelle.errors import PasserelleError
from passerelle.identity.tables import (
    CUSTOMER_RECORDS,
    PERSON_MAP,
    PROFILES,
    node_of,
    replace_rows,
)
from passerelle.project.identity_models import CONSENT_FIELDS, IDENTITY_FIELDS, Rule, Survivorship

# Golden fields in the order of the ``profiles`` columns; each is followed by ``<field>__source``.
GOLDEN_FIELDS: tuple[str, ...] = IDENTITY_FIELDS
_PROFILES_NEXT = "_identity_profiles_next"
RULES: tuple[str, ...] = ("source_priority", "most_recent", "most_frequent", "first_non_empty")


class SurvivorshipError(PasserelleError, ValueError):
    """``identity.yml`` names a survivorship field the golden record does not have."""


def records_with_person(engine: Engine, persons: ir.Table | None = None) -> ir.Table:
    """``customer_records`` with the ``person_id`` each record belongs to (inner join);
    only the records of ``persons`` (a table of ``person_id``) when given."""
    records = engine.table(CUSTOMER_RECORDS)
    pmap = engine.table(PERSON_MAP).select("node", "person_id")
    if persons is not None:
        pmap = pmap.semi_join(persons, "person_id")
    records = records.mutate(_node=node_of(records))
    return records.join(pmap, records._node == pmap.node).drop("node")


def recency(t: ir.Table) -> ir.Value:
    """When a record last changed: ``updated_at``, else when it was loaded."""
    return ibis.coalesce(t.updated_at, t._loaded_at)


def _helper_columns(t: ir.Table, rules: dict[str, Rule], priority: list[str]) -> ir.Table:
    """Sort keys computed once: recency, age, source rank, value frequencies.

    They are materialised before the ranking windows because SQL forbids a window function
    (the frequency count) inside another window's ORDER BY.
    """
    rank = (t._source.cases(*[(s, i) for i, s in enumerate(priority)], else_=len(priority))
            if priority else ibis.literal(0))
    helpers: dict[str, ir.Value] = {
        "_recency": recency(t),
        "_age": ibis.coalesce(t.created_at, t.updated_at, t._loaded_at),
        "_priority": rank,
    }
    for f, rule in rules.items():
        if rule == "most_frequent":
            same = ibis.window(group_by=[t.person_id, t[f]])
            helpers[f"_n_{f}"] = t._record_id.count().over(same)
    return t.mutate(**helpers)


def _order_key(rule: str, field: str) -> str:
    """Fields whose rankings sort records the same way share one window (one sort)."""
    return f"most_frequent:{field}" if rule == "most_frequent" else rule


def _rule_keys(t: ir.Table, key: str) -> list[tuple[ir.Value, bool]]:
    """The keys ranking a person's records under one rule (the winner first), each with
    whether it sorts descending; NULLs always last, ties end on ``_source`` then
    ``_record_id``.

    Whether the field has a value is left out on purpose: the winner is the best-ranked
    record *among those with a value*, found afterwards, so fields under the same rule
    share one ordering.
    """
    latest = (t._recency, True)
    rule, _, field = key.partition(":")
    if rule == "source_priority":
        keys = [(t._priority, False), latest]
    elif rule == "most_recent":
        keys = [latest]
    elif rule == "most_frequent":
        keys = [(t[f"_n_{field}"], True), latest]
    elif rule == "first_non_empty":
        keys = [(t._age, False)]
    elif rule == "consent":  # false sorts first: a withdrawal wins at the same time
        keys = [(t.consent_updated_at, True), (t[field], False), latest]
    else:  # pragma: no cover - the config model restricts the rules
        raise SurvivorshipError(f"Unknown survivorship rule '{rule}'.",
                                f"Use one of: {', '.join(RULES)}.")
    return [*keys, (t._source, False), (t._record_id, False)]


def _order(t: ir.Table, key: str) -> list[ir.Value]:
    """ORDER BY of a window ranking a person's records under one rule (the winner first)."""
    return [ibis.desc(v, nulls_first=False) if descending else ibis.asc(v, nulls_first=False)
            for v, descending in _rule_keys(t, key)]


def field_rules(survivorship: Survivorship) -> dict[str, Rule]:
    """The rule of every golden field; refuses fields the golden record does not have."""
    unknown = sorted(set(survivorship.fields) - set(GOLDEN_FIELDS))
    if unknown:
        consent = [f for f in unknown if f in CONSENT_FIELDS]
        hint = (" Consents always keep the latest choice the person expressed; remove "
                f"{', '.join(consent)}." if consent else "")
        raise SurvivorshipError(
            f"identity.yml: survivorship.fields names unknown field(s): {', '.join(unknown)}.",
            f"Use golden fields only ({', '.join(GOLDEN_FIELDS)}).{hint}")
    return {f: survivorship.fields.get(f, survivorship.default) for f in GOLDEN_FIELDS}


def profiles_expr(engine: Engine, survivorship: Survivorship, run_id: str,
                  persons: ir.Table | None = None) -> ir.Table:
    """The ``profiles`` table as one Ibis expression.

    One sorted window a distinct ordering (a rule, or a most-frequent field) ranks every
    record; a partition-only window finds, per field, the best rank among records with a
    value; one GROUP BY keeps that record's value and source.
    """
    rules = field_rules(survivorship)
    t = _helper_columns(records_with_person(engine, persons), rules,
                        survivorship.source_priority)
    keys = {f: _order_key(rules[f], f) for f in GOLDEN_FIELDS} | {f: f"consent:{f}"
                                                                 for f in CONSENT_FIELDS}
    if engine.name == "duckdb":
        return _profiles_by_arg_min(t, keys, run_id)
    ranks: dict[str, ir.Value] = {
        f"_rk_{i}": ibis.row_number().over(group_by=t.person_id, order_by=_order(t, key))
        for i, key in enumerate(dict.fromkeys(keys.values()))
    }
    ranks["_r_source"] = ibis.row_number().over(group_by=[t.person_id, t._source],
                                                order_by=t._record_id)
    ranked = t.mutate(**ranks)
    slot = {key: f"_rk_{i}" for i, key in enumerate(dict.fromkeys(keys.values()))}
    # the best rank among the records that have a value: a partition-only window, no sort
    best = {f"_best_{f}": ranked[slot[k]].min(where=ranked[f].notnull()).over(
        group_by=ranked.person_id) for f, k in keys.items()}
    r = ranked.mutate(**best)

    metrics: dict[str, ir.Value] = {}
    won = {f: r[slot[k]] == r[f"_best_{f}"] for f, k in keys.items()}
    for f in (*GOLDEN_FIELDS, *CONSENT_FIELDS):
        metrics[f] = r[f].max(where=won[f])
        metrics[f"{f}__source"] = r._source.max(where=won[f])
    metrics["record_count"] = r.count().cast("int64")
    metrics["sources"] = r._source.group_concat(",", where=r._r_source == 0, order_by=r._source)
    metrics["first_seen_at"] = ibis.coalesce(r.created_at, r._loaded_at).min()
    metrics["last_updated_at"] = r._recency.max()
    for f in CONSENT_FIELDS:
        metrics[f"{f}__updated_at"] = r.consent_updated_at.max(where=won[f])
    profiles = r.group_by("person_id").aggregate(**metrics)
    return profiles.mutate(run_id=ibis.literal(run_id, "string"))


@ibis.udf.scalar.builtin(name="epoch_us")
def _epoch_us(value: dt.timestamp) -> dt.int64: ...


def _sort_key(t: ir.Table, key: str) -> ir.StructValue:
    """The ORDER BY of :func:`_order` as one value that sorts the same way ascending: a
    struct, timestamps as epoch microseconds, descending keys negated (a NULL field sorts
    last, as NULLS LAST does)."""
    parts = []
    for value, descending in _rule_keys(t, key):
        if value.type().is_temporal():
            value = _epoch_us(value.cast("timestamp"))
        parts.append(-value if descending else value)
    return ibis.struct({f"k{i}": v for i, v in enumerate(parts)})


def _arg_min(value: ir.Value, key: ir.StructValue, where: ir.BooleanValue) -> ir.Scalar:
    """DuckDB's ``arg_min``: ``value`` on the row with the smallest ``key``."""
    fn = ibis.udf.agg.builtin(lambda arg, key: None, name="arg_min",
                              signature=((value.type(), key.type()), value.type()))
    return fn(value, key, where=where)


def _profiles_by_arg_min(t: ir.Table, keys: dict[str, str], run_id: str) -> ir.Table:
    """:func:`profiles_expr` on DuckDB: the same winners, found by one hash aggregation
    (``arg_min`` over each rule's sort key) instead of a sorted window per rule. A person
    of one record (most of them) is that record: it skips the aggregation altogether."""
    sizes = t.group_by("person_id").aggregate(_n=t.count())
    t = t.join(sizes, "person_id")
    many = _aggregated(t.filter(t._n > 1), keys)
    one = t.filter(t._n == 1)
    single: dict[str, ir.Value] = {"person_id": one.person_id}
    for f in (*GOLDEN_FIELDS, *CONSENT_FIELDS):
        single[f] = one[f]
        single[f"{f}__source"] = ibis.ifelse(one[f].notnull(), one._source,
                                             ibis.null("string"))
    single["record_count"] = ibis.literal(1, "int64")
    single["sources"] = one._source
    single["first_seen_at"] = ibis.coalesce(one.created_at, one._loaded_at)
    single["last_updated_at"] = one._recency
    for f in CONSENT_FIELDS:
        single[f"{f}__updated_at"] = ibis.ifelse(one[f].notnull(), one.consent_updated_at,
                                                 ibis.null("timestamp"))
    singles = one.select(**single).cast(many.schema()).select(many.columns)
    return ibis.union(many, singles).mutate(run_id=ibis.literal(run_id, "string"))


def _aggregated(t: ir.Table, keys: dict[str, str]) -> ir.Table:
    """One row a person of several records. Each field's winner gives its value, its source
    (and, for consents, when it was expressed) through one ``arg_min`` over a struct of them:
    one aggregate a field instead of one a column, half the work (measured at 1M records)."""
    slots = {k: f"_key_{i}" for i, k in enumerate(dict.fromkeys(keys.values()))}
    t = t.mutate(**{slot: _sort_key(t, k) for k, slot in slots.items()})
    winners: dict[str, ir.Value] = {}
    for f in (*GOLDEN_FIELDS, *CONSENT_FIELDS):
        parts = {"value": t[f], "source": t._source}
        if f in CONSENT_FIELDS:
            parts["updated_at"] = t.consent_updated_at
        winners[f"_won_{f}"] = _arg_min(ibis.struct(parts), t[slots[keys[f]]],
                                        t[f].notnull())
    per = t.group_by("person_id").aggregate(
        **winners, record_count=t.count().cast("int64"),
        sources=t._source.collect(distinct=True).sort().join(","),
        first_seen_at=ibis.coalesce(t.created_at, t._loaded_at).min(),
        last_updated_at=t._recency.max())
    columns: dict[str, ir.Value] = {}
    for f in (*GOLDEN_FIELDS, *CONSENT_FIELDS):
        columns[f] = per[f"_won_{f}"]["value"]
        columns[f"{f}__source"] = per[f"_won_{f}"]["source"]
    columns.update(record_count=per.record_count, sources=per.sources,
                   first_seen_at=per.first_seen_at, last_updated_at=per.last_updated_at)
    for f in CONSENT_FIELDS:
        columns[f"{f}__updated_at"] = per[f"_won_{f}"]["updated_at"]
    return per.select("person_id", **columns)


def build_profiles(engine: Engine, survivorship: Survivorship, run_id: str,
                   persons: ir.Table | None = None) -> int:
    """Rebuild ``profiles`` from ``customer_records`` and ``person_map``; returns its row count.

    Columns: ``person_id``; each golden field then ``<field>__source``; ``consent_email``,
    ``consent_email__source``, ``consent_sms``, ``consent_sms__source``; ``record_count``,
    ``sources`` (sorted, comma-separated), ``first_seen_at``, ``last_updated_at``; and, after
    the contract's columns, ``consent_email__updated_at``, ``consent_sms__updated_at`` (when
    the winning choice was expressed) and ``run_id``.

    ``persons`` (an incremental run: a table of ``person_id``, the persons whose records
    changed, ids gone included) limits the work to them: their rows are deleted and
    rebuilt, every other profile is kept as it is.
    """
    if persons is None or not engine.exists(PROFILES):
        engine.replace_table(PROFILES, profiles_expr(engine, survivorship, run_id))
    else:
        engine.replace_table(_PROFILES_NEXT, profiles_expr(engine, survivorship, run_id,
                                                           persons))
        replace_rows(engine, PROFILES, "person_id", persons, engine.table(_PROFILES_NEXT))
        engine.drop(_PROFILES_NEXT)
    return engine.count(PROFILES)
