"""Countries from CLDR (Babel): the full ISO 3166-1 list, names in French and English, and
postcode rules per country, checked in SQL on both engines against the Python twins."""

from __future__ import annotations

import pytest

from passerelle.staging import countries
from staging_helpers import load_raw, source, stage, stage_values


def test_full_iso_list():
    codes = countries.iso_countries()
    # ISO 3166-1 has 249 officially assigned alpha-2 codes (ISO 3166 Maintenance Agency)
    assert len(codes) == 249
    assert {"AU", "NZ", "JP", "BR", "AQ", "AX", "SS", "BQ"} <= set(codes)
    assert not {"EU", "UN", "XK", "ZZ", "AC"} & set(codes)
    assert countries.country_name("DE", "fr") == "Allemagne"
    assert countries.country_name("DE", "en") == "Germany"
    assert countries.country_name("au", "fr") == "Australie"


@pytest.mark.parametrize("typed, code", [
    ("Allemagne", "DE"), ("Germany", "DE"), ("DE", "DE"), ("de", "DE"), ("Deutschland", "DE"),
    ("AU", "AU"), ("Australie", "AU"), ("australia", "AU"), ("Nouvelle-Zélande", "NZ"),
    ("nouvelle zelande", "NZ"), ("Royaume-Uni", "GB"), ("UK", "GB"), ("fra", "FR"),
    ("Côte d’Ivoire", "CI"), ("Cote d'Ivoire", "CI"), ("Corée du Sud", "KR"),
    ("South Korea", "KR"), ("États-Unis", "US"), ("Etats-Unis", "US"), ("Narnia", None),
])
def test_names_in_either_language(typed, code):
    assert countries.resolve(typed) == code


def test_countries_in_sql(engine):
    values = ["AU", "Australie", "Allemagne", "Germany", "de", "Nouvelle-Zélande", "Japon",
              "ÉTATS-UNIS", "Narnia"]
    assert stage_values(engine, "customers", "country", values) == [
        ("AU", None), ("AU", None), ("DE", None), ("DE", None), ("DE", None), ("NZ", None),
        ("JP", None), ("US", None), (None, "country:invalid_country"),
    ]


# (country, valid postcode, invalid postcode), one a rule
CASES = [
    ("FR", "75011", "7501A"), ("DE", "10115", "101155"), ("AU", "2000", "20000"),
    ("NZ", "6011", "601"), ("BE", "1000", "10000"), ("CH", "8001", "80011"),
    ("AT", "1010", "A1010"), ("NL", "1012 AB", "1012"), ("GB", "SW1A 1AA", "SW1A"),
    ("IE", "D02 X285", "D02"), ("US", "94105", "9410"), ("CA", "K1A 0B1", "K1A"),
    ("PT", "1000-001", "1000"), ("PL", "00-950", "00950X"), ("JP", "100-0001", "1000"),
    ("BR", "01310-100", "0131"), ("IN", "110001", "11000"), ("IT", "00184", "0018X"),
    ("ES", "28001", "2800X"), ("SE", "11122", "1112"), ("LU", "L-1009", "100"),
    ("MC", "98000", "75001"), ("RE", "97400", "75001"), ("ZA", "8001", "800"),
    ("GP", "97110", "97210"), ("MQ", "97200", "97100"), ("GF", "97300", "97400"),
    ("YT", "97600", "97500"), ("FI", "00100", "0010X"), ("GR", "10431", "1043"),
    ("CZ", "110 00", "1100"), ("SK", "811 01", "8110"), ("MA", "10000", "1000"),
    ("DZ", "16000", "1600"), ("EE", "10111", "1011"), ("HR", "10000", "100000"),
    ("DK", "1050", "10500"), ("NO", "0150", "015"), ("HU", "1011", "10111"),
    ("SI", "1000", "10000"), ("TN", "1000", "10000"),
]


@pytest.mark.parametrize("country, good, bad", CASES)
def test_postcode_rule_twin(country, good, bad):
    assert countries.postcode_ok(good, country) is True
    assert countries.postcode_ok(bad, country) is False


def test_every_rule_has_a_case():
    assert {c for c, _, _ in CASES} == set(countries.POSTCODE_RULES)


def test_postcodes_checked_per_country_in_sql(engine):
    rows = [(c, v) for c, good, bad in CASES for v in (good, bad)]
    rows += [("AR", "C1425"), ("AR", "anything 1"), ("KR", "???")]  # no rule: kept as typed
    load_raw(engine, "addr", [{"id": str(i), "cp": v, "pays": c}
                              for i, (c, v) in enumerate(rows)])
    src = source("addr", "customers", {"customer_id": "id", "postcode": "cp", "country": "pays"})
    _, staged = stage(engine, src)
    staged = sorted(staged, key=lambda r: int(r["customer_id"]))
    got = [(r["country"], r["postcode"], r["_issues"]) for r in staged]
    expected = []
    for c, v in rows:
        ok = countries.postcode_ok(v, c)
        clean = "".join(v.split()).upper()
        if ok is not False:  # valid, or no rule for the country: kept as typed
            expected.append((c, clean, None))
        else:
            expected.append((c, None, "postcode:invalid_postcode"))
    assert got == expected
    assert ("AU", "2000", None) in got and ("AR", "ANYTHING1", None) in got
