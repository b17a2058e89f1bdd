"""Data-quality checks from ``checks/*.yml``, compiled to queries that select the failing rows.

Each check becomes an Ibis expression over the staged table ``stg_<source>``. For record
checks (not_null, unique, accepted_values, relationships) it selects the failing rows
themselves, so a user can look at them with :func:`failing_rows`; for table checks
(row_count, freshness) it is a one-row relation that describes the failure. Running a
check is one counting query (plus a five-row sample when it fails): failing rows are
never fetched in bulk. Values from YAML reach the SQL as Ibis literals, never as text.

Every result is appended to ``_passerelle_check_results`` so that ``row_count.max_change``
can compare with the previous run, and so the app can show a check's history.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import ibis
import ibis.expr.types as ir
import pyarrow as pa

from passerelle.engines.base import Engine
from passerelle.errors import PasserelleError
from passerelle.project.models import (
    AcceptedValuesCheck,
    CheckConfig,
    FreshnessCheck,
    NotNullCheck,
    RelationshipsCheck,
    RowCountCheck,
    UniqueCheck,
    check_columns,
    check_name,
)
from passerelle.reporter import Reporter
from passerelle.tables import CHECK_RESULTS_TABLE

__all__ = [
    "RESULTS_SCHEMA",
    "RESULTS_TABLE",
    "CheckResult",
    "check_name",
    "error_failures",
    "failing_rows",
    "run_checks",
]

RESULTS_TABLE = CHECK_RESULTS_TABLE
RESULTS_SCHEMA = ibis.schema(
    {
        "run_id": "string",
        "checked_at": "timestamp",
        "name": "string",
        "type": "string",
        "source": "string",
        "severity": "string",
        "owner": "string",
        "failing_rows": "int64",
        "passed": "boolean",
        "message": "string",
        "row_count": "int64",
    }
)
SAMPLE_SIZE = 5
_LINEAGE = ("_source_file", "_source_row")
_FAILING = "_failing"  # flag column of the one-row relations, dropped before users see them


@dataclass
class CheckResult:
    """The outcome of one check in one run, ready to show to a marketer."""

    name: str
    type: str
    source: str
    column: str | list[str] | None
    severity: str
    owner: str | None
    description: str
    failing_rows: int
    passed: bool
    message: str
    sample: list[dict[str, Any]] = field(default_factory=list)
    row_count: int | None = None  # rows of stg_<source> when the check ran


def _now_utc(now: datetime | None) -> datetime:
    """Naive UTC, like every timestamp in the warehouse."""
    if now is None:
        return datetime.now(UTC).replace(tzinfo=None)
    if now.tzinfo is not None:
        return now.astimezone(UTC).replace(tzinfo=None)
    return now


# ------------------------------------------------------------------------------ tables
def _staged(engine: Engine, check: CheckConfig, source: str | None = None) -> ir.Table:
    source = source or check.source
    table = f"stg_{source}"
    if not engine.exists(table):
        raise PasserelleError(
            f"Check {check_name(check)!r}: the staged table {table} does not exist.",
            f"Run `passerelle run --source {source}` first, or fix the source name in the check.",
        )
    return engine.table(table)


def _column(table: ir.Table, check: CheckConfig, column: str, source: str) -> ir.Column:
    if column not in table.columns:
        known = ", ".join(c for c in table.columns if not c.startswith("_"))
        raise PasserelleError(
            f"Check {check_name(check)!r}: column {column!r} is not in stg_{source}.",
            f"Use one of the standard fields of this source: {known}.",
        )
    return table[column]


# ----------------------------------------------------------------------------- compile
@dataclass
class _Compiled:
    """A check as queries: ``relation`` holds the failing rows (record checks) or one row
    with a ``_failing`` flag (table checks); ``table`` is the staged table."""

    relation: ir.Table
    table: ir.Table
    record_level: bool
    columns: list[str]


def _compile(engine: Engine, check: CheckConfig, now: datetime, run_id: str | None) -> _Compiled:
    table = _staged(engine, check)
    columns = check_columns(check)
    cols = [_column(table, check, c, check.source) for c in columns]
    if isinstance(check, NotNullCheck):
        return _Compiled(table.filter(cols[0].isnull()), table, True, columns)
    if isinstance(check, UniqueCheck):
        # SQL UNIQUE semantics: a row with a NULL in a checked column is not compared
        # (missing values are the not_null check's business).
        present = table.filter(*[c.notnull() for c in cols])
        window = ibis.window(group_by=columns)
        grouped = present.mutate(_group_rows=present[columns[0]].count().over(window))
        return _Compiled(grouped.filter(grouped._group_rows > 1), table, True, columns)
    if isinstance(check, AcceptedValuesCheck):
        values = _coerce_values(check, cols[0])
        outside = ~cols[0].isin(values) if values else ibis.literal(True)
        return _Compiled(table.filter(cols[0].notnull() & outside), table, True, columns)
    if isinstance(check, RelationshipsCheck):
        # NULL references nothing: an order without a customer is not an orphan.
        parent = _staged(engine, check, check.to)
        key = _column(parent, check, check.field, check.to)
        present = table.filter(cols[0].notnull())
        child_key = present[check.column]
        if child_key.type() != key.type():
            child_key, key = child_key.cast("string"), key.cast("string")
        return _Compiled(present.anti_join(parent, child_key == key), table, True, columns)
    if isinstance(check, RowCountCheck):
        previous = _previous_row_count(engine, check_name(check), run_id)
        return _Compiled(_row_count_relation(table, check, previous), table, False, [])
    if isinstance(check, FreshnessCheck):
        return _Compiled(_freshness_relation(table, check, cols[0], now), table, False, columns)
    raise TypeError(f"unknown check {check!r}")  # pragma: no cover - the union is closed


def _coerce_values(check: AcceptedValuesCheck, column: ir.Column) -> list[Any]:
    """YAML turns ``yes`` into True and ``75001`` into an int: match the column's type,
    and refuse what cannot match rather than silently never matching."""
    dtype = column.type()
    out: list[Any] = []
    for value in check.values:
        if isinstance(value, bool) and not dtype.is_boolean():
            raise PasserelleError(
                f"Check {check_name(check)!r}: the accepted value {value!r} is a yes/no, but "
                f"{check.column} holds {dtype}.",
                "Quote values such as 'yes', 'no', 'on' or 'off' in the YAML file.",
            )
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if dtype.is_string():
            out.append(str(value))
        elif (dtype.is_numeric() and number) or (dtype.is_boolean() and isinstance(value, bool)):
            out.append(value)
        else:
            raise PasserelleError(
                f"Check {check_name(check)!r}: the accepted value {value!r} cannot be compared "
                f"with {check.column}, which holds {dtype}.",
                "Write values of the column's type in the check's `values` list.",
            )
    return out


def _row_count_relation(table: ir.Table, check: RowCountCheck, previous: int | None) -> ir.Table:
    counted = table.aggregate(row_count=table.count())
    rows = counted.row_count
    failing = ibis.literal(False)
    if check.min is not None:
        failing |= rows < check.min
    if check.max is not None:
        failing |= rows > check.max
    if previous is None or previous == 0:
        change = ibis.null("float64")
    else:
        change = (rows - previous).cast("float64") / previous
    if check.max_change is not None and previous is not None:
        failing |= (rows > 0) if previous == 0 else (change.abs() > check.max_change)
    return counted.mutate(
        min=ibis.literal(check.min, type="int64"),
        max=ibis.literal(check.max, type="int64"),
        previous_row_count=ibis.literal(previous, type="int64"),
        change=change,
        max_change=_float(check.max_change),
        **{_FAILING: failing},
    )


def _freshness_relation(
    table: ir.Table, check: FreshnessCheck, column: ir.Column, now: datetime
) -> ir.Table:
    if not column.type().is_temporal():
        raise PasserelleError(
            f"Check {check_name(check)!r}: {check.column} holds {column.type()}, not dates or "
            "timestamps, so its freshness cannot be measured.",
            "Point the freshness check at a date or timestamp field (updated_at, ordered_at...).",
        )
    threshold = now - timedelta(hours=check.max_age_hours)
    newest = table.aggregate(newest=column.cast("timestamp").max(), row_count=table.count())
    return newest.mutate(
        checked_at=ibis.literal(now, type="timestamp"),
        max_age_hours=_float(check.max_age_hours),
        **{_FAILING: newest.newest.isnull() | (newest.newest < threshold)},
    )


def _float(value: float | None) -> ir.FloatingValue:
    """A float literal that every backend returns as a float (ibis writes ``0.5`` bare,
    which PostgreSQL types as NUMERIC and hands back as Decimal)."""
    if value is None:
        return ibis.null("float64")
    return ibis.literal(repr(float(value))).cast("float64")


def _previous_row_count(engine: Engine, name: str, run_id: str | None) -> int | None:
    """The row count the last recorded run measured for this check (not this run's)."""
    if not engine.exists(RESULTS_TABLE):
        return None
    history = engine.table(RESULTS_TABLE)
    mine = history.filter(history.name == name, history.type == "row_count")
    if run_id is not None:
        mine = mine.filter(mine.run_id != run_id)
    last = mine.order_by(ibis.desc("checked_at")).select("row_count").limit(1)
    rows = engine.to_arrow(last).to_pylist()
    return None if not rows or rows[0]["row_count"] is None else int(rows[0]["row_count"])


# -------------------------------------------------------------------------------- public
def failing_rows(
    engine: Engine, check: CheckConfig, *, now: datetime | None = None, run_id: str | None = None
) -> ir.Table:
    """The rows that make ``check`` fail, as an Ibis table to look at or export.

    For row_count and freshness it is one row describing the failure (the count, the
    bounds and the previous count; or the newest value and the allowed age), or no row.
    row_count's ``max_change`` compares with the last recorded run other than ``run_id``.

    Example:
        >>> failing_rows(engine, check).limit(20).to_pandas()  # doctest: +SKIP
    """
    compiled = _compile(engine, check, _now_utc(now), run_id)
    if compiled.record_level:
        return compiled.relation
    return compiled.relation.filter(compiled.relation[_FAILING]).drop(_FAILING)


def run_checks(
    engine: Engine,
    checks: list[CheckConfig],
    run_id: str,
    reporter: Reporter,
    now: datetime | None = None,
) -> list[CheckResult]:
    """Run every check, record the results in ``_passerelle_check_results`` and return them.

    A check fails when more rows fail than its ``tolerance`` allows. Failures are reported
    as warnings; stopping the pipeline on error-severity failures is the caller's decision
    (see :func:`error_failures`).
    """
    now = _now_utc(now)
    names = Counter(check_name(c) for c in checks)
    twice = sorted(n for n, k in names.items() if k > 1)
    if twice:
        raise PasserelleError(
            f"Several checks are named {', '.join(twice)}.",
            "Give each check a distinct `name:` so its history can be told apart.",
        )
    results: list[CheckResult] = []
    with reporter.step("Checking data quality", total=len(checks)) as progress:
        for check in checks:
            result = _run_one(engine, check, now, run_id)
            results.append(result)
            if not result.passed:
                owner = f", owner {result.owner}" if result.owner else ""
                reporter.warning(
                    f"check {result.name} failed ({result.severity}{owner}): {result.message}"
                )
            progress.advance(1)
    _record(engine, results, run_id, now)
    failed = [r for r in results if not r.passed]
    errors = sum(r.severity == "error" for r in failed)
    reporter.info(
        f"{len(results)} checks: {len(results) - len(failed)} passed, "
        f"{errors} failed with severity error, {len(failed) - errors} with severity warn."
    )
    return results


def error_failures(results: list[CheckResult]) -> list[CheckResult]:
    """Failed checks of severity error: the ones that must stop downstream steps."""
    return [r for r in results if r.severity == "error" and not r.passed]


# ---------------------------------------------------------------------------- running
def _run_one(engine: Engine, check: CheckConfig, now: datetime, run_id: str) -> CheckResult:
    compiled = _compile(engine, check, now, run_id)
    name = check_name(check)
    sample: list[dict[str, Any]] = []
    if compiled.record_level:
        table, relation = compiled.table, compiled.relation
        counts = table.aggregate(row_count=table.count(), failing=relation.count().as_scalar())
        row = engine.to_arrow(counts).to_pylist()[0]
        failing, row_count = int(row["failing"]), int(row["row_count"])
        if failing:
            sample = _sample(engine, relation, compiled.columns)
        message = _record_message(check, failing, compiled.columns)
    else:
        row = engine.to_arrow(compiled.relation).to_pylist()[0]
        failing_flag = bool(row.pop(_FAILING))
        failing, row_count = int(failing_flag), int(row["row_count"])
        sample = [row] if failing_flag else []
        message = (
            _row_count_message(check, row)
            if isinstance(check, RowCountCheck)
            else _freshness_message(check, row, now)
        )
    column = getattr(check, "column", None)
    return CheckResult(
        name=name, type=check.type, source=check.source,
        column=list(column) if isinstance(column, list) else column,
        severity=check.severity, owner=check.owner, description=check.description,
        failing_rows=failing, passed=failing <= check.tolerance, message=message,
        sample=sample, row_count=row_count,
    )


def _sample(engine: Engine, relation: ir.Table, columns: list[str]) -> list[dict[str, Any]]:
    present = set(relation.columns)
    keep = [c for c in ("_record_id", *columns, *_LINEAGE) if c in present]
    # file order, not value order: text collation differs between engines
    order = [c for c in (*_LINEAGE, "_record_id", *columns) if c in present]
    query = relation.select(*keep).order_by(*order).limit(SAMPLE_SIZE)
    return engine.to_arrow(query).to_pylist()


def _record(engine: Engine, results: list[CheckResult], run_id: str, now: datetime) -> None:
    if not results:
        return
    rows = {
        "run_id": [run_id] * len(results),
        "checked_at": [now] * len(results),
        "name": [r.name for r in results],
        "type": [r.type for r in results],
        "source": [r.source for r in results],
        "severity": [r.severity for r in results],
        "owner": [r.owner for r in results],
        "failing_rows": [r.failing_rows for r in results],
        "passed": [r.passed for r in results],
        "message": [r.message for r in results],
        "row_count": [r.row_count for r in results],
    }
    arrow = pa.table(rows, schema=RESULTS_SCHEMA.to_pyarrow())
    engine.create_empty(RESULTS_TABLE, RESULTS_SCHEMA)
    engine.append_arrow(RESULTS_TABLE, arrow.to_reader())


# ---------------------------------------------------------------------------- messages
def _rows(n: int) -> str:
    return f"{n:,} row{'s' if n != 1 else ''}"


def _have(n: int) -> str:
    return "has" if n == 1 else "have"


def _listing(values: list[Any], limit: int = 6) -> str:
    shown = ", ".join(str(v) for v in values[:limit])
    return shown + (f" and {len(values) - limit} more" if len(values) > limit else "")


def _record_message(check: CheckConfig, failing: int, columns: list[str]) -> str:
    allowed = f" (allowed: {check.tolerance})"
    src, n = check.source, failing
    if isinstance(check, NotNullCheck):
        if not n:
            return f"No row of {src} is missing its {check.column}"
        return f"{_rows(n)} of {src} {_have(n)} no {check.column}{allowed}"
    if isinstance(check, UniqueCheck):
        what = " and ".join(columns)
        if not n:
            return f"No two rows of {src} share the same {what}"
        return f"{_rows(n)} of {src} share their {what} with another row{allowed}"
    if isinstance(check, AcceptedValuesCheck):
        accepted = _listing(list(check.values)) or "nothing"
        if not n:
            return f"Every {check.column} of {src} is one of the accepted values ({accepted})"
        return (
            f"{_rows(n)} of {src} {_have(n)} a {check.column} that is not one of "
            f"{accepted}{allowed}"
        )
    assert isinstance(check, RelationshipsCheck)
    target = f"{check.to}.{check.field}"
    if not n:
        return f"Every {check.column} of {src} is found in {target}"
    return f"{_rows(n)} of {src} {_have(n)} a {check.column} not found in {target}{allowed}"


def _row_count_message(check: RowCountCheck, row: dict[str, Any]) -> str:
    rows, previous, change = row["row_count"], row["previous_row_count"], row["change"]
    text = f"{check.source} has {_rows(rows)}"
    problems = []
    if check.min is not None and rows < check.min:
        problems.append(f"fewer than the minimum of {check.min:,}")
    if check.max is not None and rows > check.max:
        problems.append(f"more than the maximum of {check.max:,}")
    if check.max_change is not None:
        limit = f"allowed: ±{check.max_change:.0%}"
        if previous is None:
            text += " (first measure: no previous run to compare with)"
        elif previous == 0:
            if rows:
                problems.append(f"while the last run had none ({limit})")
        elif change is not None and not math.isnan(change):
            verb = "more" if change >= 0 else "fewer"
            problems.append(
                f"{abs(change):.0%} {verb} than the {previous:,} of the last run ({limit})"
            )
    return text + (", " + "; ".join(problems) if problems else "")


def _freshness_message(check: FreshnessCheck, row: dict[str, Any], now: datetime) -> str:
    allowed = f"allowed: {_duration(check.max_age_hours)}"
    newest = row["newest"]
    if newest is None:
        return f"{check.source} has no {check.column} at all, so its freshness is unknown"
    age = (now - newest).total_seconds() / 3600
    if age < 0:
        return (
            f"The newest {check.column} of {check.source} is in the future "
            f"({newest:%Y-%m-%d %H:%M} UTC, checked at {now:%Y-%m-%d %H:%M} UTC)"
        )
    return (
        f"The newest {check.column} of {check.source} is {_duration(age)} old "
        f"({newest:%Y-%m-%d %H:%M} UTC; {allowed})"
    )


def _duration(hours: float) -> str:
    if hours >= 72:
        days = hours / 24
        return f"{days:.0f} days" if days >= 10 else f"{days:.1f}".rstrip("0").rstrip(".") + " days"
    value = f"{hours:.1f}".rstrip("0").rstrip(".")
    return f"{value} hour{'s' if value != '1' else ''}"
