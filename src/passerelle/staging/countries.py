"""Country names and codes French sources use, mapped to ISO 3166-1 alpha-2.

The mapping ships with the code and is written to the warehouse as ``_norm_country`` so the
lookup is a join in SQL. Keys are upper-cased; because an engine may upper-case only ASCII
letters (a C locale), each name is also stored in that form (``ALGéRIE``), and without
accents, so the join matches whatever the engine's ``upper`` does.
"""

from __future__ import annotations

import unicodedata

# alpha-2: (alpha-3, names in French and English, with common variants)
_COUNTRIES: dict[str, tuple[str, tuple[str, ...]]] = {
    "FR": ("FRA", ("France", "République française", "France métropolitaine")),
    "BE": ("BEL", ("Belgique", "Belgium", "België")),
    "DE": ("DEU", ("Allemagne", "Germany", "Deutschland")),
    "CH": ("CHE", ("Suisse", "Switzerland", "Schweiz", "Svizzera")),
    "ES": ("ESP", ("Espagne", "Spain", "España")),
    "IT": ("ITA", ("Italie", "Italy", "Italia")),
    "GB": ("GBR", ("Royaume-Uni", "Royaume Uni", "United Kingdom", "UK", "Grande-Bretagne",
                   "Great Britain", "Angleterre", "England", "Écosse", "Scotland",
                   "Pays de Galles", "Wales")),
    "NL": ("NLD", ("Pays-Bas", "Pays Bas", "Netherlands", "The Netherlands", "Hollande",
                   "Holland", "Nederland")),
    "LU": ("LUX", ("Luxembourg",)),
    "PT": ("PRT", ("Portugal",)),
    "AT": ("AUT", ("Autriche", "Austria", "Österreich")),
    "BG": ("BGR", ("Bulgarie", "Bulgaria")),
    "HR": ("HRV", ("Croatie", "Croatia")),
    "CY": ("CYP", ("Chypre", "Cyprus")),
    "CZ": ("CZE", ("Tchéquie", "République tchèque", "Czechia", "Czech Republic")),
    "DK": ("DNK", ("Danemark", "Denmark")),
    "EE": ("EST", ("Estonie", "Estonia")),
    "FI": ("FIN", ("Finlande", "Finland")),
    "GR": ("GRC", ("Grèce", "Greece")),
    "HU": ("HUN", ("Hongrie", "Hungary")),
    "IE": ("IRL", ("Irlande", "Ireland", "Eire")),
    "LV": ("LVA", ("Lettonie", "Latvia")),
    "LT": ("LTU", ("Lituanie", "Lithuania")),
    "MT": ("MLT", ("Malte", "Malta")),
    "PL": ("POL", ("Pologne", "Poland", "Polska")),
    "RO": ("ROU", ("Roumanie", "Romania")),
    "SK": ("SVK", ("Slovaquie", "Slovakia")),
    "SI": ("SVN", ("Slovénie", "Slovenia")),
    "SE": ("SWE", ("Suède", "Sweden")),
    "NO": ("NOR", ("Norvège", "Norway")),
    "IS": ("ISL", ("Islande", "Iceland")),
    "LI": ("LIE", ("Liechtenstein",)),
    "MC": ("MCO", ("Monaco",)),
    "AD": ("AND", ("Andorre", "Andorra")),
    "US": ("USA", ("États-Unis", "Etats-Unis", "États-Unis d'Amérique", "United States",
                   "United States of America", "USA", "U.S.A.", "America", "Amérique")),
    "CA": ("CAN", ("Canada",)),
    "MA": ("MAR", ("Maroc", "Morocco")),
    "DZ": ("DZA", ("Algérie", "Algeria")),
    "TN": ("TUN", ("Tunisie", "Tunisia")),
    "SN": ("SEN", ("Sénégal", "Senegal")),
    "CI": ("CIV", ("Côte d'Ivoire", "Cote d'Ivoire", "Ivory Coast")),
    "RE": ("REU", ("La Réunion", "Réunion")),
    "GP": ("GLP", ("Guadeloupe",)),
    "MQ": ("MTQ", ("Martinique",)),
    "GF": ("GUF", ("Guyane", "Guyane française", "French Guiana")),
    "YT": ("MYT", ("Mayotte",)),
}
# Codes people type that are not the ISO ones.
_ALIASES = {"UK": "GB", "EL": "GR"}


def _strip_accents(text: str) -> str:
    return "".join(
        c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c)
    )


def _ascii_upper(text: str) -> str:
    return "".join(c.upper() if c.isascii() else c for c in text)


def _variants(name: str) -> set[str]:
    forms = {name, _strip_accents(name), name.replace("-", " "), name.replace("'", "’")}
    out: set[str] = set()
    for form in forms:
        out.add(form.upper())
        out.add(_ascii_upper(form))
        out.add(_ascii_upper(form.lower()))
    return out


def country_mapping() -> dict[str, str]:
    """Upper-cased key (as an engine's ``upper(trim(x))`` gives it) -> ISO alpha-2."""
    mapping: dict[str, str] = {}
    for alpha2, (alpha3, names) in _COUNTRIES.items():
        for key in (alpha2, alpha3, *names):
            for variant in _variants(key):
                mapping[variant] = alpha2
    for alias, alpha2 in _ALIASES.items():
        mapping[alias] = alpha2
    return mapping
