"""The suppression list: identifiers of erased people, kept as SHA-256 hashes, whose rows
are removed from every source at each run.

Erasing a person from the warehouse is not enough: the CRM export of tomorrow still holds
them, and the next load would bring them back. So erasure writes the person's identifiers
here, hashed (the list must not become a copy of the data it suppresses), and after staging
every run deletes the staged rows that carry one of them, and the raw rows they came from.

Kinds of identifier, and the columns they are compared with:

- ``record``: ``<customer source>:<record id>``; a customer record, and the orders, events
  and sends whose ``customer_id`` / ``user_id`` refers to it through the source's
  ``customer_source``;
- ``email``, ``phone``, ``loyalty_card``: the normalised value, on every entity holding it;
- ``anonymous_id``: a device stitched to the person, on events (``anonymous_id``, and
  ``user_id`` for the user ids an alias call replaced);
- ``user_id`` and ``event`` (``<source>:<message id>``): the person's user ids and the
  events whose JSON holds their e-mail or phone (:mod:`passerelle.privacy.events`);
- ``order_id``: the person's orders, on order lines (which name no customer).

Hashes are of the staged (normalised) values, so ``Marie.Dupont@Example.FR `` in tomorrow's
file matches the hash of ``marie.dupont@example.fr``. This is pseudonymisation, not
anonymisation: whoever holds an e-mail address can test it against the list, which is what
the list is for.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir
import pyarrow as pa
import sqlglot as sg
import sqlglot.expressions as sge

from passerelle.engines.base import Engine
from passerelle.model import ENTITIES
from passerelle.privacy.rows import Removed, remove_rows
from passerelle.project.models import SourceConfig
from passerelle.runlog import utcnow

SUPPRESSIONS = "privacy_suppressions"
SUPPRESSIONS_SCHEMA = pa.schema([
    ("kind", pa.string()), ("value_sha256", pa.string()), ("request_id", pa.string()),
    ("created_at", pa.timestamp("us")),
])
KINDS = ("record", "email", "phone", "loyalty_card", "anonymous_id", "order_id",
         "user_id", "event")
# order_lines last: they are found through the order ids of the orders removed before them
ENTITY_ORDER = ("customers", "orders", "events", "campaign_sends", "ad_spend", "order_lines")


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def add_suppressions(engine: Engine, request_id: str,
                     values: Mapping[str, Iterable[str]]) -> int:
    """Hash and append ``{kind: values}``; returns the number of hashes written."""
    rows = [{"kind": kind, "value_sha256": sha256_hex(v), "request_id": request_id,
             "created_at": utcnow()}
            for kind, vs in values.items() for v in sorted(set(vs)) if v]
    if not rows:
        return 0
    unknown = {r["kind"] for r in rows} - set(KINDS)
    if unknown:
        raise ValueError(f"unknown suppression kinds: {sorted(unknown)}")
    table = pa.Table.from_pylist(rows, schema=SUPPRESSIONS_SCHEMA)
    return engine.append_arrow(SUPPRESSIONS, table.to_reader())


def has_suppressions(engine: Engine) -> bool:
    return engine.exists(SUPPRESSIONS) and engine.count(SUPPRESSIONS) > 0


def suppressed(engine: Engine, stg: ir.Table, source: SourceConfig,
               hashes: ir.Table) -> ir.BooleanValue | None:
    """Which staged rows of ``source`` carry an identifier of ``hashes`` (kind,
    value_sha256); None when the entity has no column a suppression can match."""
    def of(kind: str) -> ir.Column:
        return hashes.filter(hashes.kind == kind).value_sha256

    def hashed(value: ir.Value) -> ir.StringValue:
        return engine.sha256_hex(value.cast(dt.string))

    fields = set(ENTITIES[source.entity].field_names)
    conditions: list[ir.BooleanValue] = []
    if source.entity == "customers":
        conditions.append(hashed(stg._source + ":" + stg._record_id).isin(of("record")))
    for column, kind in (("email", "email"), ("phone", "phone"),
                         ("loyalty_card", "loyalty_card"), ("anonymous_id", "anonymous_id")):
        if column in fields:
            conditions.append(hashed(stg[column]).isin(of(kind)))
    reference = "user_id" if "user_id" in fields else "customer_id"
    if source.customer_source and reference in fields and source.entity != "customers":
        ref = ibis.literal(f"{source.customer_source}:") + stg[reference].cast(dt.string)
        conditions.append(hashed(ref).isin(of("record")))
    if source.entity == "events":
        conditions += [hashed(stg.user_id).isin(of("anonymous_id")),
                       hashed(stg.user_id).isin(of("user_id")),
                       hashed(stg._source + ":" + stg._record_id).isin(of("event"))]
    if source.entity == "order_lines":
        conditions.append(hashed(stg.order_id).isin(of("order_id")))
    return ibis.or_(*conditions) if conditions else None


def apply_suppressions(engine: Engine, source: SourceConfig, hashes: ir.Table | None = None,
                       dry_run: bool = False) -> Removed:
    """Delete from ``stg_<source>`` the rows matching the suppression list (or ``hashes``),
    and from ``raw_<source>`` every version of those records. ``dry_run`` only counts."""
    if hashes is None:
        if not has_suppressions(engine):
            return Removed(source.name)
        hashes = engine.table(SUPPRESSIONS)
    chosen = hashes
    return remove_rows(engine, source, lambda stg: suppressed(engine, stg, source, chosen),
                       dry_run)


def apply_to_sources(engine: Engine, sources: Iterable[SourceConfig], request_id: str,
                     hashes: ir.Table | None = None, dry_run: bool = False) -> list[Removed]:
    """Apply the list (or ``hashes``) to every source, in the order in which removals
    cascade: the orders removed add their ids, which remove their order lines."""
    ordered = sorted(sources, key=lambda s: (ENTITY_ORDER.index(s.entity)
                                             if s.entity in ENTITY_ORDER else 99, s.name))
    results = []
    for source in ordered:
        applied = apply_suppressions(engine, source, hashes, dry_run)
        results.append(applied)
        if source.entity == "events" and applied.record_ids and not dry_run:
            _forget_violations(engine, source.name, applied.record_ids)
        if source.entity != "orders" or not applied.record_ids:
            continue
        if hashes is None:  # the list itself: the order ids join it
            add_suppressions(engine, request_id, {"order_id": applied.record_ids})
        else:
            hashes = hashes.union(ibis.memtable(pa.table({
                "kind": ["order_id"] * len(applied.record_ids),
                "value_sha256": [sha256_hex(v) for v in applied.record_ids]})).cast(
                    hashes.schema()), distinct=False)
    return results


def _forget_violations(engine: Engine, source: str, message_ids: list[str]) -> None:
    """The tracking-plan violations of removed events quote their properties."""
    from passerelle.collect.plan import VIOLATIONS_TABLE

    if not engine.exists(VIOLATIONS_TABLE):
        return
    engine.execute(sge.delete(sg.table(VIOLATIONS_TABLE, quoted=True), where=sge.and_(
        sg.column("source", quoted=True).eq(sge.convert(source)),
        sg.column("message_id", quoted=True).isin(*[sge.convert(m) for m in message_ids]))))
