"""Retention (GDPR art. 5(1)(e), storage limitation): rows older than the project keeps them
are deleted at every run, staged and raw alike.

Durations are set per entity in ``passerelle.yml`` (``retention:``), in days, and counted
from each row's own time (an event's time, an order's date, a message's send time), not from
its load. Order lines go with their order. The step runs on every source at every run, even
when nothing new was loaded: rows age out with the calendar, not with the loads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir

from passerelle.engines.base import Engine
from passerelle.model import ENTITIES
from passerelle.privacy.rows import Removed, remove_rows
from passerelle.project.models import RetentionConfig, SourceConfig


def apply_retention(engine: Engine, sources: Iterable[SourceConfig], retention: RetentionConfig,
                    now: datetime) -> list[Removed]:
    """Delete the rows past their retention; order lines go first, with their orders."""
    sources = list(sources)
    removed: list[Removed] = []
    if retention.orders is not None:
        old_orders = [engine.table(f"stg_{s.name}") for s in sources
                      if s.entity == "orders" and engine.exists(f"stg_{s.name}")]
        old_ids = [t.filter(_older_than("ordered_at", now, retention.orders)(t)).order_id
                   for t in old_orders]
        if old_ids:
            ids = ibis.union(*[i.as_table() for i in old_ids], distinct=True).order_id
            for source in sources:
                if source.entity == "order_lines":
                    removed.append(remove_rows(engine, source,
                                               lambda stg: stg.order_id.isin(ids)))
    for source in sources:
        days = getattr(retention, source.entity, None) if source.entity in (
            "events", "campaign_sends", "orders") else None
        if days is not None:
            column = ENTITIES[source.entity].event_time
            removed.append(remove_rows(engine, source, _older_than(column, now, days)))
    return [r for r in removed if r.staged_rows or r.raw_rows]


def _older_than(column: str, now: datetime,
                days: int) -> Callable[[ir.Table], ir.BooleanValue]:
    cutoff = ibis.literal(now - timedelta(days=days), type=dt.timestamp)
    return lambda stg: stg[column].cast(dt.timestamp) < cutoff
