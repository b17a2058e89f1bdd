"""Orders, order lines and events with the ``person_id`` they belong to.

Every trait is built on these three expressions, so the rule "which person does this row
belong to" is written once:

1. orders: the order source's ``customer_source`` + ``customer_id`` is a customer record, and
   ``person_map(source, record_id)`` gives its person; failing that, the order's
   ``loyalty_card``, then its ``email``, equal to that of customer records of exactly one
   person (a card or address shared by several people attributes nothing);
2. events: ``user_id`` through the events source's ``customer_source`` the same way, then
   ``email`` (identify calls carry one), then ``anonymous_id`` through the anonymous
   identifiers stitched to persons (``identity_anonymous_ids``, see
   :mod:`passerelle.identity.anonymous`), then ``user_id`` through the same table (a user
   id the site replaced, named by an alias call's ``previousId``);
3. order lines: the person of their order, matched on ``order_id`` (lines sources do not say
   which orders source they detail: an order id used by two orders sources matches both).

Rows attributed to nobody are left out. ``matched_by`` says which rule attributed each row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir

from passerelle.engines.base import Engine
from passerelle.identity.tables import CUSTOMER_RECORDS, PERSON_MAP
from passerelle.model import ENTITIES
from passerelle.project.models import SourceConfig


def person_orders(engine: Engine, sources: Mapping[str, SourceConfig]) -> ir.Table:
    """The ``orders`` view with ``person_id`` and ``matched_by``.

    ``amount`` stays a decimal: its sums are exact, so they do not depend on the order the
    engine adds rows in (float sums do, and every run would then record spends, RFM scores
    and CLV a few ulps away as changes)."""
    orders = engine.table("orders")
    return _attribute(engine, orders, sources, "orders", "customer_id",
                      ("loyalty_card", "email"))


def person_events(engine: Engine, sources: Mapping[str, SourceConfig]) -> ir.Table:
    """The ``events`` view with ``person_id`` and ``matched_by``, anonymous visits included."""
    from passerelle.identity.tables import ANONYMOUS_IDS

    stitched = []
    if engine.exists(ANONYMOUS_IDS):
        anon = engine.table(ANONYMOUS_IDS)
        stitched = [("anonymous_id", "anonymous_id", anon), ("alias", "user_id", anon)]
    return _attribute(engine, engine.table("events"), sources, "events", "user_id", ("email",),
                      stitched)


def attributed_events(engine: Engine, sources: Mapping[str, SourceConfig]) -> ir.Table:
    """Events attributed by their own ``user_id`` or ``email`` only: the evidence from which
    anonymous identifiers are stitched."""
    return _attribute(engine, engine.table("events"), sources, "events", "user_id", ("email",))


def person_order_lines(engine: Engine, sources: Mapping[str, SourceConfig],
                       orders: ir.Table | None = None) -> ir.Table:
    """The ``order_lines`` view with the person, time and channel of their order.

    ``orders``: :func:`person_orders` already computed (e.g. kept in a work table), with at
    least ``order_id``, ``person_id``, ``ordered_at``, ``channel`` and ``matched_by``.
    """
    lines = engine.table("order_lines")
    orders = person_orders(engine, sources) if orders is None else orders
    heads = orders.select(_order_id=orders.order_id, person_id=orders.person_id,
                          ordered_at=orders.ordered_at, channel=orders.channel,
                          matched_by=orders.matched_by)
    joined = lines.join(heads, lines.order_id == heads._order_id)
    return joined.select(
        "_source", "_record_id", *ENTITIES["order_lines"].field_names,
        "ordered_at", "channel", "person_id", "matched_by",
    )


def _attribute(engine: Engine, rows: ir.Table, sources: Mapping[str, SourceConfig],
               entity: str, id_column: str, keys: tuple[str, ...],
               stitched: Sequence[tuple[str, str, ir.Table]] = ()) -> ir.Table:
    """Rows with the person they belong to. ``stitched`` adds, after the keys, lookups
    (name, column, table of ``anonymous_id`` -> ``person_id``) tried in order."""
    person_map = engine.table(PERSON_MAP)
    pairs = [(rows._source == name, ibis.literal(cfg.customer_source))
             for name, cfg in sorted(sources.items())
             if cfg.entity == entity and cfg.customer_source]
    customer_source = (ibis.cases(*pairs) if pairs else ibis.null(dt.string))
    base = rows.mutate(_customer_source=customer_source)

    by_id = person_map.select(_pm_source=person_map.source, _pm_record=person_map.record_id,
                              _by_id=person_map.person_id)
    joined = base.left_join(by_id, (base._customer_source == by_id._pm_source)
                            & (base[id_column] == by_id._pm_record))
    candidates: list[tuple[str, ir.Value]] = [(id_column, joined._by_id)]
    if engine.exists(CUSTOMER_RECORDS):
        for key in keys:
            lookup = _unique_key_owner(engine, person_map, key)
            joined = joined.left_join(lookup, joined[key] == lookup[f"_k_{key}"])
            candidates.append((key, joined[f"_by_{key}"]))
    for name, column, table in stitched:
        view = table.view()
        lookup = view.select(**{f"_s_{name}": view.anonymous_id, f"_by_{name}": view.person_id})
        joined = joined.left_join(lookup, joined[column] == lookup[f"_s_{name}"])
        candidates.append((name, joined[f"_by_{name}"]))
    person = ibis.coalesce(*[value for _, value in candidates])
    matched_by = ibis.cases(*[(value.notnull(), ibis.literal(name))
                              for name, value in candidates])
    columns = ["_source", "_record_id", *ENTITIES[entity].field_names]
    out = joined.select(*columns, person_id=person, matched_by=matched_by)
    return out.filter(out.person_id.notnull())


def _unique_key_owner(engine: Engine, person_map: ir.Table, key: str) -> ir.Table:
    """key value -> person, for values held by the records of exactly one person."""
    records = engine.table(CUSTOMER_RECORDS)
    owned = records.join(person_map, (records._source == person_map.source)
                         & (records._record_id == person_map.record_id))
    owned = owned.filter(owned[key].notnull())
    grouped = owned.group_by(owned[key].name("_value")).aggregate(
        _people=owned.person_id.nunique(), _person=owned.person_id.min())
    unique = grouped.filter(grouped._people == 1)
    return unique.select(**{f"_k_{key}": unique._value, f"_by_{key}": unique._person})
