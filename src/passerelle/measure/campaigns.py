"""Campaign results and incrementality, each figure with its interval.

Two questions, two answers:

- *What happened around the campaign?* Spend, reach, conversions, revenue, CPA, ROAS and
  ROI for the people it touched (:func:`campaign_stats`, :func:`campaign_result`). These
  figures count conversions that would have happened anyway.
- *What did the campaign cause?* Treated vs held-out people of the same audience
  (:func:`holdout_stats`, :func:`incrementality`): the lift and the incremental ROI. This
  is the number the CFO should see.

The intervals treat the people touched as a sample of the people the campaign could
touch: they answer "how different could this figure be with another draw of the same
audience?". Spend is known exactly; its uncertainty is not modelled. Revenue may be
negative (refunds): it enters every sum as is, and ROAS and ROI can then be negative.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

import ibis
import ibis.expr.types as ir

from passerelle.errors import PasserelleError
from passerelle.measure.intervals import (
    Interval,
    MeasureError,
    Moments,
    newcombe,
    relative_lift,
    welch_diff,
    welch_mean,
    wilson,
)

GRAINS = ("day", "week", "month")


class CurrencyError(PasserelleError, ValueError):
    """Spend in a currency the analysis cannot convert."""


def check_currencies(found: Iterable[str | None], currency: str,
                     rates: Mapping[str, float] | None = None) -> None:
    """Refuse spend in another currency unless a rate to ``currency`` is given.

    ``found`` are the distinct values of ``ad_spend.currency`` (NULL means ``currency``).
    """
    rates = rates or {}
    foreign = sorted({c for c in found if c and c != currency and c not in rates})
    if foreign:
        raise CurrencyError(
            f"Ad spend is recorded in {', '.join(foreign)}, but results are in {currency} and "
            "no exchange rate was given, so spend cannot be added up.",
            f"Pass rates, e.g. rates={{'{foreign[0]}': 1.08}} (1 {foreign[0]} = 1.08 "
            f"{currency}), or convert the spend in the source.")


def _check_window(window: timedelta) -> None:
    if window < timedelta(days=1):
        raise MeasureError(f"A conversion window of {window} is shorter than a day.",
                           "Use a window of at least one day (7 or 14 days are usual).")


def _purchases(c: ir.Table) -> ir.IntegerValue:
    """1 for a purchase, 0 for a refund row (negative amount) or no row at all: a refund
    alone is not a conversion, though its amount still counts in revenue."""
    return ibis.ifelse(c.conversion_time.notnull() & (c.revenue >= 0), 1, 0)


def _period(ts: ir.TimestampValue, grain: str | None) -> ir.Value:
    if grain is None:
        return ibis.literal(None, type="date")
    if grain not in GRAINS:
        raise MeasureError(f"Unknown period {grain!r}.", f"Use one of {', '.join(GRAINS)}.")
    unit = {"day": "D", "week": "W", "month": "M"}[grain]
    return ts.truncate(unit).cast("date")


def spend_totals(ad_spend: ir.Table, currency: str, rates: Mapping[str, float] | None = None,
                 by: Sequence[str] = ("campaign_id", "channel"),
                 grain: str | None = None) -> ir.Table:
    """Spend in ``currency`` per ``by`` (and ``period``); call :func:`check_currencies` first."""
    rates = dict(rates or {})
    rate: ir.Value = ibis.literal(1.0)
    if rates:
        rate = ibis.cases(*[(ad_spend.currency == c, ibis.literal(float(r)))
                            for c, r in rates.items()], else_=ibis.literal(1.0))
    s = ad_spend.mutate(_eur=ad_spend.spend.cast("float64") * rate,
                        period=_period(ad_spend.date.cast("timestamp"), grain))
    return s.group_by([*by, "period"]).aggregate(spend=s._eur.sum())


def campaign_stats(touches: ir.Table, conversions: ir.Table, window: timedelta,
                   by: Sequence[str] = ("campaign_id", "channel"),
                   grain: str | None = None) -> ir.Table:
    """Per ``by`` (and ``period`` of the first touch): reach and conversion sums over people.

    A person is reached at their first touch of the group; they convert when they have a
    conversion within ``window`` after it. Columns: ``*by, period, reach, converters,
    revenue_sum, revenue_sq`` (the sufficient statistics of :func:`campaign_result`).
    """
    _check_window(window)
    first = touches.group_by(["person_id", *by]).aggregate(first_touch=touches.touch_time.min())
    c = conversions
    joined = first.left_join(
        c, [first.person_id == c.person_id, c.conversion_time >= first.first_touch,
            c.conversion_time < first.first_touch + ibis.interval(
                seconds=int(window.total_seconds()))])
    per_person = joined.group_by([first.person_id, *[first[b] for b in by],
                                  first.first_touch]).aggregate(
        converted=_purchases(c).sum().clip(upper=1),
        revenue=c.revenue.cast("float64").sum().fill_null(0.0))
    per_person = per_person.mutate(period=_period(per_person.first_touch, grain))
    return per_person.group_by([*by, "period"]).aggregate(
        reach=per_person.count(), converters=per_person.converted.sum(),
        revenue_sum=per_person.revenue.sum(),
        revenue_sq=(per_person.revenue * per_person.revenue).sum())


@dataclass(frozen=True)
class CampaignResult:
    spend: float
    reach: int
    conversions: Interval  # people who converted
    revenue: Interval
    cpa: Interval  # spend per conversion
    roas: Interval  # revenue per unit of spend
    roi: Interval  # (revenue - spend) / spend
    notes: tuple[str, ...] = ()


def campaign_result(spend: float, reach: int, converters: float, revenue_sum: float,
                    revenue_sq: float, level: float = 0.95) -> CampaignResult:
    """CPA, ROAS and ROI with intervals from per-person conversions and revenue.

    Conversions: Wilson interval of the rate × reach. Revenue: t interval of revenue per
    person × reach. CPA, ROAS and ROI are monotone in those totals for a known spend, so
    their bounds are the transformed bounds. No spend → CPA, ROAS, ROI do not exist.
    """
    if reach <= 0:
        raise MeasureError("The campaign reached nobody in this window.",
                           "Check the window and the touches of the campaign.")
    if spend <= 0:
        raise MeasureError("The campaign has no spend, so CPA, ROAS and ROI do not exist.",
                           "Check ad_spend for this campaign and period.")
    notes: list[str] = []
    conv = wilson(converters, reach, level).scaled(reach)
    rev_m = Moments(reach, revenue_sum, revenue_sq)
    if reach >= 2 and rev_m.variance > 0:
        revenue = welch_mean(rev_m, level).scaled(reach)
    else:
        revenue = Interval(revenue_sum, revenue_sum, revenue_sum, level, "exact")
        notes.append("Revenue does not vary between people: its interval has no width.")
    if revenue_sum < 0:
        notes.append("Refunds exceed sales: revenue is negative.")
    cpa_est = spend / converters if converters > 0 else math.inf
    cpa_lo = spend / conv.high if conv.high > 0 else math.inf
    cpa_hi = spend / conv.low if conv.low > 0 else math.inf
    if converters == 0:
        notes.append("No conversion: the CPA is infinite.")
    cpa = Interval(cpa_est, cpa_lo, cpa_hi, level, "wilson-transformed")
    roas = revenue.scaled(1 / spend)
    roi = revenue.scaled(1 / spend, -1.0)
    return CampaignResult(spend, int(reach), conv, revenue, cpa, roas, roi, tuple(notes))


def holdout_stats(audience: ir.Table, conversions: ir.Table, window: timedelta) -> ir.Table:
    """Per campaign and group (treated / holdout): people, converters, revenue sums.

    ``audience``: ``campaign_id, person_id, group, assigned_at`` (the send time for treated
    people, the time they would have been sent for held-out ones). A person converts when
    a conversion falls in ``[assigned_at, assigned_at + window)``.
    Columns: ``campaign_id, group, people, converters, revenue_sum, revenue_sq``.
    """
    _check_window(window)
    a, c = audience, conversions
    joined = a.left_join(c, [a.person_id == c.person_id, c.conversion_time >= a.assigned_at,
                             c.conversion_time < a.assigned_at + ibis.interval(
                                 seconds=int(window.total_seconds()))])
    per = joined.group_by([a.campaign_id, a.group, a.person_id]).aggregate(
        converted=_purchases(c).sum().clip(upper=1),
        revenue=c.revenue.cast("float64").sum().fill_null(0.0))
    return per.group_by(["campaign_id", "group"]).aggregate(
        people=per.count(), converters=per.converted.sum(), revenue_sum=per.revenue.sum(),
        revenue_sq=(per.revenue * per.revenue).sum()).order_by(["campaign_id", "group"])


@dataclass(frozen=True)
class Incrementality:
    """What the campaign caused, from treated vs held-out people of one audience.

    A figure is None where it does not exist for this data; ``notes`` then says why.
    """

    treated_people: int
    holdout_people: int
    conversion_treated: Interval
    conversion_holdout: Interval
    absolute_lift: Interval  # points of conversion rate caused
    relative_lift: Interval | None  # +0.12 = 12 % more buyers; None when no holdout buyer
    incremental_conversions: Interval
    revenue_per_person_lift: Interval | None
    incremental_revenue: Interval | None
    incremental_roi: Interval | None  # (incremental revenue - spend) / spend
    notes: tuple[str, ...] = field(default=())
    revenue_treated: Interval | None = None  # revenue per person
    revenue_holdout: Interval | None = None
    revenue_relative_lift: Interval | None = None  # revenue per person, treated / holdout - 1
    spend: float | None = None


def _mean_interval(m: Moments, level: float) -> Interval:
    if m.n >= 2 and m.variance > 0:
        return welch_mean(m, level)
    return Interval(m.mean, m.mean, m.mean, level, "exact")


def incrementality(treated: Sequence[float], holdout: Sequence[float],
                   spend: float | None = None, level: float = 0.95) -> Incrementality:
    """Lift caused by a campaign: ``treated`` and ``holdout`` are ``(people, converters,
    revenue_sum, revenue_sq)`` as returned by :func:`holdout_stats`.

    Conversion rates use Wilson, their difference Newcombe, the relative lifts the delta
    method; revenue per person uses Welch. Incremental figures scale the per-person lift
    to the treated people; the incremental ROI takes ``spend`` as known. An empty group is
    refused (no answer at all). Figures that do not exist are None with a note: the relative
    conversion lift when nobody in the holdout bought, revenue lifts when revenue does not
    vary, the ROI without spend.
    """
    nt, ct, rt, qt = (float(x) for x in treated)
    nh, ch, rh, qh = (float(x) for x in holdout)
    if nt <= 0 or nh <= 0:
        empty = "treated" if nt <= 0 else "holdout"
        raise MeasureError(f"The {empty} group of this campaign is empty, so its effect cannot "
                           "be measured.", "Keep a holdout (10 % is usual) when sending.")
    notes: list[str] = []
    abs_lift = newcombe(ch, nh, ct, nt, level)
    rel: Interval | None = None
    if ch == 0:
        notes.append("Nobody in the holdout converted, so a relative lift is undefined: read "
                     "the absolute lift, or wait for a longer window.")
    elif nt < 2 or nh < 2:
        notes.append("A group has a single person: no relative lift.")
    else:
        rel = relative_lift(Moments.proportion(ch, nh), Moments.proportion(ct, nt), level,
                            "normal")
    rev_t, rev_h = Moments(nt, rt, qt), Moments(nh, rh, qh)
    rev_lift = incr_rev = roi = rev_rel = None
    if nt >= 2 and nh >= 2 and (rev_t.variance > 0 or rev_h.variance > 0):
        rev_lift = welch_diff(rev_h, rev_t, level)
        incr_rev = rev_lift.scaled(nt)
        try:
            rev_rel = relative_lift(rev_h, rev_t, level, "t") if rev_h.mean > 0 else None
        except MeasureError:
            rev_rel = None
        if rev_rel is None:
            notes.append("No relative revenue lift: held-out people spent nothing (net of "
                         "refunds), or revenue has no spread to put an interval on.")
        if spend is not None and spend > 0:
            roi = incr_rev.scaled(1 / spend, -1.0)
        elif spend is not None:
            notes.append("No spend recorded: incremental ROI does not exist.")
    else:
        notes.append("Revenue does not vary between people: no revenue lift is computed.")
    return Incrementality(int(nt), int(nh), wilson(ct, nt, level), wilson(ch, nh, level),
                          abs_lift, rel, abs_lift.scaled(nt), rev_lift, incr_rev, roi,
                          tuple(notes), _mean_interval(rev_t, level),
                          _mean_interval(rev_h, level), rev_rel, spend)
