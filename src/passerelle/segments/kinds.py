"""What a segment condition may compare: the kinds of profile columns and trait values, and
the check that a literal fits the kind (text vs number vs date vs boolean).

The offline kinds (``PROFILE_KINDS``) come from the standard model, so `passerelle validate`
checks segments without a warehouse; at compile time the real ``profiles`` schema decides.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import TYPE_CHECKING

from passerelle.errors import PasserelleError
from passerelle.model import ENTITIES, Kind
from passerelle.project.segments_models import NO_VALUE_OPS, ORDER_OPS, TEXT_OPS

if TYPE_CHECKING:  # the kinds are read offline (validate, a project load) without Ibis
    import ibis.expr.datatypes as dt

TEXT, NUMBER, DATE, BOOLEAN = "text", "number", "date", "boolean"


class SegmentError(PasserelleError, ValueError):
    """A segment that cannot be compiled: unknown field, wrong type, cycle..."""


def _kind_of(kind: Kind) -> str:
    if kind in (Kind.DECIMAL, Kind.INTEGER):
        return NUMBER
    if kind in (Kind.DATE, Kind.TIMESTAMP):
        return DATE
    return BOOLEAN if kind == Kind.BOOLEAN else TEXT


def _offline_profile_kinds() -> dict[str, str]:
    from passerelle.project.identity_models import CONSENT_FIELDS
    from passerelle.project.identity_models import IDENTITY_FIELDS as GOLDEN_FIELDS

    customer = {f.name: f.kind for f in ENTITIES["customers"].fields}
    kinds = {"person_id": TEXT}
    for f in (*GOLDEN_FIELDS, *CONSENT_FIELDS):
        kinds[f] = _kind_of(customer[f])
        kinds[f"{f}__source"] = TEXT
    kinds.update(record_count=NUMBER, sources=TEXT, first_seen_at=DATE, last_updated_at=DATE,
                 consent_email__updated_at=DATE, consent_sms__updated_at=DATE)
    return kinds


PROFILE_KINDS: dict[str, str] = _offline_profile_kinds()


def kind_of_dtype(dtype: dt.DataType) -> str:
    if dtype.is_numeric():
        return NUMBER
    if dtype.is_temporal():
        return DATE
    return BOOLEAN if dtype.is_boolean() else TEXT


def schema_kinds(schema: Iterable[tuple[str, dt.DataType]]) -> dict[str, str]:
    return {name: kind_of_dtype(t) for name, t in schema}


def trait_kinds(definitions: object) -> dict[str, str]:
    """Trait name -> kind of its value, for every output of a project's traits."""
    from passerelle.project.traits_models import AggregateTrait, outputs, value_kind

    kinds: dict[str, str] = {}
    for trait in getattr(definitions, "traits", None) or []:
        if isinstance(trait, AggregateTrait):
            kinds[trait.name] = {"number": NUMBER, "text": TEXT, "date": DATE}[value_kind(trait)]
            continue
        for name in outputs(trait):
            main = name == trait.name
            kinds[name] = TEXT if main and trait.builtin in (
                "rfm", "favourite_category", "favourite_channel") else NUMBER
    return kinds


def value_kind(value: object) -> str:
    """The kind of a literal written in a segment file."""
    if isinstance(value, bool):
        return BOOLEAN
    if isinstance(value, (int, float)):
        return NUMBER
    if isinstance(value, (date, datetime)):
        return DATE
    if isinstance(value, str) and _iso_date(value) is not None:
        return DATE
    return TEXT


def _iso_date(text: str) -> date | datetime | None:
    try:
        return datetime.fromisoformat(text) if "T" in text or " " in text else \
            date.fromisoformat(text)
    except ValueError:
        return None


def coerce(value: object, kind: str) -> object:
    """The Python value a literal becomes for a column of ``kind`` (dates parsed)."""
    if kind == DATE and isinstance(value, str):
        parsed = _iso_date(value)
        return parsed if parsed is not None else value
    if kind == NUMBER and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def mismatch(op: str, value: object, kind: str, what: str) -> tuple[str, str] | None:
    """(message, hint) when ``op value`` cannot apply to a ``kind`` column, else None."""
    if op in NO_VALUE_OPS:
        return None
    if op in TEXT_OPS and kind != TEXT:
        return (f"'{op}' needs text, and {what} is {kind}", "use =, <, >, between or in")
    if op in ORDER_OPS and kind == BOOLEAN:
        return (f"'{op}' cannot order {what}, a boolean", "use = true or = false")
    values = value if isinstance(value, list) else [value]
    for v in values:
        got = value_kind(v)
        ok = got == kind or (kind == TEXT and got == DATE and isinstance(v, str))
        if not ok:
            hint = (f"quote it: '{v}'" if kind == TEXT and got == NUMBER else
                    "write a date as YYYY-MM-DD" if kind == DATE else
                    f"compare {what} with a {kind} value")
            return (f"{what} is {kind} and is compared with {got} value {v!r}", hint)
    return None


def close_names(word: str, options: Mapping[str, object] | Iterable[str]) -> str | None:
    import difflib

    close = difflib.get_close_matches(word, list(options), n=1)
    return f"did you mean '{close[0]}'?" if close else None
