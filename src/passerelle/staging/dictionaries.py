"""Distinct-value dictionaries: where a Python library is the authority on a value.

E-mail syntax (``email-validator``), phone numbers (``phonenumbers``) and person names are
normalised in Python, but never row by row: staging sends the *distinct* values that are
not in the warehouse dictionary yet (``_norm_email``, ``_norm_phone``, ``_norm_name``),
normalises them in bulk, appends them back through the engine's bulk path, and joins in
SQL. A re-run only sends values never seen before.

The common shapes skip Python altogether: a conservative SQL test recognises plain ASCII
addresses that email-validator certainly accepts unchanged, and French phone numbers in
the usual spellings, whose E.164 form is computed in SQL from the same national-number
patterns ``phonenumbers`` uses. Tests compare both paths on thousands of values.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

import ibis
import ibis.expr.types as ir
import pyarrow as pa

from passerelle.engines.base import Engine

EMAIL_TABLE = "_norm_email"
PHONE_TABLE = "_norm_phone"
NAME_TABLE = "_norm_name"
COUNTRY_TABLE = "_norm_country"

SCHEMAS: dict[str, ibis.Schema] = {
    EMAIL_TABLE: ibis.schema({"raw": "string", "value": "string", "issue": "string"}),
    PHONE_TABLE: ibis.schema(
        {"raw": "string", "region": "string", "value": "string", "issue": "string"}
    ),
    NAME_TABLE: ibis.schema({"raw": "string", "value": "string", "issue": "string"}),
}

# Characters people put inside phone numbers that mean nothing.
_PHONE_NOISE = "[ \t.\\-/\u00a0\u202f]"


# ----------------------------------------------------------------------------- e-mail
def email_key(text: ir.StringValue) -> ir.StringValue:
    """The form a dictionary is keyed by: trimmed, lower-cased (SQL side)."""
    return text.strip().lower()


def _special_use_domains() -> list[str]:
    import email_validator

    return [re.escape(d) for d in email_validator.SPECIAL_USE_DOMAIN_NAMES]


_EMAIL_FAST = (
    r"^[a-z0-9_+-]+(\.[a-z0-9_+-]+)*@([a-z0-9]+(-[a-z0-9]+)*\.)+[a-z]{2,63}$"
)


def email_is_plain(key: ir.StringValue) -> ir.BooleanValue:
    """True for lower-case ASCII dot-atom addresses that email-validator accepts unchanged.

    Conservative on purpose: no quoted parts, no ``--`` in the domain (IDNA rules), labels and
    local atoms under 64 characters, a letters-only top-level domain that is not a
    special-use name. Everything else goes to email-validator.
    """
    special = r"\.(" + "|".join(_special_use_domains()) + r")$"
    return (
        key.re_search(_EMAIL_FAST)
        & (key.length() <= 254)
        & (key.find("@") <= 64)
        & ~key.re_search("[a-z0-9_+-]{64,}")
        & ~key.re_search(special)
    )


def normalize_email(raw: str) -> tuple[str | None, str | None]:
    """(normalised address, issue) for one distinct key."""
    from email_validator import EmailNotValidError, validate_email

    try:
        result = validate_email(raw, check_deliverability=False)
    except EmailNotValidError:
        return None, "invalid_email"
    return result.normalized.lower(), None


# ----------------------------------------------------------------------------- phones
def phone_key(text: ir.StringValue) -> ir.StringValue:
    """Trimmed, without spaces, dots, dashes and slashes (they never change a number)."""
    return text.re_replace(_PHONE_NOISE, "")


def _ascii_digits(pattern: str) -> str:
    """``\\d`` -> ``[0-9]`` so the pattern means the same on RE2 and PostgreSQL."""
    out, in_class, i = [], False, 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            pair = pattern[i : i + 2]
            out.append(("0-9" if in_class else "[0-9]") if pair == "\\d" else pair)
            i += 2
            continue
        if c == "[":
            in_class = True
        elif c == "]":
            in_class = False
        out.append(c)
        i += 1
    return "".join(out)


def french_national_pattern() -> str:
    """Valid French national significant numbers, from phonenumbers' own metadata."""
    from phonenumbers import PhoneMetadata

    meta = PhoneMetadata.metadata_for_region("FR")
    types = ("fixed_line", "mobile", "toll_free", "premium_rate", "shared_cost",
             "personal_number", "voip", "uan", "pager", "voicemail")
    parts = []
    for name in types:
        desc = getattr(meta, name)
        if desc is not None and desc.national_number_pattern:
            parts.append(f"(?:{_ascii_digits(desc.national_number_pattern)})")
    return "(" + "|".join(parts) + ")"


def phone_fast(key: ir.StringValue, region: str) -> ir.StringValue | None:
    """E.164 for French numbers in the usual spellings, NULL otherwise; None if no fast path.

    ``0612345678``, ``+33612345678``, ``0033612345678`` and ``+33(0)612345678`` (noise
    already removed) with region FR. Other regions go through phonenumbers.
    """
    if region != "FR":
        return None
    pattern = r"^(?:0|\+33|0033|\+33\(0\))" + french_national_pattern() + "$"
    return ibis.cases((key.re_search(pattern), key.re_replace(pattern, r"+33\1")), else_=None)


def normalize_phone(raw: str, region: str) -> tuple[str | None, str | None]:
    import phonenumbers

    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return None, "invalid_phone"
    if not phonenumbers.is_valid_number(number):
        return None, "invalid_phone"
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164), None


# ------------------------------------------------------------------------------ names
# Names already in this shape come out of title_name unchanged: no need to ask Python.
NAME_FAST = r"^[A-Z][a-z]+(-[A-Z][a-z]+)*$"
_PARTICLES = {"de", "du", "des"}
_AFTER_DE = {"la", "le"}
_WORD = re.compile(r"[^\s\-'’]+")


def _cap(match: re.Match[str]) -> str:
    word = match.group(0)
    return word[:1].upper() + word[1:].lower()


def title_name(raw: str) -> str:
    """``jean-pierre`` -> ``Jean-Pierre``, ``D'ARTAGNAN`` -> ``D'Artagnan``, accents kept.

    The particles ``de``, ``du``, ``des`` (and ``la``/``le`` right after ``de``) stay
    lower-case when a word follows them: ``DE LA FONTAINE`` -> ``de la Fontaine``, while
    ``LE GOFF`` -> ``Le Goff``.
    """
    words = raw.split()
    out = []
    for i, word in enumerate(words):
        low = word.lower()
        followed = i + 1 < len(words)
        after_de = i > 0 and words[i - 1].lower() == "de"
        if followed and (low in _PARTICLES or (after_de and low in _AFTER_DE)):
            out.append(low)
        else:
            out.append(_WORD.sub(_cap, word))
    return " ".join(out)


def normalize_name(raw: str) -> tuple[str | None, str | None]:
    value = title_name(raw)
    return (value or None), None


# ------------------------------------------------------------------------- the tables
def ensure_tables(engine: Engine) -> None:
    for name, schema in SCHEMAS.items():
        engine.create_empty(name, schema)


def fill(engine: Engine, table: str, keys: ir.Table,
         normalise: Callable[[str], tuple[str | None, str | None]],
         region: str | None = None) -> int:
    """Normalise the distinct ``keys.raw`` missing from ``table``; returns how many.

    Only the anti-join's result crosses into Python, so a re-run costs one SQL scan.
    """
    known = engine.table(table)
    if region is not None:
        known = known.filter(known.region == region)
    pending = keys.select("raw").filter(keys.raw.notnull()).distinct()
    pending = pending.anti_join(known, pending.raw == known.raw)
    values = engine.to_arrow(pending).column("raw").to_pylist()
    if not values:
        return 0
    rows = [normalise(v) for v in values]
    columns: dict[str, Iterable] = {"raw": values}
    if region is not None:
        columns["region"] = [region] * len(values)
    columns["value"] = [r[0] for r in rows]
    columns["issue"] = [r[1] for r in rows]
    batch = pa.table(columns, schema=SCHEMAS[table].to_pyarrow())
    engine.append_arrow(table, batch.to_reader())
    return len(values)


def lookup(engine: Engine, table: str, region: str | None = None) -> ir.Table:
    """The dictionary as joined by staging: one row a key even if two runs raced."""
    known = engine.table(table)
    if region is not None:
        known = known.filter(known.region == region)
    if "issue" not in known.columns:
        known = known.mutate(issue=ibis.null("string"))
    return known.select("raw", "value", "issue").distinct()


def write_countries(engine: Engine) -> None:
    """(Re)write ``_norm_country`` from the mapping shipped in the code when it changed."""
    from passerelle.staging.countries import country_mapping

    mapping = country_mapping()
    if engine.exists(COUNTRY_TABLE) and engine.count(COUNTRY_TABLE) == len(mapping):
        return
    engine.drop(COUNTRY_TABLE)
    table = pa.table({"raw": list(mapping), "value": list(mapping.values())})
    engine.append_arrow(COUNTRY_TABLE, table.to_reader())
