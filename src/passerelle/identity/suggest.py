"""``passerelle identity suggest``: an ``identity.yml`` proposed from the staged records.

Each identity field of ``customer_records`` is profiled in one SQL pass (how often it is
filled in, how many distinct values, their length and whether they hold letters, digits
or both); the proposal follows from those figures, each line with a comment saying why,
for IT to review before committing it:

- **keys**: identifiers filled in on at least 1 % of the records whose values are nearly
  all distinct (e-mail, phone, loyalty card, national id): records sharing one are the
  same person, guarded against shared values;
- **comparisons**: names as ``name`` (typos, nicknames), birth dates as ``date``, postcodes
  as ``postcode`` with the street line as its ``address`` level, the other fields
  ``exact`` (few distinct values, short codes) or ``text`` (free text, edit distance);
  a field filled in on under 5 % of records, or with one value, is left out;
- **blocking**: ``auto`` within the budget for this many records, with the rules it would
  choose today.
"""

from __future__ import annotations

from dataclasses import dataclass

import ibis.expr.types as ir
import yaml

from passerelle.engines.base import Engine
from passerelle.identity import blocking
from passerelle.project.identity_models import IDENTITY_FIELDS, IdentityConfig

MIN_FILL = 0.05  # a field filled in on fewer records is not compared
MIN_KEY_FILL = 0.01
KEY_UNIQUE = 0.3  # distinct values / filled-in records for an identifier to be a key
KEY_MIN_DISTINCT = 50  # fewer distinct values: a category, not an identifier
KEY_FIELDS = ("email", "phone", "loyalty_card", "national_id")
NAME_FIELDS = ("first_name", "last_name")
SKIPPED = ("customer_id", "address_line2")  # a source's own id; an address complement


@dataclass(frozen=True)
class FieldProfile:
    field: str
    filled: int
    distinct: int
    avg_length: float
    letters: float  # share of values holding a letter
    digits: float  # share of values holding a digit
    is_date: bool

    def fill(self, records: int) -> float:
        return self.filled / records if records else 0.0


def profile(engine: Engine, records: ir.Table) -> tuple[int, list[FieldProfile]]:
    """Per identity field (and extra field): fill, distinct values, shape; one SQL pass."""
    fields = [f for f in records.columns if f in IDENTITY_FIELDS or f.startswith("extra_")]
    aggs: dict[str, ir.Value] = {"_n": records.count()}
    for f in fields:
        col = records[f]
        text = col.cast("string")
        aggs[f"{f}__filled"] = col.count()
        aggs[f"{f}__distinct"] = col.nunique()
        aggs[f"{f}__len"] = text.length().cast("float64").mean().cast("float64")
        aggs[f"{f}__letters"] = text.re_search("[A-Za-z]").ifelse(1, 0).sum()
        aggs[f"{f}__digits"] = text.re_search("[0-9]").ifelse(1, 0).sum()
    row = engine.to_arrow(records.aggregate(**aggs)).to_pylist()[0]
    n = int(row["_n"] or 0)
    out = []
    for f in fields:
        filled = int(row[f"{f}__filled"] or 0)
        out.append(FieldProfile(
            f, filled, int(row[f"{f}__distinct"] or 0), float(row[f"{f}__len"] or 0.0),
            int(row[f"{f}__letters"] or 0) / filled if filled else 0.0,
            int(row[f"{f}__digits"] or 0) / filled if filled else 0.0,
            records[f].type().is_temporal()))
    return n, out


def _method(p: FieldProfile, has_postcode: bool) -> tuple[str, str]:
    """(method, why) for a compared field."""
    if p.field in NAME_FIELDS:
        return "name", "a person's name: typos (Jaro-Winkler) and nicknames count"
    if p.is_date or p.field == "birth_date":
        return "date", "a date: one-character typos and day/month swaps count"
    if p.field == "postcode":
        return "postcode", "same postcode, then same first two characters (area)"
    if p.field == "address_line1":
        if has_postcode:
            return "address", "the street line counts as the top level of the postcode " \
                              "comparison (one address is not counted twice)"
        return "text", "free text: an edit distance of 1 to 3 counts"
    if p.field == "country" or p.distinct <= 50:
        return "exact", f"{p.distinct} distinct values: equal or not"
    if p.field.startswith("extra_") and p.letters > 0.8 and p.digits < 0.2 \
            and p.avg_length < 30:
        return "name", "words of letters, like a name: typos count"
    if p.avg_length >= 12 and p.letters > 0.5:
        return "text", f"free text ({p.avg_length:.0f} characters on average): an edit " \
                       "distance of 1 to 3 counts"
    return "exact", "a short code: equal or not"


def suggest(engine: Engine, records: ir.Table) -> str:
    """The proposed identity.yml, commented, as text (validated before it is returned)."""
    n, profiles = profile(engine, records)
    by_field = {p.field: p for p in profiles}
    lines = ["# identity.yml proposed by `passerelle identity suggest` from "
             f"{n:,} staged customer records.",
             "# Review every line before committing it: the comments say why it is here.",
             "# Reference: docs/identity-matching.md", ""]
    keys = [p for p in profiles if p.field in KEY_FIELDS and p.fill(n) >= MIN_KEY_FILL
            and p.distinct >= KEY_UNIQUE * p.filled and p.distinct >= KEY_MIN_DISTINCT]
    lines.append("keys:" if keys else "keys: []  # no identifier shared across records")
    for p in keys:
        unique = p.distinct / p.filled if p.filled else 0
        lines.append(f"  - field: {p.field}  # filled in on {p.fill(n):.0%} of records, "
                     f"{unique:.0%} distinct values")
        lines.append("    max_names: 2  # a value seen with more names is shared: not used")
        if p.field in ("email", "phone") and "first_name" in by_field:
            lines.append("    first_names_must_agree: true  # a couple sharing one stays two")
    key_fields = {p.field for p in keys}
    lines += ["", "probabilistic:", "  comparisons:"]
    has_postcode = "postcode" in by_field and by_field["postcode"].fill(n) >= MIN_FILL
    compared: list[str] = []
    left_out: list[str] = []
    for p in profiles:
        if p.field in SKIPPED or p.field in ("email", "phone"):
            continue
        if p.field in key_fields:
            left_out.append(f"{p.field} (a key above: comparing it too counts it twice)")
            continue
        if p.fill(n) < MIN_FILL:
            left_out.append(f"{p.field} (filled in on {p.fill(n):.1%} of records)")
            continue
        if p.distinct < 2:
            left_out.append(f"{p.field} (one value only)")
            continue
        method, why = _method(p, has_postcode)
        lines.append(f"    - {{field: {p.field}, method: {method}}}  # {why}; "
                     f"filled in on {p.fill(n):.0%}")
        compared.append(p.field)
    if not compared:
        lines[-1] = "  enabled: false  # no field to compare"
    for item in left_out:
        lines.append(f"    # left out: {item}")
    budget = blocking.BASE_BUDGET + blocking.PER_RECORD * n
    lines.append(f"  blocking: auto  # rules chosen from the compared fields within "
                 f"{budget:,} candidate pairs (1,000,000 + 100 x {n:,} records)")
    text = "\n".join(lines) + "\n"
    config = IdentityConfig.model_validate(yaml.safe_load(text))
    if compared:
        text += _rules_comment(engine, records, config)
    return text


def _rules_comment(engine: Engine, records: ir.Table, config: IdentityConfig) -> str:
    from passerelle.identity.splink_input import (
        INPUT_TABLE,
        _drop_own_tables,
        _materialise_input,
    )

    try:
        _, reps = _materialise_input(engine, records, config.probabilistic, prepass=True)
        choice = blocking.choose_rules(engine, engine.table(INPUT_TABLE),
                                       config.probabilistic, reps)
    finally:
        _drop_own_tables(engine)
    out = ["  # On these records, blocking: auto would choose today:"]
    for rule, why in zip(choice.rules, choice.reasons, strict=True):
        out.append(f"  #   [{', '.join(rule)}]: {why}")
    return "\n".join(out) + "\n"


