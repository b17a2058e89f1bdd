"""Every normaliser on small hand-made tables, with exact expected outputs, on both engines."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pyarrow as pa

from staging_helpers import load_raw, source, stage, stage_values

D = Decimal


def test_emails(engine):
    values = [" Jean.Dupont@Exemple.FR ", "JOHN+tag@mail.co.uk", "pas un mail", "a..b@x.fr",
              "élodie@exemple.fr", "x@exemple.test", "", None, "user@bücher.ch", "a.b@localhost"]
    assert stage_values(engine, "customers", "email", values) == [
        ("jean.dupont@exemple.fr", None), ("john+tag@mail.co.uk", None),
        (None, "email:invalid_email"), (None, "email:invalid_email"),
        ("élodie@exemple.fr", None), (None, "email:invalid_email"), (None, None), (None, None),
        ("user@bücher.ch", None), (None, "email:invalid_email"),
    ]


def test_phones_french_formats_and_other_regions(engine):
    values = ["06 12 34 56 78", "06.12.34.56.78", "+33 6 12 34 56 78", "0033 6 12 34 56 78",
              "+33 (0)1 23 45 67 89", "0612345678", "+32 470 12 34 56", "12345",
              "07 00 00 00 00", None]
    ok = "+33612345678"
    assert stage_values(engine, "customers", "phone", values) == [
        (ok, None), (ok, None), (ok, None), (ok, None), ("+33123456789", None), (ok, None),
        ("+32470123456", None), (None, "phone:invalid_phone"), (None, "phone:invalid_phone"),
        (None, None),
    ]


def test_phone_region_of_the_source(engine):
    values = ["0470 12 34 56", "06 12 34 56 78"]
    assert stage_values(engine, "customers", "phone", values,
                        source_extra={"default_region": "BE"}) == [
        ("+32470123456", None), (None, "phone:invalid_phone"),
    ]


def test_names(engine):
    values = ["jean-pierre", "D'ARTAGNAN", "  marie   claire ", "DE LA FONTAINE", "Élodie",
              "ÉLODIE", "Dupont", "le goff", None]
    assert [v for v, _ in stage_values(engine, "customers", "last_name", values)] == [
        "Jean-Pierre", "D'Artagnan", "Marie Claire", "de la Fontaine", "Élodie", "Élodie",
        "Dupont", "Le Goff", None,
    ]


def test_text_and_codes(engine):
    values = ["  12   rue  de la Paix ", "", "   ", "x" * 5000, "Bât.\tB"]
    assert stage_values(engine, "customers", "address_line1", values) == [
        ("12 rue de la Paix", None), (None, None), (None, None),
        (None, "address_line1:too_long"), ("Bât. B", None),
    ]


def test_postcodes_and_countries(engine):
    rows = [("7500", "France"), ("75 001", None), ("1000", "Belgique"), ("sw1a 1aa", "UK"),
            ("123", "FR"), ("ABCDE", None), ("6000", "Narnia")]
    load_raw(engine, "addr", [{"id": str(i), "cp": cp, "pays": c}
                              for i, (cp, c) in enumerate(rows)])
    src = source("addr", "customers", {"customer_id": "id", "postcode": "cp", "country": "pays"})
    _, staged = stage(engine, src)
    assert [(r["postcode"], r["country"], r["_issues"]) for r in staged] == [
        ("07500", "FR", None), ("75001", None, None), ("1000", "BE", None),
        ("SW1A1AA", "GB", None), (None, "FR", "postcode:invalid_postcode"),
        (None, None, "postcode:invalid_postcode"),
        ("06000", None, "country:invalid_country"),  # unknown country: default region FR
    ]


def test_countries(engine):
    values = ["France", "fra", "FRANCE", "Belgique", "belgium", "Royaume-Uni", "Pays-Bas",
              "Algérie", "ALGÉRIE", "DE", " suisse ", "Narnia"]
    assert stage_values(engine, "customers", "country", values) == [
        ("FR", None), ("FR", None), ("FR", None), ("BE", None), ("BE", None), ("GB", None),
        ("NL", None), ("DZ", None), ("DZ", None), ("DE", None), ("CH", None),
        (None, "country:invalid_country"),
    ]


def test_dates(engine):
    d = dt.date
    values = ["15/03/1980", "15-03-1980", "15.03.1980", "1980-03-15", "15/03/80", "15/03/05",
              "31/02/1980", "29/02/2000", "29/02/1900", "01/01/1850", "01/01/2999",
              "pas une date", "1/2/1990", "1980-03-15T00:00:00", None]
    assert stage_values(engine, "customers", "birth_date", values) == [
        (d(1980, 3, 15), None), (d(1980, 3, 15), None), (d(1980, 3, 15), None),
        (d(1980, 3, 15), None), (d(1980, 3, 15), None), (d(2005, 3, 15), None),
        (None, "birth_date:bad_date"), (d(2000, 2, 29), None), (None, "birth_date:bad_date"),
        (None, "birth_date:implausible_date"), (None, "birth_date:implausible_date"),
        (None, "birth_date:bad_date"), (d(1990, 2, 1), None), (d(1980, 3, 15), None),
        (None, None),
    ]


def test_date_explicit_format(engine):
    values = ["19800315", "19800231", "15/03/1980"]
    assert stage_values(engine, "customers", "birth_date", values,
                        mapping={"column": "val", "format": "%Y%m%d"}) == [
        (dt.date(1980, 3, 15), None), (None, "birth_date:bad_date"),
        (dt.date(1980, 3, 15), None),
    ]


def test_timestamps_to_utc(engine):
    t = dt.datetime
    values = ["2024-07-01 12:00:00",  # summer: Paris is UTC+2
              "2024-01-15 12:00:00",  # winter: UTC+1
              "15/01/2024 08:30", "01/07/2024 08:30:15", "2024-07-01T12:00:00Z",
              "2024-07-01T12:00:00+02:00", "2024-07-01T12:00:00.250-0500", "1719828000",
              "1719828000000", "2024-02-30 10:00", "hier", "2024-07-01", "2024-07-01 25:00"]
    assert stage_values(engine, "customers", "updated_at", values) == [
        (t(2024, 7, 1, 10), None), (t(2024, 1, 15, 11), None), (t(2024, 1, 15, 7, 30), None),
        (t(2024, 7, 1, 6, 30, 15), None), (t(2024, 7, 1, 12), None), (t(2024, 7, 1, 10), None),
        (t(2024, 7, 1, 17, 0, 0, 250000), None), (t(2024, 7, 1, 10), None),
        (t(2024, 7, 1, 10), None), (None, "updated_at:bad_timestamp"),
        (None, "updated_at:bad_timestamp"), (t(2024, 6, 30, 22), None),
        (None, "updated_at:bad_timestamp"),
    ]


def test_timestamp_explicit_format(engine):
    values = ["01072024 1200", "2024-07-01 12:00:00"]
    assert stage_values(engine, "customers", "updated_at", values,
                        mapping={"column": "val", "format": ["%d%m%Y %H%M"]}) == [
        (dt.datetime(2024, 7, 1, 10), None), (dt.datetime(2024, 7, 1, 10), None),
    ]


def test_decimals_auto(engine):
    values = ["12,50", "1 234,56", "1\u202f234,56", "1.234,56", "12.50", "12,50 €", "12.5 EUR",
              "-3,2", "1,234,567", "abc", "12,345", "", "1.2.3"]
    assert stage_values(engine, "order_lines", "unit_price", values) == [
        (D("12.50"), None), (D("1234.56"), None), (D("1234.56"), None), (D("1234.56"), None),
        (D("12.50"), None), (D("12.50"), None), (D("12.50"), None), (D("-3.20"), None),
        (D("1234567.00"), None), (None, "unit_price:bad_number"), (D("12.35"), None),
        (None, None), (None, "unit_price:bad_number"),
    ]


def test_decimals_declared_point(engine):
    values = ["1,234", "12,50", "1,234.5"]
    assert stage_values(engine, "order_lines", "unit_price", values, csv_decimal=".") == [
        (D("1234.00"), None), (D("12.50"), None), (D("1234.50"), None),
    ]


def test_integers(engine):
    values = ["3", "3,0", "3,5", "1 000", "x", "-2"]
    assert stage_values(engine, "order_lines", "quantity", values) == [
        (3, None), (3, None), (None, "quantity:bad_number"), (1000, None),
        (None, "quantity:bad_number"), (-2, None),
    ]


def test_booleans(engine):
    values = ["oui", "NON", "o", "n", "yes", "no", "Y", "true", "FALSE", "vrai", "faux", "1", "0",
              "opt-in", "opt-out", "peut-être", "", None]
    expected = [True, False, True, False, True, False, True, True, False, True, False, True,
                False, True, False, None, None, None]
    got = stage_values(engine, "customers", "consent_email", values)
    assert [v for v, _ in got] == expected
    assert got[15][1] == "consent_email:bad_boolean"
    assert {i for i, (_, issue) in enumerate(got) if issue} == {15}


def test_boolean_checkbox_column(engine):
    values = ["x", "", None, "X"]
    assert [v for v, _ in stage_values(engine, "customers", "consent_sms", values)] == [
        True, False, False, True]


def test_typed_columns_are_cast_directly(engine):
    rows = [{"id": "1", "born": dt.date(1980, 3, 15), "seen": dt.datetime(2024, 7, 1, 12),
             "created": dt.datetime(2024, 7, 1, 12, tzinfo=dt.UTC), "ok": True, "qty": 3,
             "price": 12.5}]
    types = {"born": pa.date32(), "seen": pa.timestamp("us"),
             "created": pa.timestamp("us", tz="UTC"), "ok": pa.bool_(), "qty": pa.int64(),
             "price": pa.float64()}
    load_raw(engine, "typed", rows, types=types)
    src = source("typed", "customers", {"customer_id": "id", "birth_date": "born",
                                        "updated_at": "seen", "created_at": "created",
                                        "consent_email": "ok", "loyalty_card": "qty"},
                 connector={"type": "parquet", "path": "x.parquet"})
    _, [row] = stage(engine, src)
    assert (row["birth_date"], row["updated_at"], row["created_at"], row["consent_email"],
            row["loyalty_card"], row["_issues"]) == (
        dt.date(1980, 3, 15), dt.datetime(2024, 7, 1, 10), dt.datetime(2024, 7, 1, 12), True,
        "3", None)
    load_raw(engine, "typed_lines", [{"id": "1", "qty": 3, "price": 12.5, "q2": 2.5}],
             types={"qty": pa.int64(), "price": pa.float64(), "q2": pa.float64()})
    src = source("typed_lines", "order_lines", {"order_id": "id", "line_number": "qty",
                                                "unit_price": "price", "quantity": "q2"})
    _, [line] = stage(engine, src)
    assert (line["line_number"], line["unit_price"], line["quantity"], line["_issues"]) == (
        3, D("12.50"), None, "quantity:bad_number")
