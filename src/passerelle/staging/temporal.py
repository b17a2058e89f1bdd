"""Dates and timestamps from the spellings French sources use, parsed portably in SQL.

Neither DuckDB's ``strptime`` nor PostgreSQL's ``to_timestamp`` is portable, and both
raise on a bad value instead of returning NULL. So each accepted spelling is a regular
expression whose groups are rewritten (one ``regexp_replace``) into a canonical
``year|month|day|hour|minute|second|fraction|offset|yy|epoch_s|epoch_ms`` string; the
components are then cast to integers and checked (month 1-12, day within the month, leap
years) before a value is built, so an impossible date such as 31/02 becomes NULL with an
issue instead of an error. Explicit ``strptime`` formats of a mapping are translated into
the same kind of pattern and tried first.

Naive timestamps are in the project's time zone and read as instants with the SQL
function ``timezone(zone, ts)``, which DuckDB (ICU) and PostgreSQL both provide; the engine
turns instants into naive UTC values (:meth:`~passerelle.engines.base.Engine.naive_utc`).
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable
from dataclasses import dataclass

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir

COMPONENTS = ("year", "month", "day", "hour", "minute", "second", "fraction", "offset", "yy",
              "epoch_s", "epoch_ms")
_TSU = dt.Timestamp(timezone="UTC")


@ibis.udf.scalar.builtin(name="timezone")
def _local_to_tstz(zone: str, ts: dt.timestamp) -> _TSU:  # type: ignore[empty-body]
    """``timezone(zone, naive)``: the naive value read as local time in ``zone``."""


@ibis.udf.scalar.builtin(name="split_part")
def _split_part(text: str, delimiter: str, index: dt.int32) -> str:  # type: ignore[empty-body]
    """``split_part(text, delimiter, n)`` (1-based), in DuckDB and PostgreSQL alike."""


#: An instant (timestamp with time zone) -> naive UTC: the engine's ``naive_utc``.
NaiveUTC = Callable[[ir.TimestampValue], ir.TimestampValue]


def local_to_utc(ts: ir.TimestampValue, zone: str, naive_utc: NaiveUTC) -> ir.TimestampValue:
    if zone == "UTC":
        return ts
    return naive_utc(_local_to_tstz(zone, ts))


@dataclass(frozen=True)
class Pattern:
    regex: str
    groups: dict[str, int]  # component -> group number

    @property
    def replacement(self) -> str:
        return "|".join(
            f"\\{self.groups[c]}" if c in self.groups else "" for c in COMPONENTS
        )


_OFFSET = r"(Z|z|UTC|[+-][0-9]{2}(?::?[0-9]{2})?)"
_ISO_DATE = Pattern(r"^([0-9]{4})[-/.]([0-9]{1,2})[-/.]([0-9]{1,2})(?:[T ].*)?$",
                    {"year": 1, "month": 2, "day": 3})
_FR_DATE = Pattern(r"^([0-9]{1,2})[/.-]([0-9]{1,2})[/.-]([0-9]{4})(?:[T ].*)?$",
                   {"day": 1, "month": 2, "year": 3})
_FR_DATE_YY = Pattern(r"^([0-9]{1,2})[/.-]([0-9]{1,2})[/.-]([0-9]{2})$",
                      {"day": 1, "month": 2, "yy": 3})
_ISO_TS = Pattern(
    r"^([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})(?:[T ]([0-9]{1,2}):([0-9]{2})"
    r"(?::([0-9]{2})(?:[.,]([0-9]{1,9}))?)?)? ?" + _OFFSET + "?$",
    {"year": 1, "month": 2, "day": 3, "hour": 4, "minute": 5, "second": 6, "fraction": 7,
     "offset": 8},
)
_FR_TS = Pattern(
    r"^([0-9]{1,2})[/.-]([0-9]{1,2})[/.-]([0-9]{4})(?:[T ]+([0-9]{1,2})[:h]([0-9]{2})"
    r"(?::([0-9]{2}))?)?$",
    {"day": 1, "month": 2, "year": 3, "hour": 4, "minute": 5, "second": 6},
)
_EPOCH_S = Pattern(r"^([0-9]{10})$", {"epoch_s": 1})
_EPOCH_MS = Pattern(r"^([0-9]{13})$", {"epoch_ms": 1})

DATE_PATTERNS = (_ISO_DATE, _FR_DATE, _FR_DATE_YY)
TIMESTAMP_PATTERNS = (_ISO_TS, _FR_TS, _EPOCH_S, _EPOCH_MS)

_DIRECTIVES = {
    "d": ("([0-9]{1,2})", "day"), "m": ("([0-9]{1,2})", "month"),
    "Y": ("([0-9]{4})", "year"), "y": ("([0-9]{2})", "yy"),
    "H": ("([0-9]{1,2})", "hour"), "M": ("([0-9]{1,2})", "minute"),
    "S": ("([0-9]{1,2})", "second"), "f": ("([0-9]{1,6})", "fraction"),
    "z": (_OFFSET, "offset"), "s": ("([0-9]{1,11})", "epoch_s"),
}
_SPECIAL = set(".^$*+?()[]{}|\\")


class UnsupportedFormat(ValueError):
    """A strptime directive that staging cannot translate (the message names it)."""


def pattern_from_strptime(fmt: str) -> Pattern:
    """Translate a ``strptime`` format into an anchored pattern with numbered groups."""
    fmt = fmt.replace("%F", "%Y-%m-%d").replace("%T", "%H:%M:%S")
    regex, groups, i = ["^"], {}, 0
    while i < len(fmt):
        c = fmt[i]
        if c == "%" and i + 1 < len(fmt):
            d = fmt[i + 1]
            i += 2
            if d == "%":
                regex.append("%")
                continue
            if d not in _DIRECTIVES:
                raise UnsupportedFormat(
                    f"%{d} is not supported (use %d %m %Y %y %H %M %S %f %z %s)"
                )
            part, component = _DIRECTIVES[d]
            if component in groups:
                raise UnsupportedFormat(f"%{d} appears twice")
            regex.append(part)
            groups[component] = len(groups) + 1
            continue
        regex.append(" +" if c == " " else ("\\" + c if c in _SPECIAL else c))
        i += 1
    if len(groups) > 9:
        raise UnsupportedFormat("too many directives (9 at most)")
    regex.append("$")
    return Pattern("".join(regex), groups)


# ------------------------------------------------------------------------------ steps
Step = dict[str, Callable[[ir.Table], ir.Value]]


def _int(part: ir.StringValue) -> ir.IntegerValue:
    return part.nullif("").cast("int64")


def _days_in_month(y: ir.IntegerValue, m: ir.IntegerValue) -> ir.IntegerValue:
    leap = ((y % 4) == 0) & (((y % 100) != 0) | ((y % 400) == 0))
    return ibis.cases(
        (m.isin([4, 6, 9, 11]), 30), (m == 2, ibis.ifelse(leap, 29, 28)), else_=31
    )


def _canonical_steps(p: str, text: str, patterns: list[Pattern]) -> list[Step]:
    """Layers: canonical string, then integer components (``{p}y``, ``{p}mo``...)."""

    def canonical(t: ir.Table) -> ir.Value:
        s = t[text]
        return ibis.cases(*[(s.re_search(x.regex), s.re_replace(x.regex, x.replacement))
                            for x in patterns], else_=None)

    def part(i: int) -> Callable[[ir.Table], ir.Value]:
        return lambda t: _split_part(t[f"{p}canon"], "|", i + 1)

    names = ("y", "mo", "d", "h", "mi", "s", "fr", "off", "yy", "es", "ems")
    components: Step = {f"{p}{n}": part(i) for i, n in enumerate(names)}
    return [{f"{p}canon": canonical}, components]


def _valid_day(y: ir.IntegerValue, mo: ir.IntegerValue, d: ir.IntegerValue) -> ir.BooleanValue:
    return (y.between(1, 9999) & mo.between(1, 12) & (d >= 1)
            & (d <= _days_in_month(y, mo))).fill_null(False)


def _year(t: ir.Table, p: str, pivot: int) -> ir.IntegerValue:
    yy = _int(t[f"{p}yy"])
    return ibis.coalesce(_int(t[f"{p}y"]), ibis.ifelse(yy > pivot, 1900 + yy, 2000 + yy))


def _safe_date(y: ir.IntegerValue, mo: ir.IntegerValue, d: ir.IntegerValue,
               ok: ir.BooleanValue) -> ir.DateValue:
    built = ibis.date(ibis.ifelse(ok, y, 2000), ibis.ifelse(ok, mo, 1), ibis.ifelse(ok, d, 1))
    return ibis.ifelse(ok, built, ibis.null("date"))


def date_steps(p: str, text: str, formats: list[Pattern], birth: bool,
               typed: Callable[[ir.Table], ir.Value] | None = None) -> list[Step]:
    """Layers producing ``{p}v`` (date) and ``{p}i`` (issue) from the trimmed text column."""
    pivot = _dt.date.today().year % 100

    def plausible(v: ir.DateValue) -> ir.BooleanValue:
        ok = v.year() >= 1900
        return ok & (v <= ibis.today()) if birth else ok

    if typed is not None:
        return [{f"{p}v0": typed},
                {f"{p}v": lambda t: ibis.ifelse(plausible(t[f"{p}v0"]), t[f"{p}v0"], None),
                 f"{p}i": lambda t: ibis.ifelse(plausible(t[f"{p}v0"]).fill_null(True), None,
                                                "implausible_date")}]

    def value(t: ir.Table) -> ir.Value:
        y, mo, d = _year(t, p, pivot), _int(t[f"{p}mo"]), _int(t[f"{p}d"])
        return _safe_date(y, mo, d, _valid_day(y, mo, d))

    def issue(t: ir.Table) -> ir.Value:
        v = t[f"{p}v0"]
        return ibis.cases((t[text].isnull(), None), (v.isnull(), "bad_date"),
                          (~plausible(v), "implausible_date"), else_=None)

    return [
        *_canonical_steps(p, text, [*formats, *DATE_PATTERNS]),
        {f"{p}v0": value},
        {f"{p}v": lambda t: ibis.ifelse(t[f"{p}v0"].notnull() & plausible(t[f"{p}v0"]),
                                        t[f"{p}v0"], None),
         f"{p}i": issue},
    ]


def timestamp_steps(p: str, text: str, formats: list[Pattern], zone: str,
                    naive_utc: NaiveUTC, typed: Callable[[ir.Table], ir.Value] | None = None,
                    typed_type: dt.DataType | None = None) -> list[Step]:
    """Layers producing ``{p}v`` (naive UTC timestamp) and ``{p}i`` (issue)."""
    if typed is not None:
        no_issue: Callable[[ir.Table], ir.Value] = lambda t: ibis.null("string")  # noqa: E731
        if typed_type is not None and typed_type.is_timestamp() and typed_type.timezone:
            return [{f"{p}v": lambda t: naive_utc(typed(t)), f"{p}i": no_issue}]
        return [{f"{p}v": lambda t: local_to_utc(typed(t).cast("timestamp"), zone, naive_utc),
                 f"{p}i": no_issue}]

    pivot = _dt.date.today().year % 100

    def offset_minutes(off: ir.StringValue) -> ir.IntegerValue:
        digits = off.re_replace("[^0-9]", "")
        minutes = _int(digits.substr(0, 2)) * 60 + _int(digits.substr(2, 2)).fill_null(0)
        sign = ibis.ifelse(off.startswith("-"), -1, 1)
        return ibis.cases((off.isin(["Z", "z", "UTC"]), 0), (off == "", None),
                          else_=sign * minutes)

    def valid(t: ir.Table) -> ir.Value:
        y, mo, d = _year(t, p, pivot), _int(t[f"{p}mo"]), _int(t[f"{p}d"])
        h, mi, s = (_int(t[f"{p}{n}"]).fill_null(0) for n in ("h", "mi", "s"))
        off = t[f"{p}off"]
        off_ok = (off == "") | off.isin(["Z", "z", "UTC"]) | offset_minutes(off).between(
            -14 * 60, 14 * 60)
        return (_valid_day(y, mo, d) & h.between(0, 23) & mi.between(0, 59) & s.between(0, 59)
                & off_ok.fill_null(False))

    def naive(t: ir.Table) -> ir.Value:
        ok = t[f"{p}ok"]
        y, mo, d = _year(t, p, pivot), _int(t[f"{p}mo"]), _int(t[f"{p}d"])
        h, mi, s = (_int(t[f"{p}{n}"]).fill_null(0) for n in ("h", "mi", "s"))
        micros = _int(t[f"{p}fr"].substr(0, 6).rpad(6, "0")).fill_null(0)
        built = ibis.timestamp(ibis.ifelse(ok, y, 2000), ibis.ifelse(ok, mo, 1),
                               ibis.ifelse(ok, d, 1), ibis.ifelse(ok, h, 0),
                               ibis.ifelse(ok, mi, 0), ibis.ifelse(ok, s, 0))
        built = built + micros.as_interval("us")
        return ibis.ifelse(ok, built, ibis.null("timestamp"))

    def utc(t: ir.Table) -> ir.Value:
        off = t[f"{p}off"]
        epoch = ibis.timestamp("1970-01-01 00:00:00")
        es, ems = _int(t[f"{p}es"]), _int(t[f"{p}ems"])
        return ibis.cases(
            (es.notnull(), epoch + es.as_interval("s")),
            (ems.notnull(), epoch + (ems * 1000).as_interval("us")),
            (t[f"{p}n"].isnull(), ibis.null("timestamp")),
            (off == "", local_to_utc(t[f"{p}n"], zone, naive_utc)),
            else_=t[f"{p}n"] - offset_minutes(off).as_interval("m"),
        )

    def issue(t: ir.Table) -> ir.Value:
        return ibis.ifelse(t[text].notnull() & t[f"{p}v"].isnull(), "bad_timestamp", None)

    return [
        *_canonical_steps(p, text, [*formats, *TIMESTAMP_PATTERNS]),
        {f"{p}ok": valid},
        {f"{p}n": naive},
        {f"{p}v": utc},
        {f"{p}i": issue},
    ]
