"""Normalisation of one field, as layers of Ibis expressions.

Each field of a source becomes a :class:`FieldPlan`: a few layers of columns, each layer
computed from the columns of the previous ones (so an expensive value, such as a regular
expression rewrite, is computed once and then read several times), and optionally a join
with a distinct-value dictionary after a layer. Every plan ends with two columns:
``__<field>_v`` (the typed value or NULL) and ``__<field>_i`` (NULL or the issue, e.g.
``invalid_email``). :func:`run_layers` applies the plans of all fields side by side.

Column names inside the plans are internal; only :mod:`passerelle.staging.stage` reads the
final ones.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir

from passerelle.model import Kind
from passerelle.staging import countries, temporal
from passerelle.staging import dictionaries as dicts
from passerelle.staging.types import TARGET_TYPES, target_type  # noqa: F401 - re-exported

Step = dict[str, Callable[[ir.Table], ir.Value]]

TEXT_LIMIT = 4096
JSON_LIMIT = 1024 * 1024
_WS = "[ \t\r\n\u00a0\u202f]+"



@dataclass(frozen=True)
class Join:
    """Left-join a dictionary (``raw, value, issue``) on column ``key`` after a layer."""

    dictionary: str  # warehouse table name
    lookup: ir.Table
    key: str
    prefix: str
    region: str | None = None
    normalise: Callable[[str], tuple[str | None, str | None]] | None = None


@dataclass
class FieldPlan:
    name: str
    layers: list[Step]
    joins: dict[int, Join] = field(default_factory=dict)

    @property
    def value(self) -> str:
        return f"__{self.name}_v"

    @property
    def issue(self) -> str:
        return f"__{self.name}_i"

    @property
    def present(self) -> str:
        return f"__{self.name}_t"


@dataclass(frozen=True)
class Context:
    """What a field's normalisation depends on beyond its own value."""

    zone: str  # project time zone of naive timestamps
    region: str  # default region for phones and postcodes
    decimal: str  # "auto", "." or ","
    lookups: dict[str, ir.Table]  # dictionary name -> lookup table
    naive_utc: temporal.NaiveUTC  # the engine's instant -> naive UTC timestamp
    strip: Callable[[ir.StringValue], ir.StringValue]  # the engine's trim of white space
    country_column: str | None = None  # the staged country value column, if mapped
    # boolean fields whose column holds an "x" in some raw row, read as checkboxes: their
    # blanks mean no (decided over the whole raw table, so that staging new loads alone
    # reads them as a full staging does)
    checkboxes: frozenset[str] = frozenset()


def raw_column(name: str) -> str:
    return f"__{name}_raw"


# -------------------------------------------------------------------------- builders
def _text(p: str, limit: int, collapse: bool) -> list[Step]:
    def clean(t: ir.Table) -> ir.Value:
        s = t[f"{p}t"]
        return s.re_replace(_WS, " ") if collapse else s

    def too_long(t: ir.Table) -> ir.Value:
        return t[f"{p}c"].length() > limit

    return [
        {f"{p}c": clean},
        {f"{p}v": lambda t: ibis.ifelse(too_long(t), ibis.null("string"), t[f"{p}c"]),
         f"{p}i": lambda t: ibis.ifelse(too_long(t), "too_long", ibis.null("string"))},
    ]


IDENTIFIER_LIMIT = 64
# What sources write for a gender, lower-cased and without dots: F, M or X (other, diverse)
GENDERS = {
    **dict.fromkeys(("f", "female", "femme", "feminin", "féminin", "w", "weiblich", "frau",
                     "mme", "madame", "mlle", "mademoiselle", "mrs", "ms", "miss", "woman",
                     "2"), "F"),
    **dict.fromkeys(("m", "male", "homme", "masculin", "männlich", "mannlich", "herr", "mr",
                     "monsieur", "man", "1"), "M"),
    **dict.fromkeys(("x", "d", "divers", "other", "autre", "non-binary", "non binaire",
                     "non-binaire", "nb", "diverse"), "X"),
}


def _identifier(p: str) -> list[Step]:
    """A national or tax identifier: separators people type (spaces, dots, dashes,
    slashes) dropped, upper-cased; longer than :data:`IDENTIFIER_LIMIT`: flagged."""
    def clean(t: ir.Table) -> ir.Value:
        return t[f"{p}t"].re_replace("[ \\t\\r\\n.\\-/\u00a0\u202f]+", "").upper().nullif("")

    return [
        {f"{p}c": clean},
        {f"{p}v": lambda t: ibis.ifelse(t[f"{p}c"].length() > IDENTIFIER_LIMIT,
                                        ibis.null("string"), t[f"{p}c"]),
         f"{p}i": lambda t: ibis.ifelse(t[f"{p}c"].length() > IDENTIFIER_LIMIT, "too_long",
                                        ibis.null("string"))},
    ]


def _gender(p: str) -> list[Step]:
    return [
        {f"{p}k": lambda t: t[f"{p}t"].lower().replace(".", "").re_replace(_WS, " ")},
        {f"{p}v": lambda t: t[f"{p}k"].substitute(GENDERS, else_=ibis.null("string"))},
        {f"{p}i": lambda t: ibis.ifelse(t[f"{p}k"].notnull() & t[f"{p}v"].isnull(),
                                        "invalid_gender", ibis.null("string"))},
    ]


def _dictionary(p: str, key: Callable[[ir.Table], ir.Value],
                fast: Callable[[ir.Table], ir.Value] | None, max_len: int, bad: str,
                join: Join) -> tuple[list[Step], dict[int, Join]]:
    """Key, optional SQL fast path, then the dictionary for the rest."""

    def dict_key(t: ir.Table) -> ir.Value:
        k = t[f"{p}k"]
        send = t[f"{p}f"].isnull() & (k.length() <= max_len)
        return ibis.ifelse(send, k, ibis.null("string"))

    def value(t: ir.Table) -> ir.Value:
        return ibis.coalesce(t[f"{p}f"], t[f"{p}dv"])

    def issue(t: ir.Table) -> ir.Value:
        k = t[f"{p}k"]
        return ibis.cases(
            (k.isnull() | t[f"{p}f"].notnull(), ibis.null("string")),
            (k.length() > max_len, bad),
            else_=t[f"{p}di"],
        )

    fast_fn = fast or (lambda t: ibis.null("string"))
    layers = [{f"{p}k": key}, {f"{p}f": fast_fn}, {f"{p}dk": dict_key},
              {f"{p}v": value, f"{p}i": issue}]
    return layers, {2: join}


def _number_steps(p: str, decimal: str, integer: bool) -> list[Step]:
    int_ = r"^[+-]?[0-9]+$"
    dot = r"^[+-]?[0-9]*\.[0-9]+$"
    comma = r"^[+-]?[0-9]*,[0-9]+$"
    dot_thousands = r"^[+-]?[0-9]{1,3}(\.[0-9]{3})+(,[0-9]+)?$"
    comma_thousands = r"^[+-]?[0-9]{1,3}(,[0-9]{3})+(\.[0-9]+)?$"
    orders = {
        ",": [int_, comma, dot_thousands, dot],
        ".": [int_, dot, comma_thousands, comma],
        "auto": [int_, comma, dot, dot_thousands, comma_thousands],
    }

    def rewrite(s: ir.StringValue, pattern: str) -> ir.StringValue:
        if pattern in (int_, dot):
            return s
        if pattern == comma:
            return s.replace(",", ".")
        if pattern == dot_thousands:
            return s.replace(".", "").replace(",", ".")
        return s.replace(",", "")

    def normalised(t: ir.Table) -> ir.Value:
        s = t[f"{p}c"]
        return ibis.cases(*[(s.re_search(x), rewrite(s, x)) for x in orders[decimal]],
                          else_=None)

    digits = 18 if integer else 16
    whole = r"^[+-]?0*[0-9]{1,%d}(\.0*)?$" % digits  # noqa: UP031
    fits = r"^[+-]?0*[0-9]{1,%d}(\.[0-9]*)?$" % digits  # noqa: UP031

    def ok(t: ir.Table) -> ir.Value:
        return t[f"{p}n"].re_search(whole if integer else fits).fill_null(False)

    def value(t: ir.Table) -> ir.Value:
        n = t[f"{p}n"]
        if integer:
            v = n.re_replace(r"\.0*$", "").cast("int64")
            return ibis.ifelse(t[f"{p}ok"], v, ibis.null("int64"))
        v = n.re_replace(r"^([+-]?[0-9]*)(\.[0-9]{0,6})?[0-9]*$", r"\1\2")
        cast = v.cast(dt.Decimal(24, 6)).round(2).cast(dt.Decimal(18, 2))
        return ibis.ifelse(t[f"{p}ok"], cast, ibis.null(dt.Decimal(18, 2)))

    def clean(t: ir.Table) -> ir.Value:
        return t[f"{p}t"].re_replace("[ \u00a0\u202f'€$£]|EUR|eur|Eur", "")

    return [
        {f"{p}c": clean},
        {f"{p}n": normalised},
        {f"{p}ok": ok},
        {f"{p}v": value,
         f"{p}i": lambda t: ibis.ifelse(t[f"{p}t"].notnull() & ~t[f"{p}ok"], "bad_number",
                                        ibis.null("string"))},
    ]


def _typed_number(p: str, raw: str, raw_type: dt.DataType, integer: bool) -> list[Step]:
    limit = 10**18 if integer else 10**16

    def ok(t: ir.Table) -> ir.Value:
        x = t[raw]
        fine = x.abs() < limit
        if integer and not raw_type.is_integer():
            fine = fine & (x == x.floor())
        return fine

    target = dt.int64 if integer else dt.Decimal(18, 2)
    return [{f"{p}v": lambda t: ibis.ifelse(ok(t), t[raw].cast(target), ibis.null(target)),
             f"{p}i": lambda t: ibis.ifelse(t[raw].notnull() & ~ok(t), "bad_number",
                                            ibis.null("string"))}]


_TRUE = ["oui", "o", "yes", "y", "true", "t", "vrai", "v", "1", "opt-in", "optin", "x", "on"]
_FALSE = ["non", "n", "no", "false", "f", "faux", "0", "opt-out", "optout", "off"]


def _boolean(p: str, checkbox: bool) -> list[Step]:
    def value(t: ir.Table) -> ir.Value:
        k = t[f"{p}k"]
        cases = [(k.isin(_TRUE), True), (k.isin(_FALSE), False)]
        if checkbox:  # a column of "x" and blanks: blank means no
            cases.append((k.isnull(), False))
        return ibis.cases(*cases, else_=ibis.null("boolean"))

    return [
        {f"{p}k": lambda t: t[f"{p}t"].lower()},
        {f"{p}v": value},
        {f"{p}i": lambda t: ibis.ifelse(t[f"{p}k"].notnull() & t[f"{p}v"].isnull(),
                                        "bad_boolean", ibis.null("string"))},
    ]


def _postcode(p: str, ctx: Context) -> list[Step]:
    """Spaces removed, upper-cased, then checked by the rule of the record's country (its
    country field, else the project's region) where :data:`countries.POSTCODE_RULES` knows
    one: a postcode that fails it is flagged ``invalid_postcode``; a country without a rule
    keeps its postcodes as typed."""
    def country(t: ir.Table) -> ir.Value:
        if ctx.country_column is None:
            return ibis.literal(ctx.region)
        return ibis.coalesce(t[ctx.country_column], ibis.literal(ctx.region))

    def value(t: ir.Table) -> ir.Value:
        k, c = t[f"{p}k"], country(t)
        padded = ibis.ifelse(c.isin(list(countries.LEADING_ZERO)) & k.re_search("^[0-9]{4}$"),
                             ibis.literal("0").concat(k), k)
        cases = [(c == code, ibis.ifelse(padded.re_search(rule), padded, ibis.null("string")))
                 for code, rule in countries.POSTCODE_RULES.items()]
        return ibis.cases(*cases, else_=k)

    return [
        {f"{p}k": lambda t: t[f"{p}t"].re_replace(_WS, "").upper()},
        {},
        {},
        {f"{p}v": value},
        {f"{p}i": lambda t: ibis.ifelse(t[f"{p}k"].notnull() & t[f"{p}v"].isnull(),
                                        "invalid_postcode", ibis.null("string"))},
    ]


def field_plan(name: str, kind: Kind, raw_type: dt.DataType, formats: list[str],
               ctx: Context, birth: bool = False) -> FieldPlan:
    """The layers that turn ``__<name>_raw`` into ``__<name>_v`` / ``__<name>_i``.

    Raises :class:`temporal.UnsupportedFormat` for a format it cannot translate.
    """
    p, raw = f"__{name}_", raw_column(name)
    trimmed: Step = {f"{p}t": lambda t: ctx.strip(t[raw].cast("string")).nullif("")}
    typed = not raw_type.is_string() and not raw_type.is_null()
    # a value read with its own type: ``{p}t`` only says whether there is one
    present: Step = {f"{p}t": lambda t: ibis.ifelse(t[raw].isnull(), ibis.null("string"),
                                                    "1")}
    if typed and kind in (Kind.DECIMAL, Kind.INTEGER) and raw_type.is_numeric():
        return FieldPlan(name, [present, *_typed_number(p, raw, raw_type,
                                                        kind == Kind.INTEGER)])
    if typed and kind == Kind.BOOLEAN and raw_type.is_boolean():
        return FieldPlan(name, [present, {f"{p}v": lambda t: t[raw],
                                          f"{p}i": lambda t: ibis.null("string")}])
    if typed and kind == Kind.DATE and (raw_type.is_date() or raw_type.is_timestamp()):
        return FieldPlan(name, [present, *temporal.date_steps(
            p, f"{p}t", [], birth, typed=lambda t: t[raw].date() if raw_type.is_timestamp()
            else t[raw])])
    if typed and kind == Kind.TIMESTAMP and (raw_type.is_date() or raw_type.is_timestamp()):
        return FieldPlan(name, [present, *temporal.timestamp_steps(
            p, f"{p}t", [], ctx.zone, ctx.naive_utc, typed=lambda t: t[raw],
            typed_type=raw_type)])

    patterns = [temporal.pattern_from_strptime(f) for f in formats]
    layers: list[Step]
    joins: dict[int, Join] = {}
    if kind in (Kind.TEXT, Kind.CODE):
        # identifiers are kept as typed (trimmed only); free text gets whitespace collapsed
        layers = _text(p, TEXT_LIMIT, collapse=kind == Kind.TEXT)
    elif kind == Kind.JSON:
        layers = _text(p, JSON_LIMIT, collapse=False)
    elif kind == Kind.EMAIL:
        join = Join(dicts.EMAIL_TABLE, ctx.lookups[dicts.EMAIL_TABLE], f"{p}dk", p,
                    normalise=dicts.normalize_email)
        layers, joins = _dictionary(
            p, lambda t: dicts.email_key(t[f"{p}t"]),
            lambda t: ibis.ifelse(dicts.email_is_plain(t[f"{p}k"]), t[f"{p}k"],
                                  ibis.null("string")),
            320, "invalid_email", join)
    elif kind == Kind.PHONE:
        region = ctx.region
        join = Join(dicts.PHONE_TABLE, ctx.lookups[dicts.PHONE_TABLE], f"{p}dk", p, region,
                    normalise=lambda raw: dicts.normalize_phone(raw, region))
        fast = (lambda t: dicts.phone_fast(t[f"{p}k"], region)) if region == "FR" else None
        layers, joins = _dictionary(p, lambda t: dicts.phone_key(t[f"{p}t"]), fast, 64,
                                    "invalid_phone", join)
    elif kind == Kind.NAME:
        join = Join(dicts.NAME_TABLE, ctx.lookups[dicts.NAME_TABLE], f"{p}dk", p,
                    normalise=dicts.normalize_name)
        layers, joins = _dictionary(
            p, lambda t: t[f"{p}t"].re_replace(_WS, " "),
            lambda t: ibis.ifelse(t[f"{p}k"].re_search(dicts.NAME_FAST), t[f"{p}k"],
                                  ibis.null("string")),
            TEXT_LIMIT, "too_long", join)
    elif kind == Kind.COUNTRY:
        join = Join(dicts.COUNTRY_TABLE, ctx.lookups[dicts.COUNTRY_TABLE], f"{p}dk", p)
        layers = [{f"{p}dk": lambda t: t[f"{p}t"].re_replace(_WS, " ").upper()},
                  {f"{p}v": lambda t: t[f"{p}dv"],
                   f"{p}i": lambda t: ibis.ifelse(t[f"{p}dk"].notnull() & t[f"{p}dv"].isnull(),
                                                  "invalid_country", ibis.null("string"))}]
        joins = {0: join}
    elif kind == Kind.POSTCODE:
        layers = _postcode(p, ctx)
    elif kind == Kind.IDENTIFIER:
        layers = _identifier(p)
    elif kind == Kind.GENDER:
        layers = _gender(p)
    elif kind == Kind.DATE:
        layers = temporal.date_steps(p, f"{p}t", patterns, birth)
    elif kind == Kind.TIMESTAMP:
        layers = temporal.timestamp_steps(p, f"{p}t", patterns, ctx.zone, ctx.naive_utc)
    elif kind in (Kind.DECIMAL, Kind.INTEGER):
        layers = _number_steps(p, ctx.decimal, kind == Kind.INTEGER)
    elif kind == Kind.BOOLEAN:
        layers = _boolean(p, name in ctx.checkboxes)
    else:  # pragma: no cover - every Kind is handled above
        raise ValueError(kind)
    return FieldPlan(name, [trimmed, *layers], {i + 1: j for i, j in joins.items()})


def run_layers(table: ir.Table, plans: list[FieldPlan]) -> tuple[ir.Table, list[tuple[Join,
                                                                                    ir.Table]]]:
    """Apply every plan's layers side by side; returns the table and, for each dictionary
    join, the table of keys it looks up (what :func:`dictionaries.fill` must know)."""
    depth = max((len(plan.layers) for plan in plans), default=0)
    keys: list[tuple[Join, ir.Table]] = []
    for i in range(depth):
        columns: dict[str, ir.Value] = {}
        for plan in plans:
            if i < len(plan.layers):
                columns.update({name: fn(table) for name, fn in plan.layers[i].items()})
        if columns:
            table = table.mutate(**columns)
        joins = [plan.joins[i] for plan in plans if i in plan.joins]
        # every key of this layer read before any of its joins: the query that fills one
        # dictionary then neither joins nor reads the others
        keys += [(join, table.select(raw=table[join.key])) for join in joins]
        for join in joins:
            lookup = join.lookup.view().rename(
                {f"{join.prefix}dkey": "raw", f"{join.prefix}dv": "value",
                 f"{join.prefix}di": "issue"})
            table = table.left_join(
                lookup, table[join.key] == lookup[f"{join.prefix}dkey"]
            ).drop(f"{join.prefix}dkey")
    return table, keys
