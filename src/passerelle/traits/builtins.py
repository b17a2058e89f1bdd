"""Built-in traits: RFM quintiles, favourites, days since last visit, CLV and churn risk.

All per-person work is SQL (Ibis). The one step SQL cannot do, the BG/NBD conditional
expectation (it needs the Gauss hypergeometric function), is computed in Python once per
*distinct* (frequency, recency, T) triple, uploaded as a small lookup table and joined back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir
import numpy as np
import pyarrow as pa

from passerelle.engines.base import Engine
from passerelle.project.traits_models import BuiltinTrait, outputs  # noqa: F401 - re-exported (compute.py)
from passerelle.traits.aggregates import in_scope, long_rows, mode_per_person, scope_filter

if TYPE_CHECKING:  # the fits import scipy: only when a CLV trait is computed
    from passerelle.traits import clv

WEEK = 7.0  # BG/NBD time unit: weeks, as in Fader, Hardie & Lee (2005)
CLV_LOOKUP = "_traits_clv_lookup"
CLV_STATS = "_traits_clv_stats"
# The fits read distinct statistic rows with their people counts. Up to EXACT_MAX_ROWS
# distinct rows the fit is exact (every person); beyond, it uses a hash sample of about
# SAMPLE_SIZE people drawn in SQL, so memory and fit time stay bounded at any size.
EXACT_MAX_ROWS = 50_000
SAMPLE_SIZE = 50_000
HASH_DIGITS = 6  # hex digits of the person hash a sample is cut on (1 in 16.7M resolution)


def _today(now: datetime) -> ir.DateValue:
    return ibis.literal(now.date(), type=dt.date)


# ------------------------------------------------------------------------ simple builtins
def favourite(trait: BuiltinTrait, rows: ir.Table, now: datetime) -> ir.Table:
    """favourite_channel (orders.channel) / favourite_category (order_lines.category)."""
    column = "channel" if trait.builtin == "favourite_channel" else "category"
    scoped = in_scope(rows, "ordered_at", now, trait.window_days, trait.where)
    best = mode_per_person(scoped, column, "ordered_at")
    return long_rows(best, trait.name, text=best.value)


def days_since_reductions(trait: BuiltinTrait, events: ir.Table,
                          now: datetime) -> dict[str, ir.Scalar]:
    """What days_since_last_visit needs of a person's events (cut at ``now``): the last."""
    keep = scope_filter(events, "timestamp", now, None, trait.where)
    return {"last": events.timestamp.max(where=keep)}


def days_since_last_visit(trait: BuiltinTrait, per_person: ir.Table, columns: dict[str, str],
                          now: datetime) -> ir.Table:
    """Whole days between the day of the person's last event and the run's day."""
    last = per_person[columns["last"]]
    seen = per_person.filter(last.notnull())
    days = _today(now).delta(seen[columns["last"]].date(), unit="day")
    return long_rows(seen, trait.name, number=days)


def rfm_reductions(trait: BuiltinTrait, orders: ir.Table, now: datetime) -> dict[str, ir.Scalar]:
    """What RFM needs of a person's orders (cut at ``now``): last order, count, spend."""
    keep = scope_filter(orders, "ordered_at", now, trait.window_days, trait.where)
    return {"last": orders.ordered_at.max(where=keep), "orders": orders.count(where=keep),
            "spend": orders.amount.sum(where=keep)}


def rfm(trait: BuiltinTrait, per_person: ir.Table, columns: dict[str, str],
        now: datetime) -> ir.Table:
    """RFM quintile scores 1-5 (5 = best: most recent, most orders, most spend), from the
    :func:`rfm_reductions` held in ``columns`` of ``per_person``.

    Scores come from ``ntile(5)`` over recency (most days first), order count and spend.
    ntile splits equal values arbitrarily, so a tie group then takes the *lowest* quintile
    any of its members reached: equal values always get equal scores, and a score is only
    given when the whole tie group earned it. The text trait is the three digits, "545".
    """
    bought = per_person.filter(per_person[columns["orders"]] > 0)
    per = bought.select(
        "person_id", orders=bought[columns["orders"]], spend=bought[columns["spend"]],
        recency_days=_today(now).delta(bought[columns["last"]].date(), unit="day"))
    people = per.person_id.count().over(ibis.window())
    scored = per.mutate(r=_quintile(per.recency_days.desc(), people),
                        f=_quintile(per.orders.asc(), people),
                        m=_quintile(per.spend.asc(), people))
    code = scored.r.cast(dt.string) + scored.f.cast(dt.string) + scored.m.cast(dt.string)
    name = trait.name
    parts = [long_rows(scored, name, text=code),
             long_rows(scored, f"{name}_recency", number=scored.r),
             long_rows(scored, f"{name}_frequency", number=scored.f),
             long_rows(scored, f"{name}_monetary", number=scored.m)]
    return parts[0].union(*parts[1:], distinct=False)


def _quintile(order: ir.Value, people: ir.IntegerValue) -> ir.IntegerValue:
    """The lowest ``ntile(5)`` (1-5) a tie group of ``order`` reaches, without ntile: the
    group's first row is at rank() (0-based) i, and ntile puts row i of n in bucket
    i // (q+1) among the first n % 5 buckets of q+1 rows, in the later buckets of q rows
    after them (q = n // 5). One sort, where ntile then a minimum over each tie group take a
    sort and a partition."""
    first = ibis.rank().over(order_by=[order])
    q, extra = people // 5, people % 5
    longer = extra * (q + 1)  # rows in the buckets that hold one more
    bucket = (first < longer).ifelse(first // (q + 1), extra + (first - longer) // q.nullif(0))
    return (bucket + 1).cast(dt.int64)


# ---------------------------------------------------------------------------------- CLV
def clv_statistics(orders: ir.Table, now: datetime, where: str | None) -> ir.Table:
    """BG/NBD / Gamma-Gamma sufficient statistics per person, in days.

    Purchases are counted per *day* (two orders on one day are one purchase occasion, as in
    the CDNOW data): ``frequency`` = purchase days - 1, ``recency_days`` = last - first
    purchase day, ``t_days`` = run day - first purchase day, ``monetary`` = mean spend of
    the repeat purchase days (the first day is left out, as Gamma-Gamma requires).
    """
    scoped = in_scope(orders, "ordered_at", now, None, where)
    daily = scoped.group_by(person_id=scoped.person_id, day=scoped.ordered_at.date()).aggregate(
        amount=scoped.amount.sum())
    per = daily.group_by("person_id").aggregate(
        _days=daily.count(), _first=daily.day.min(), _last=daily.day.max(),
        _total=daily.amount.sum(), _first_amount=daily.amount.argmin(daily.day))
    frequency = (per._days - 1).cast(dt.int64)
    repeat = (per._total - per._first_amount).cast(dt.float64)
    return per.select(
        "person_id",
        frequency=frequency,
        recency_days=per._last.delta(per._first, unit="day").cast(dt.int64),
        t_days=_today(now).delta(per._first, unit="day").cast(dt.int64),
        monetary=(frequency > 0).ifelse(repeat / frequency.cast(dt.float64), 0.0),
    )


@dataclass
class ClvModel:
    """The two fits behind clv and churn_risk, and the statistics they were fitted on."""

    bgnbd: clv.Fit
    gamma_gamma: clv.Fit | None  # None when too few repeat buyers: clv is then not computed
    statistics: ir.Table
    table: str  # the work table holding the statistics (dropped after the run)
    triples: pa.Table | None = None  # every distinct (frequency, recency, T), when at hand


def fit_models(engine: Engine, orders: ir.Table, now: datetime, where: str | None,
               table: str = CLV_STATS) -> ClvModel:
    """Fit BG/NBD on distinct (frequency, recency, T) with counts, Gamma-Gamma on repeat
    buyers' (frequency, monetary); only these aggregates (or those of a bounded sample, see
    :func:`bounded_statistics`) leave the engine. The per-person statistics are materialised
    once in ``table``: every later query (fits, lookup, traits) reads them."""
    from passerelle.traits import clv

    stats = engine.scratch_table(table, clv_statistics(orders, now, where))
    arr, of = bounded_statistics(engine, stats, ["frequency", "recency_days", "t_days"])
    bgnbd = replace(clv.fit_bgnbd(_col(arr, "frequency"), _col(arr, "recency_days") / WEEK,
                                  _col(arr, "t_days") / WEEK, weights=_col(arr, "people")),
                    sample_of=of)
    repeat = stats.filter((stats.frequency > 0) & (stats.monetary > 0))
    spend, of = bounded_statistics(engine, repeat, ["frequency", "monetary"])
    try:
        gg: clv.Fit | None = replace(clv.fit_gamma_gamma(_col(spend, "frequency"),
                                                         _col(spend, "monetary"),
                                                         weights=_col(spend, "people")),
                                     sample_of=of)
    except clv.FitError:
        gg = None
    return ClvModel(bgnbd, gg, stats, table, triples=None if of else arr)


def bounded_statistics(engine: Engine, people: ir.Table, keys: list[str],
                       exact_max: int = EXACT_MAX_ROWS,
                       sample: int = SAMPLE_SIZE) -> tuple[pa.Table, int]:
    """Distinct ``keys`` rows of ``people`` with a ``people`` count, and the population the
    rows were sampled from (0: no sample, the rows cover everyone).

    Gamma-Gamma's likelihood has no finite sufficient statistics (each person's term holds
    log(x·m̄ + v), which does not factor out of the sum), and BG/NBD's are the per-person
    triples themselves, so grouping equal rows is the only exact reduction. When it leaves
    more than ``exact_max`` rows, the fit uses a random sample of about ``sample`` people,
    drawn in SQL by a hash of ``person_id`` (the first hex digits of its SHA-256 below a
    cut): the same from run to run on the same data, and blind to any pattern in the ids
    (every k-th person in id order, used before, was off by 12 standard errors on ids with
    a periodic structure). Standard errors then come from the sample's likelihood, so they
    are about sqrt(population / sample) times those of a fit on everyone (4.5x for 1M
    people and the default 50,000): honest for the estimate given, and still small next to
    the parameters at that size.
    """
    grouped = people.group_by(keys).aggregate(people=people.count())
    row = engine.to_arrow(grouped.aggregate(rows=grouped.count(),
                                            total=grouped.people.sum())).to_pylist()[0]
    # in a fixed order: a fit summing its terms in another order lands a few ulps away, and
    # the CLV values rounded from it would be recorded as changes on every run
    if (row["rows"] or 0) <= exact_max:
        return engine.to_arrow(grouped.order_by(keys)), 0
    population = int(row["total"])
    scale = 16 ** HASH_DIGITS
    cut = f"{min(math.ceil(scale * sample / population), scale - 1):0{HASH_DIGITS}x}"
    digest = engine.sha256_hex(people.person_id.cast(dt.string)).substr(0, HASH_DIGITS)
    drawn = people.filter(digest < cut)
    sampled = drawn.group_by(keys).aggregate(people=drawn.count())
    return engine.to_arrow(sampled.order_by(keys)), population


def clv_traits(engine: Engine, trait: BuiltinTrait, model: ClvModel) -> ir.Table:
    """clv (expected spend over ``horizon_days``), its expected purchases and P(alive), or
    churn_risk = 1 - P(alive)."""
    from passerelle.traits import clv

    params: clv.BGNBDParams = model.bgnbd.params  # type: ignore[assignment]
    stats = model.statistics
    if trait.builtin == "churn_risk":
        alive = _p_alive_sql(stats, params)
        return long_rows(stats, trait.name, number=(1 - alive).round(4))
    if model.gamma_gamma is None:
        raise clv.FitError("Gamma-Gamma could not be fitted: too few repeat buyers.",
                           "CLV needs customers with at least two purchase days.")
    lookup = _upload_expected_purchases(engine, stats, params, trait.horizon_days / WEEK,
                                        model.triples)
    joined = stats.join(lookup, [stats.frequency == lookup.l_frequency,
                                 stats.recency_days == lookup.l_recency_days,
                                 stats.t_days == lookup.l_t_days])
    gg: clv.GammaGammaParams = model.gamma_gamma.params  # type: ignore[assignment]
    x = joined.frequency.cast(dt.float64)
    spend = gg.p * (gg.v + x * joined.monetary) / (gg.p * x + gg.q - 1)
    value = (joined.expected_purchases * spend).round(2)
    name = trait.name
    parts = [long_rows(joined, name, number=value),
             long_rows(joined, f"{name}_expected_purchases",
                       number=joined.expected_purchases.round(4)),
             long_rows(joined, f"{name}_p_alive", number=_p_alive_sql(joined, params).round(4))]
    return parts[0].union(*parts[1:], distinct=False)


def _p_alive_sql(stats: ir.Table, p: clv.BGNBDParams) -> ir.FloatingValue:
    """P(alive) in SQL: 1 / (1 + [x>0] a/(b+x-1) ((α+T)/(α+t_x))^(r+x)), T and t_x in weeks."""
    x = stats.frequency.cast(dt.float64)
    t_x, t_cal = stats.recency_days / WEEK, stats.t_days / WEEK
    odds = p.a / (p.b + x - 1) * ((p.alpha + t_cal) / (p.alpha + t_x)).pow(p.r + x)
    return 1.0 / (1.0 + (x > 0).ifelse(odds, 0.0))


def _upload_expected_purchases(engine: Engine, stats: ir.Table, params: clv.BGNBDParams,
                               horizon: float, triples: pa.Table | None = None) -> ir.Table:
    from passerelle.traits import clv

    if triples is None:
        triples = engine.to_arrow(stats.select("frequency", "recency_days", "t_days").distinct())
    x, t_x, t_cal = (_col(triples, c) for c in ("frequency", "recency_days", "t_days"))
    expected = clv.expected_purchases(horizon, x, t_x / WEEK, t_cal / WEEK, params)
    table = pa.table({"l_frequency": pa.array(x.astype(np.int64)),
                      "l_recency_days": pa.array(t_x.astype(np.int64)),
                      "l_t_days": pa.array(t_cal.astype(np.int64)),
                      "expected_purchases": pa.array(np.asarray(expected, dtype=float))})
    engine.drop(CLV_LOOKUP)
    engine.append_arrow(CLV_LOOKUP, pa.RecordBatchReader.from_batches(table.schema,
                                                                      table.to_batches()))
    return engine.table(CLV_LOOKUP)


def _col(table: pa.Table, name: str) -> np.ndarray:
    return np.asarray(table.column(name).to_numpy(zero_copy_only=False), dtype=float)
