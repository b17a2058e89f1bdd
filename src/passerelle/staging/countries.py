"""Countries: ISO 3166-1 alpha-2 codes and the names people type for them, and the postcode
rules Passerelle knows per country.

The list is the full ISO 3166-1 (249 countries and territories), with names in French and
English, read from the Unicode CLDR data that Babel ships (maintained upstream, updated with
Babel); names in a few more European languages are accepted too (Deutschland, España,
België). The mapping is written to the warehouse as ``_norm_country`` so the lookup is a
join in SQL. Keys are upper-cased; because an engine may upper-case only ASCII letters (a C
locale), each name is also stored in that form (``ALGéRIE``), and without accents, so the
join matches whatever the engine's ``upper`` does.
"""

from __future__ import annotations

import re
import unicodedata
from functools import cache

# CLDR territory codes that are not ISO 3166-1 countries: regions, groupings, reserved or
# user-assigned codes (Ascension, Clipperton, Diego Garcia, Ceuta & Melilla, EU, Eurozone,
# Canary Islands, outlying Oceania, Tristan da Cunha, UN, pseudo-locales, Kosovo, unknown).
NOT_ISO = frozenset({"AC", "CP", "CQ", "DG", "EA", "EU", "EZ", "IC", "QO", "TA", "UN",
                     "XA", "XB", "XK", "ZZ"})
# Names are taken in this order: a name already taken keeps its first country.
NAME_LOCALES = ("fr", "en", "de", "es", "it", "nl", "pt")
# What people type besides the official names: alpha-3 codes of the countries French
# sources meet most, codes that are not ISO's, and common short or historical names.
ALIASES: dict[str, str] = {
    "FRA": "FR", "BEL": "BE", "DEU": "DE", "CHE": "CH", "ESP": "ES", "ITA": "IT", "GBR": "GB",
    "NLD": "NL", "LUX": "LU", "PRT": "PT", "AUT": "AT", "BGR": "BG", "HRV": "HR", "CYP": "CY",
    "CZE": "CZ", "DNK": "DK", "EST": "EE", "FIN": "FI", "GRC": "GR", "HUN": "HU", "IRL": "IE",
    "LVA": "LV", "LTU": "LT", "MLT": "MT", "POL": "PL", "ROU": "RO", "SVK": "SK", "SVN": "SI",
    "SWE": "SE", "NOR": "NO", "ISL": "IS", "LIE": "LI", "MCO": "MC", "AND": "AD", "USA": "US",
    "CAN": "CA", "MAR": "MA", "DZA": "DZ", "TUN": "TN", "SEN": "SN", "CIV": "CI", "REU": "RE",
    "GLP": "GP", "MTQ": "MQ", "GUF": "GF", "MYT": "YT", "AUS": "AU", "NZL": "NZ", "JPN": "JP",
    "CHN": "CN", "BRA": "BR", "IND": "IN", "MEX": "MX", "ZAF": "ZA", "TUR": "TR", "UKR": "UA",
    "RUS": "RU", "ISR": "IL",
    "UK": "GB", "EL": "GR",
    "République française": "FR", "France métropolitaine": "FR",
    "Grande-Bretagne": "GB", "Great Britain": "GB", "Angleterre": "GB", "England": "GB",
    "Écosse": "GB", "Scotland": "GB", "Pays de Galles": "GB", "Wales": "GB",
    "Hollande": "NL", "Holland": "NL", "The Netherlands": "NL",
    "États-Unis d'Amérique": "US", "United States of America": "US", "U.S.A.": "US",
    "America": "US", "Amérique": "US", "République tchèque": "CZ", "Czech Republic": "CZ",
    "Eire": "IE", "Ivory Coast": "CI", "La Réunion": "RE", "Guyane": "GF",
}


@cache
def iso_countries() -> dict[str, dict[str, str]]:
    """ISO 3166-1 alpha-2 -> {locale: name} for :data:`NAME_LOCALES`."""
    from babel import Locale

    names = {loc: Locale(loc).territories for loc in NAME_LOCALES}
    codes = sorted(c for c in names["en"] if re.fullmatch("[A-Z]{2}", c) and c not in NOT_ISO)
    return {code: {loc: names[loc][code] for loc in NAME_LOCALES if code in names[loc]}
            for code in codes}


def country_name(code: str, locale: str = "en") -> str | None:
    """The country's name in ``locale`` (French or English...), or None for an unknown code."""
    return iso_countries().get(code.upper(), {}).get(locale)


def _strip_accents(text: str) -> str:
    return "".join(
        c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c)
    )


def _ascii_upper(text: str) -> str:
    return "".join(c.upper() if c.isascii() else c for c in text)


def _variants(name: str) -> set[str]:
    forms = {name}
    for change in (_strip_accents, lambda t: t.replace("-", " "),
                   lambda t: t.replace("'", "’"), lambda t: t.replace("’", "'")):
        forms |= {change(form) for form in forms}
    out: set[str] = set()
    for form in forms:
        out.add(form.upper())
        out.add(_ascii_upper(form))
        out.add(_ascii_upper(form.lower()))
    return out


@cache
def country_mapping() -> dict[str, str]:
    """Upper-cased key (as an engine's ``upper(trim(x))`` gives it) -> ISO alpha-2."""
    mapping: dict[str, str] = {}
    countries = iso_countries()
    for alpha2 in countries:
        mapping[alpha2] = alpha2
    for loc in NAME_LOCALES:  # French first, then English...: the first country keeps a name
        for alpha2, names in countries.items():
            if loc in names:
                for variant in _variants(names[loc]):
                    mapping.setdefault(variant, alpha2)
    for alias, alpha2 in ALIASES.items():
        for variant in _variants(alias):
            mapping.setdefault(variant, alpha2)
    return mapping


def resolve(text: str) -> str | None:
    """The alpha-2 code of a country typed as ``text`` (name in French or English, code),
    or None. Python twin of the SQL lookup, for validation and tests."""
    return country_mapping().get(" ".join(text.split()).upper())


# Postcode rules, on the value with its spaces removed and upper-cased. A country not listed
# here is not checked (its postcodes are kept as typed, never flagged). ``fix`` rewrites a
# common slip before the check (a French postcode whose leading zero a spreadsheet dropped).
POSTCODE_RULES: dict[str, str] = {
    "FR": r"^[0-9]{5}$", "MC": r"^980[0-9]{2}$",
    "GP": r"^971[0-9]{2}$", "MQ": r"^972[0-9]{2}$", "GF": r"^973[0-9]{2}$",
    "RE": r"^974[0-9]{2}$", "YT": r"^976[0-9]{2}$",
    "DE": r"^[0-9]{5}$", "IT": r"^[0-9]{5}$", "ES": r"^[0-9]{5}$", "FI": r"^[0-9]{5}$",
    "GR": r"^[0-9]{5}$", "SE": r"^[0-9]{5}$", "CZ": r"^[0-9]{5}$", "SK": r"^[0-9]{5}$",
    "MA": r"^[0-9]{5}$", "DZ": r"^[0-9]{5}$", "EE": r"^[0-9]{5}$", "HR": r"^[0-9]{5}$",
    "BE": r"^[0-9]{4}$", "CH": r"^[0-9]{4}$", "AT": r"^[0-9]{4}$", "DK": r"^[0-9]{4}$",
    "NO": r"^[0-9]{4}$", "LU": r"^(L-?)?[0-9]{4}$", "HU": r"^[0-9]{4}$", "SI": r"^[0-9]{4}$",
    "AU": r"^[0-9]{4}$", "NZ": r"^[0-9]{4}$", "ZA": r"^[0-9]{4}$", "TN": r"^[0-9]{4}$",
    "NL": r"^[0-9]{4}[A-Z]{2}$",
    "GB": r"^[A-Z]{1,2}[0-9][A-Z0-9]?[0-9][A-Z]{2}$",
    "IE": r"^[A-Z][0-9][0-9W][A-Z0-9]{4}$",
    "PT": r"^[0-9]{4}-?[0-9]{3}$", "PL": r"^[0-9]{2}-?[0-9]{3}$",
    "US": r"^[0-9]{5}(-?[0-9]{4})?$", "CA": r"^[A-Z][0-9][A-Z][0-9][A-Z][0-9]$",
    "JP": r"^[0-9]{3}-?[0-9]{4}$", "BR": r"^[0-9]{5}-?[0-9]{3}$", "IN": r"^[0-9]{6}$",
}
# Countries whose postcodes have five digits where a spreadsheet drops the leading zero.
LEADING_ZERO = frozenset({"FR", "DE", "IT", "ES", "FI"})


def postcode_ok(code: str, country: str) -> bool | None:
    """Python twin of the SQL check: True/False where a rule is known, else None."""
    rule = POSTCODE_RULES.get(country)
    if rule is None:
        return None
    value = re.sub(r"\s+", "", code).upper()
    if country in LEADING_ZERO and re.fullmatch("[0-9]{4}", value):
        value = "0" + value
    return re.fullmatch(rule.strip("^$"), value) is not None
