"""Aggregate traits (count, sum, avg, min, max, count_distinct, first, last, mode) as Ibis.

Each trait becomes one expression with the long ``traits`` shape: ``person_id, trait,
value_number, value_text, value_date``. Rows after ``now`` are ignored (a run "as of" a date
must not see the future); ``window_days`` keeps rows in ``(now - N days, now]``.

Counts are 0 for every known person with no matching row (a person who did not buy in the
last 90 days has 0 orders in the last 90 days, not an unknown number); every other function
gives no row at all for such a person (unknown).

count, count_distinct, sum, avg, min and max are *reductions*: each is one aggregate whose
window and ``where`` become a filter on the aggregate (``sum(amount) FILTER (WHERE ...)``), so
every such trait of an entity is computed in one scan grouped by person (:func:`reduction`,
then :func:`from_reduction` reads the trait's column). first, last and mode need a ranking
and have a query of their own (:func:`aggregate_trait`).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir

from passerelle.project.traits_models import TIME_COLUMN, AggregateTrait, value_kind
from passerelle.traits.expr import compile_where

DECIMALS = 6  # numbers are rounded so that engines agree and history sees no float noise


def in_scope(rows: ir.Table, time_column: str, now: datetime, window_days: int | None,
             where: str | None) -> ir.Table:
    """The rows a trait looks at: not after ``now``, inside the window, passing ``where``."""
    cut = until(rows, time_column, now)
    keep = scope_filter(cut, time_column, now, window_days, where)
    return cut if keep is None else cut.filter(keep)


def scope_filter(rows: ir.Table, time_column: str, now: datetime, window_days: int | None,
                 where: str | None) -> ir.BooleanValue | None:
    """The window and ``where`` of :func:`in_scope` as one condition, for rows already cut at
    ``now`` (None: every row counts)."""
    keep: ir.BooleanValue | None = None
    if window_days is not None:
        start = ibis.literal(now - timedelta(days=window_days), type=dt.timestamp)
        keep = rows[time_column] > start
    if where:
        condition = compile_where(where, rows)
        keep = condition if keep is None else keep & condition
    return keep


def until(rows: ir.Table, time_column: str, now: datetime) -> ir.Table:
    """The rows not after ``now``: what every trait of the entity looks at, at most."""
    return rows.filter(rows[time_column] <= ibis.literal(now, type=dt.timestamp))


def long_rows(table: ir.Table, name: str, *, number: ir.Value | None = None,
              text: ir.Value | None = None, date: ir.Value | None = None) -> ir.Table:
    """Select ``table`` into the long traits shape (one of the three values filled)."""
    return table.select(
        person_id=table.person_id.cast(dt.string),
        trait=ibis.literal(name, type=dt.string),
        value_number=(number.cast(dt.float64).round(DECIMALS) if number is not None
                      else ibis.null(dt.float64)),
        value_text=text.cast(dt.string) if text is not None else ibis.null(dt.string),
        value_date=date.cast(dt.date) if date is not None else ibis.null(dt.date),
    )


def typed(table: ir.Table, name: str, value: ir.Value, kind: str) -> ir.Table:
    if kind == "number":
        return long_rows(table, name, number=value)
    if kind == "date":
        return long_rows(table, name, date=value)
    return long_rows(table, name, text=value)


def aggregate_trait(trait: AggregateTrait, rows: ir.Table, now: datetime) -> ir.Table:
    """The long rows of a ``first``, ``last`` or ``mode`` trait (the others are
    reductions: :func:`reduction`); ``rows`` carry ``person_id``."""
    scoped = in_scope(rows, TIME_COLUMN[trait.entity], now, trait.window_days, trait.where)
    kind = value_kind(trait)
    column, time_column = trait.column, TIME_COLUMN[trait.entity]
    if trait.function == "mode":
        chosen = mode_per_person(scoped, column, time_column)  # type: ignore[arg-type]
    else:
        chosen = _first_last(scoped, column, time_column,  # type: ignore[arg-type]
                             trait.function == "last")
    return typed(chosen, trait.name, chosen.value, kind)


MERGEABLE = frozenset({"count", "count_distinct", "sum", "avg", "min", "max"})


def reduction(trait: AggregateTrait, rows: ir.Table, now: datetime) -> ir.Scalar:
    """The trait as one aggregate over a person's ``rows`` (already cut at ``now`` by
    :func:`until`), its window and ``where`` as the aggregate's filter."""
    keep = scope_filter(rows, TIME_COLUMN[trait.entity], now, trait.window_days, trait.where)
    value = rows[trait.column] if trait.column else None
    if value is None:
        return rows.count(where=keep)
    method = {"count": "count", "count_distinct": "nunique", "sum": "sum", "avg": "mean",
              "min": "min", "max": "max"}[trait.function]
    return getattr(value, method)(where=keep)


def from_reduction(trait: AggregateTrait, per_person: ir.Table, column: str,
                   persons: ir.Table) -> ir.Table:
    """The long rows of a trait whose :func:`reduction` is ``column`` of ``per_person``."""
    value = per_person[column]
    if trait.function in ("count", "count_distinct"):
        # every known person gets a count, 0 when nothing matched
        counts = per_person.select("person_id", _value=value)
        joined = persons.left_join(counts, persons.person_id == counts.person_id)
        chosen = joined.select(person_id=persons.person_id,
                               value=ibis.coalesce(joined._value, 0))
    else:
        chosen = per_person.filter(value.notnull()).select("person_id", value=value)
    return typed(chosen, trait.name, chosen.value, value_kind(trait))


def _first_last(rows: ir.Table, column: str, time_column: str, last: bool) -> ir.Table:
    """Value of ``column`` on the person's earliest (or latest) row where it is set; rows at
    the same instant are broken by the value itself (smallest first), so the answer is
    deterministic."""
    present = rows.filter(rows[column].notnull())
    at = present[time_column]
    order = [at.desc() if last else at.asc(), present[column].asc()]
    ranked = present.mutate(_rank=ibis.row_number().over(group_by=present.person_id,
                                                         order_by=order))
    chosen = ranked.filter(ranked._rank == 0)
    return chosen.select(person_id=chosen.person_id, value=chosen[column])


def mode_per_person(rows: ir.Table, column: str, time_column: str) -> ir.Table:
    """Most frequent value of ``column`` per person (``person_id, value``).

    Ties: the value bought/seen most recently wins; if still tied (same instant), the
    alphabetically first. NULLs are not a value.
    """
    present = rows.filter(rows[column].notnull())
    counts = present.group_by(person_id=present.person_id, value=present[column]).aggregate(
        _n=present.count(), _latest=present[time_column].max())
    ranked = counts.mutate(_rank=ibis.row_number().over(
        group_by=counts.person_id,
        order_by=[counts._n.desc(), counts._latest.desc(), counts.value.asc()]))
    best = ranked.filter(ranked._rank == 0)
    return best.select("person_id", "value")
