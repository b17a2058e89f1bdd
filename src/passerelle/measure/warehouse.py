"""Touches and conversions of every person, from the warehouse's events, sends and orders.

The measurement functions (:mod:`passerelle.measure.attribution`,
:mod:`passerelle.measure.campaigns`) take two plain tables; this module builds them from a
project's warehouse, stitched by person:

- ``touches``: ``person_id, touch_time, channel, campaign_id``. A web/app *visit* is one
  touch: consecutive events of a person with the same channel and campaign less than
  ``session_gap`` (30 minutes) apart are one visit, timed at its first event; events without
  a channel count as ``direct``. Every e-mail or SMS send is a touch too (channel of the send,
  ``touch_time`` = ``sent_at``), attributed to its person through the sends source's
  ``customer_source`` and ``person_map`` (then the e-mail / phone, as orders are).
- ``conversions``: ``person_id, conversion_time, revenue``: orders attributed to a person,
  without the statuses in ``exclude_statuses`` (cancelled by default; refunds stay, with
  their negative amount if the source records one).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta

import ibis
import ibis.expr.types as ir

from passerelle.engines.base import Engine
from passerelle.errors import PasserelleError
from passerelle.project.models import SourceConfig

SESSION_GAP = timedelta(minutes=30)
DIRECT = "direct"
TOUCH_COLUMNS = ("person_id", "touch_time", "channel", "campaign_id")


def require_tables(engine: Engine, names: Sequence[str]) -> None:
    """Refuse clearly when the pipeline has not produced what measurement reads."""
    missing = [n for n in names if not engine.exists(n)]
    if missing:
        raise PasserelleError(f"The warehouse has no {', '.join(missing)} yet, so results cannot "
                              "be computed.", "Run `passerelle run` first (identity included).")


def visits(events: ir.Table, session_gap: timedelta = SESSION_GAP) -> ir.Table:
    """Events (with ``person_id``) -> one touch per visit (see the module docstring)."""
    e = events.filter(events.person_id.notnull()).select(
        person_id=events.person_id, touch_time=events.timestamp,
        channel=events.channel.fill_null(DIRECT), campaign_id=events.campaign_id)
    w = ibis.window(group_by=e.person_id, order_by=[e.touch_time, e.channel])
    e = e.mutate(_prev=e.touch_time.lag().over(w), _pch=e.channel.lag().over(w),
                 _pca=e.campaign_id.fill_null("").lag().over(w))
    gap = ibis.interval(seconds=int(session_gap.total_seconds()))
    new = (e._prev.isnull() | (e.touch_time > e._prev + gap) | (e.channel != e._pch)
           | (e.campaign_id.fill_null("") != e._pca))
    return e.filter(new).select(*TOUCH_COLUMNS)


def send_touches(engine: Engine, sources: Mapping[str, SourceConfig]) -> ir.Table:
    """Campaign sends attributed to their person (one touch per send)."""
    from passerelle.identity.attribution import _attribute

    sends = _attribute(engine, engine.table("campaign_sends"), sources, "campaign_sends",
                       "customer_id", ("email", "phone"))
    return sends.select(person_id=sends.person_id, touch_time=sends.sent_at,
                        channel=sends.channel, campaign_id=sends.campaign_id)


def touches(engine: Engine, sources: Mapping[str, SourceConfig], include_sends: bool = True,
            session_gap: timedelta = SESSION_GAP) -> ir.Table:
    """Visits from events, plus sends when the warehouse has them."""
    from passerelle.identity.attribution import person_events

    parts: list[ir.Table] = []
    if engine.exists("events"):
        parts.append(visits(person_events(engine, sources), session_gap))
    if include_sends and engine.exists("campaign_sends"):
        parts.append(send_touches(engine, sources))
    if not parts:
        raise PasserelleError("The warehouse has neither events nor campaign sends: there are "
                              "no touches to measure.", "Add an events or campaign_sends source "
                              "and run `passerelle run`.")
    cast = [p.select(person_id=p.person_id.cast("string"),
                     touch_time=p.touch_time.cast("timestamp"),
                     channel=p.channel.cast("string"), campaign_id=p.campaign_id.cast("string"))
            for p in parts]
    return cast[0].union(*cast[1:], distinct=False) if len(cast) > 1 else cast[0]


def conversions(engine: Engine, sources: Mapping[str, SourceConfig],
                exclude_statuses: Sequence[str] = ("cancelled",),
                channels: Sequence[str] | None = None) -> ir.Table:
    """Orders with their person: ``person_id, conversion_time, revenue``."""
    from passerelle.identity.attribution import person_orders

    o = person_orders(engine, sources)
    if exclude_statuses:
        o = o.filter(o.status.isnull() | ~o.status.isin(list(exclude_statuses)))
    if channels:
        o = o.filter(o.channel.isin(list(channels)))
    return o.select(person_id=o.person_id.cast("string"),
                    conversion_time=o.ordered_at.cast("timestamp"),
                    revenue=o.amount.cast("float64"))
