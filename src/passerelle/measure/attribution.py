"""Who gets the credit for a conversion: rule-based and data-driven attribution.

A *journey* is the ordered list of touches (channel, time) a person had before a
conversion, within a look-back window and after their previous conversion. Journeys are
built and the rule-based models are computed by the engine (Ibis window expressions);
the data-driven models need only the count of each distinct path, also aggregated in SQL,
so Python handles a few thousand distinct paths, never the people.

Tables expected:
- ``touches``: ``person_id, touch_time (timestamp), channel, campaign_id``;
- ``conversions``: ``person_id, conversion_time (timestamp), revenue`` (refunds may be
  negative: credit is shared the same way, so a channel can be credited negative revenue).
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

import ibis
import ibis.expr.types as ir

from passerelle.measure.intervals import MeasureError

if TYPE_CHECKING:  # imported where used: `passerelle campaigns` needs neither
    import pandas as pd

RULE_MODELS = ("first", "last", "last_non_direct", "linear", "time_decay", "position_based")
SEPARATOR = " > "


def check_lookback(lookback: timedelta) -> None:
    if lookback < timedelta(days=1):
        raise MeasureError(f"A look-back window of {lookback} is shorter than a day.",
                           "Use a window of at least one day (7, 30 or 90 days are usual).")


def journeys(touches: ir.Table, conversions: ir.Table, lookback: timedelta) -> ir.Table:
    """One row per (conversion, touch) that leads to it, with its position in the journey.

    A touch counts for a conversion when it happened at or before the conversion, less than
    ``lookback`` before it, and after the person's previous conversion (so each touch is
    credited once). Conversions without any touch in their window are not in the result.
    Columns: ``conversion_id`` (``person_id#n``, the person's n-th conversion), ``person_id,
    conversion_time, revenue, touch_time, channel, campaign_id, position`` (1 = first),
    ``touches`` (journey length), ``seconds_before``.
    """
    check_lookback(lookback)
    # one window per person (not a global row_number, which engines run on one thread)
    w_person = ibis.window(group_by=conversions.person_id,
                           order_by=[conversions.conversion_time, conversions.revenue])
    conv = conversions.mutate(
        _seq=ibis.row_number().over(w_person),
        previous_time=conversions.conversion_time.lag().over(w_person),
    )
    conv = conv.mutate(conversion_id=conv.person_id.cast("string") + ibis.literal("#")
                       + conv._seq.cast("string"))
    t = touches.select("person_id", "touch_time", "channel", "campaign_id")
    start = conv.conversion_time - ibis.interval(seconds=int(lookback.total_seconds()))
    joined = conv.join(
        t,
        [conv.person_id == t.person_id,
         t.touch_time <= conv.conversion_time,
         t.touch_time > start,
         conv.previous_time.isnull() | (t.touch_time > conv.previous_time)],
    ).select(conv.conversion_id, conv.person_id, conv.conversion_time, conv.revenue,
             t.touch_time, t.channel, t.campaign_id)
    w = ibis.window(group_by=joined.conversion_id,
                    order_by=[joined.touch_time, joined.channel])
    return joined.mutate(
        position=ibis.row_number().over(w) + 1,
        touches=joined.conversion_id.count().over(group_by=joined.conversion_id),
        seconds_before=(joined.conversion_time.epoch_seconds()
                        - joined.touch_time.epoch_seconds()).cast("float64"),
    )


def rule_weights(journey: ir.Table, half_life: timedelta = timedelta(days=7),
                 direct: str = "direct") -> ir.Table:
    """The journey rows with one credit column per rule-based model (credits sum to 1).

    - ``first`` / ``last``: all credit to the first / last touch;
    - ``last_non_direct``: the last touch that is not ``direct`` (the last touch when all are);
    - ``linear``: equal shares;
    - ``time_decay``: a touch ``half_life`` older than another gets half its credit;
    - ``position_based``: 40 % first, 40 % last, 20 % shared by the middle (50/50 for two).
    """
    if half_life <= timedelta(0):
        raise MeasureError("The time-decay half-life must be positive.", "Use e.g. 7 days.")
    j = journey
    non_direct = j.channel.notnull() & (j.channel != direct)
    decay = (-(math.log(2) / half_life.total_seconds()) * j.seconds_before).exp()
    j = j.mutate(_nd_pos=ibis.ifelse(non_direct, j.position, ibis.null("int64")),
                 _decay=decay)
    # both over the same partition, with no ordering: one cheap window pass
    j = j.mutate(_nd_last=j._nd_pos.max().over(group_by=j.conversion_id),
                 _decay_sum=j._decay.sum().over(group_by=j.conversion_id))
    first = ibis.ifelse(j.position == 1, 1.0, 0.0)
    last = ibis.ifelse(j.position == j.touches, 1.0, 0.0)
    # PostgreSQL cannot cast a boolean to a number: flags are CASE expressions
    lnd = ibis.ifelse((j.position == j._nd_last)
                      | (j._nd_last.isnull() & (j.position == j.touches)), 1.0, 0.0)
    middle = 0.2 / (j.touches - 2).cast("float64").nullif(0)
    position_based = ibis.cases(
        (j.touches == 1, 1.0),
        (j.touches == 2, 0.5),
        ((j.position == 1) | (j.position == j.touches), 0.4),
        else_=middle,
    )
    return j.mutate(first=first, last=last, last_non_direct=lnd,
                    linear=1.0 / j.touches.cast("float64"), time_decay=j._decay / j._decay_sum,
                    position_based=position_based.cast("float64")
                    ).drop("_nd_pos", "_decay", "_nd_last", "_decay_sum")


def rule_based(journey: ir.Table, by: Sequence[str] = ("channel",),
               half_life: timedelta = timedelta(days=7), direct: str = "direct") -> ir.Table:
    """Conversions and revenue credited per ``by`` group by every rule-based model.

    Columns: ``*by``, then ``<model>_conversions`` and ``<model>_revenue`` per model.
    """
    w = rule_weights(journey, half_life, direct)
    aggs: dict[str, ir.Value] = {}
    for m in RULE_MODELS:
        aggs[f"{m}_conversions"] = w[m].sum()
        aggs[f"{m}_revenue"] = (w[m] * w.revenue.cast("float64")).sum()
    return w.group_by(list(by)).aggregate(**aggs).order_by(list(by))


_PATH_COLUMNS = ("path", "conversions", "revenue", "non_conversions")


def converting_paths(journey: ir.Table) -> ir.Table:
    """Distinct channel paths of the converting journeys (a :func:`journeys` table):
    ``path, conversions, revenue, non_conversions`` (0), ``single_touch`` (conversions
    whose journey has one touch)."""
    j = journey
    # an ordered list joined afterwards: cheaper than an ordered string aggregate in DuckDB
    per = j.group_by("conversion_id").aggregate(
        _channels=j.channel.collect(order_by=[j.position]),
        revenue=j.revenue.cast("float64").max(), _n=j.touches.max())
    per = per.mutate(path=per._channels.join(SEPARATOR))
    return per.group_by("path").aggregate(
        conversions=per.count().cast("int64"), revenue=per.revenue.sum(),
        non_conversions=ibis.literal(0, type="int64"),
        single_touch=ibis.ifelse(per._n == 1, 1, 0).sum().cast("int64"))


def lost_paths(touches: ir.Table, conversions: ir.Table, lookback: timedelta) -> ir.Table:
    """Distinct channel paths that did not convert: a person's touches after their last
    conversion (all touches for people who never converted), within ``lookback`` of their
    last touch. Columns ``path, conversions`` (0), ``revenue`` (0), ``non_conversions``."""
    check_lookback(lookback)
    last_conv = conversions.group_by(_pid="person_id").aggregate(
        last_time=conversions.conversion_time.max())
    t = touches.left_join(last_conv, touches.person_id == last_conv._pid).select(
        touches.person_id, touches.touch_time, touches.channel, last_conv.last_time)
    t = t.filter(t.last_time.isnull() | (t.touch_time > t.last_time))
    # a GROUP BY joined back costs less than a window over every remaining touch
    last = t.group_by(_lpid=t.person_id).aggregate(last_touch=t.touch_time.max())
    t = t.join(last, t.person_id == last._lpid)
    t = t.filter(t.touch_time > t.last_touch - ibis.interval(seconds=int(lookback.total_seconds())))
    per = t.group_by("person_id").aggregate(
        _channels=t.channel.collect(order_by=[t.touch_time, t.channel]))
    per = per.mutate(path=per._channels.join(SEPARATOR))
    return per.group_by("path").aggregate(
        conversions=ibis.literal(0, type="int64"), revenue=ibis.literal(0.0),
        non_conversions=per.count().cast("int64"))


def path_counts(touches: ir.Table, conversions: ir.Table, lookback: timedelta,
                journey: ir.Table | None = None) -> ir.Table:
    """Distinct channel paths with their conversions, revenue and non-conversions.

    Converting paths are the journeys of :func:`journeys` (pass ``journey`` when it is
    already built); non-converting paths come from :func:`lost_paths`. Channels are joined
    with ``' > '``. Everything is aggregated by the engine: Python receives one row per
    distinct path. Columns: ``path, conversions, revenue, non_conversions``.
    """
    j = journey if journey is not None else journeys(touches, conversions, lookback)
    cols = list(_PATH_COLUMNS)
    both = converting_paths(j).select(*cols).union(
        lost_paths(touches, conversions, lookback).select(*cols), distinct=False)
    return both.group_by("path").aggregate(
        conversions=both.conversions.sum(), revenue=both.revenue.sum(),
        non_conversions=both.non_conversions.sum()).order_by("path")


@dataclass(frozen=True)
class PathCount:
    """One distinct journey: its channels in order, how often it converted or not."""

    channels: tuple[str, ...]
    conversions: float
    non_conversions: float = 0.0
    revenue: float = 0.0


def paths_from_rows(rows: Iterable[tuple[str, float, float, float]]) -> list[PathCount]:
    """PathCounts from ``(path, conversions, revenue, non_conversions)`` rows of
    :func:`path_counts`."""
    return [PathCount(tuple(p.split(SEPARATOR)), float(c or 0), float(nc or 0), float(r or 0))
            for p, c, r, nc in rows]


@dataclass(frozen=True)
class Credit:
    """Credit per channel from a data-driven model."""

    conversions: dict[str, float]
    revenue: dict[str, float]
    removal_effects: dict[str, float] | None = None


def markov(paths: Sequence[PathCount]) -> Credit:
    """First-order Markov chain attribution by removal effect.

    States are ``start``, the channels, ``conversion`` and ``null``. The probability of
    reaching ``conversion`` from ``start`` is solved exactly (absorbing chain, linear
    system). A channel's removal effect is the share of that probability lost when the
    channel is removed (its visitors go to ``null``); conversions and revenue are shared in
    proportion to the removal effects (as the ChannelAttribution package does).
    """
    import numpy as np

    channels = sorted({c for p in paths for c in p.channels})
    if not channels:
        raise MeasureError("There are no journeys to attribute.", "Check touches and window.")
    idx = {c: i + 1 for i, c in enumerate(channels)}  # 0 = start
    k = len(channels) + 1
    counts = np.zeros((k, k))
    to_conv, to_null = np.zeros(k), np.zeros(k)
    for p in paths:
        total = p.conversions + p.non_conversions
        states = [0] + [idx[c] for c in p.channels]
        for s, t in itertools.pairwise(states):
            counts[s, t] += total
        to_conv[states[-1]] += p.conversions
        to_null[states[-1]] += p.non_conversions
    out = counts.sum(axis=1) + to_conv + to_null
    out[out == 0] = 1.0
    q, r = counts / out[:, None], to_conv / out

    def p_conversion(removed: int | None) -> float:
        qq, rr = q.copy(), r.copy()
        if removed is not None:
            qq[removed, :] = 0.0
            rr[removed] = 0.0
        return float(np.linalg.solve(np.eye(k) - qq, rr)[0])

    base = p_conversion(None)
    if base <= 0:
        raise MeasureError("No journey converted, so there is nothing to attribute.",
                           "Widen the window or check the conversions table.")
    effects = {c: 1 - p_conversion(idx[c]) / base for c in channels}
    total_effect = sum(effects.values())
    conv = sum(p.conversions for p in paths)
    rev = sum(p.revenue for p in paths)
    return Credit({c: e / total_effect * conv for c, e in effects.items()},
                  {c: e / total_effect * rev for c, e in effects.items()}, effects)


def shapley(paths: Sequence[PathCount]) -> Credit:
    """Shapley values over channel sets, value of a set = conversions whose channels it covers.

    With v(S) = Σ conversions of journeys whose set of channels is inside S, the Shapley
    value has a closed form (Zhao, Mahboobi & Bagheri 2018, "simplified Shapley"): each
    journey's conversions are split equally among its distinct channels. It is exact, and
    costs one pass over the distinct paths instead of 2^channels coalitions.
    """
    conv: dict[str, float] = defaultdict(float)
    rev: dict[str, float] = defaultdict(float)
    for p in paths:
        members = set(p.channels)
        for c in members:
            conv[c] += p.conversions / len(members)
            rev[c] += p.revenue / len(members)
    return Credit(dict(sorted(conv.items())), dict(sorted(rev.items())))


def compare_models(rule_rows: pd.DataFrame, markov_credit: Credit | None = None,
                   shapley_credit: Credit | None = None, by: str = "channel",
                   value: str = "conversions") -> pd.DataFrame:
    """One table, one row per channel, one column per model, so the choice is visible.

    ``rule_rows`` is :func:`rule_based` executed (by channel); ``value`` is
    ``conversions`` or ``revenue``. Every column sums to the same total.
    """
    import pandas as pd

    table = pd.DataFrame({by: rule_rows[by]})
    for m in RULE_MODELS:
        table[m] = rule_rows[f"{m}_{value}"].astype(float).to_numpy()
    for name, credit in (("markov", markov_credit), ("shapley", shapley_credit)):
        if credit is not None:
            source = credit.conversions if value == "conversions" else credit.revenue
            table[name] = table[by].map(source).fillna(0.0).astype(float)
    return table.sort_values(by).reset_index(drop=True)
