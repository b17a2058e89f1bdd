"""Staging as a whole: dedupe, quarantine, issues, schema, re-runs and errors."""

from __future__ import annotations

import datetime as dt

import ibis
import pyarrow as pa
import pytest

from passerelle.errors import PasserelleError, ProjectError
from passerelle.model import ENTITIES
from passerelle.staging import compile_staging, stg_schema
from passerelle.staging import dictionaries as dicts
from staging_helpers import PROJECT, T0, load_raw, source, stage

ORDERS = {"order_id": "id", "ordered_at": "quand", "amount": "montant", "email": "mail"}


def test_latest_version_of_each_record_wins(engine):
    load_raw(engine, "crm", [{"id": "1", "mail": "old@x.fr"}, {"id": "2", "mail": "b@x.fr"}])
    later = T0 + dt.timedelta(days=1)
    load_raw(engine, "crm", [{"id": "1", "mail": "new@x.fr"}, {"id": " 1 ", "mail": "newer@x.fr"}],
             load_id="L2", loaded_at=later, first_row=1)
    result, rows = stage(engine, source("crm", "customers", {"customer_id": "id", "email": "mail"}))
    assert [(r["_record_id"], r["email"], r["_load_id"], r["_source_row"]) for r in rows] == [
        ("1", "newer@x.fr", "L2", 2), ("2", "b@x.fr", "L1", 2)]
    assert (result.rows_in, result.rows_staged, result.rows_quarantined) == (2, 2, 0)


def test_quarantine_keeps_reason_detail_and_lineage(engine):
    # The loader's rows (no `stage` column yet) must survive staging.
    engine.create_empty("quarantine", ibis.schema({
        "source": "string", "load_id": "string", "source_file": "string", "source_row": "int64",
        "reason": "string", "detail": "string", "quarantined_at": "timestamp"}))
    engine.append_arrow("quarantine", pa.table({
        "source": ["shop"], "load_id": ["L0"], "source_file": ["shop.csv"], "source_row": [9],
        "reason": ["bad csv line"], "detail": ["a;b"], "quarantined_at": [T0]}).to_reader())
    rows = [
        {"id": "A1", "quand": "2024-07-01 12:00", "montant": "12,50", "mail": "x"},
        {"id": "A2", "quand": None, "montant": "10", "mail": None},
        {"id": "A3", "quand": "31/02/2024", "montant": "10", "mail": None},
        {"id": "A4", "quand": "2024-07-01", "montant": "dix euros", "mail": None},
        {"id": "A5", "quand": "", "montant": "1", "mail": None},
    ]
    load_raw(engine, "shop", rows)
    src = source("shop", "orders", ORDERS)
    for _ in range(2):  # re-staging replaces its own rows, never the loader's
        result, staged = stage(engine, src)
    assert [r["order_id"] for r in staged] == ["A1"]
    assert staged[0]["_issues"] == "email:invalid_email"
    assert (result.rows_in, result.rows_staged, result.rows_quarantined) == (5, 1, 4)
    assert result.top_reasons == [("ordered_at: missing", 2), ("amount: not a valid number", 1),
                                  ("ordered_at: not a valid timestamp", 1)]
    q = engine.to_arrow(engine.table("quarantine").order_by(["source", "source_row"])).to_pylist()
    assert [(r["source"], r["load_id"], r["source_file"], r["source_row"], r["reason"],
             r["detail"], r["stage"]) for r in q] == [
        ("shop", "L1", "shop.csv", 2, "ordered_at: missing", None, "stage"),
        ("shop", "L1", "shop.csv", 3, "ordered_at: not a valid timestamp", "31/02/2024", "stage"),
        ("shop", "L1", "shop.csv", 4, "amount: not a valid number", "dix euros", "stage"),
        ("shop", "L1", "shop.csv", 5, "ordered_at: missing", "", "stage"),
        ("shop", "L0", "shop.csv", 9, "bad csv line", "a;b", None),
    ]


def test_detail_is_truncated(engine):
    load_raw(engine, "shop", [{"id": "A1", "quand": "z" * 500, "montant": "1", "mail": None}])
    stage(engine, source("shop", "orders", ORDERS))
    [row] = engine.to_arrow(engine.table("quarantine")).to_pylist()
    assert row["detail"] == "z" * 200


def test_issues_list_every_flagged_field(engine):
    load_raw(engine, "crm", [{"id": "1", "mail": "nope", "naiss": "31/02/1980", "tel": "12"},
                             {"id": "2", "mail": "a@b.fr", "naiss": "1980-01-01", "tel": None}])
    result, rows = stage(engine, source("crm", "customers", {
        "customer_id": "id", "email": "mail", "birth_date": "naiss", "phone": "tel"}))
    assert [r["_issues"] for r in rows] == [
        "email:invalid_email;phone:invalid_phone;birth_date:bad_date", None]
    assert rows[0]["email"] is None and rows[0]["birth_date"] is None
    assert result.issues_by_field == {"email": 1, "phone": 1, "birth_date": 1}


def test_schema_is_the_entity_with_unmapped_fields_null_and_unions(engine):
    load_raw(engine, "crm", [{"id": "1", "mail": "a@b.fr", "ville": "Lyon"}])
    load_raw(engine, "shop_accounts", [{"ref": "9", "naiss": "01/02/1990"}])
    stage(engine, source("crm", "customers", {"customer_id": "id", "email": "mail",
                                              "city": "ville"}))
    _, rows = stage(engine, source("shop_accounts", "customers",
                                   {"customer_id": "ref", "birth_date": "naiss"}))
    expected = stg_schema(ENTITIES["customers"])
    for name in ("stg_crm", "stg_shop_accounts"):
        assert engine.table(name).schema() == expected
    assert rows[0]["email"] is None and rows[0]["city"] is None
    both = engine.table("stg_crm").union(engine.table("stg_shop_accounts"))
    got = engine.to_arrow(both.select("_source", "customer_id", "email", "birth_date")
                          .order_by("_source")).to_pylist()
    assert got == [
        {"_source": "crm", "customer_id": "1", "email": "a@b.fr", "birth_date": None},
        {"_source": "shop_accounts", "customer_id": "9", "email": None,
         "birth_date": dt.date(1990, 2, 1)},
    ]


def test_restaging_is_idempotent_and_sends_only_new_values_to_python(engine):
    rows = [{"id": str(i), "mail": m, "tel": t, "nom": n} for i, (m, t, n) in enumerate([
        ("élodie@exemple.fr", "+32 470 12 34 56", "DUPONT"), ("bad mail", "06 12 34 56 78", None),
        ("a@b.fr", "12", "Dupont")])]
    load_raw(engine, "crm", rows)
    src = source("crm", "customers", {"customer_id": "id", "email": "mail", "phone": "tel",
                                      "last_name": "nom"})
    first, before = stage(engine, src)
    assert first.new_dictionary_values == {dicts.EMAIL_TABLE: 2, dicts.PHONE_TABLE: 2,
                                           dicts.NAME_TABLE: 1}
    sizes = {t: engine.count(t) for t in dicts.SCHEMAS}
    again, after = stage(engine, src)
    assert after == before
    assert again.new_dictionary_values == {dicts.EMAIL_TABLE: 0, dicts.PHONE_TABLE: 0,
                                           dicts.NAME_TABLE: 0}
    load_raw(engine, "crm", [{"id": "9", "mail": "zoé@exemple.fr", "tel": "+32 2 555 12 12",
                              "nom": "MARTIN"},
                             {"id": "8", "mail": "bad mail", "tel": "12", "nom": "DUPONT"}],
             load_id="L2", loaded_at=T0 + dt.timedelta(hours=1))
    third, _ = stage(engine, src)
    assert third.new_dictionary_values == {dicts.EMAIL_TABLE: 1, dicts.PHONE_TABLE: 1,
                                           dicts.NAME_TABLE: 1}
    assert {t: engine.count(t) for t in dicts.SCHEMAS} == {t: n + 1 for t, n in sizes.items()}


def test_compile_does_not_materialise(engine):
    load_raw(engine, "crm", [{"id": "1", "mail": "A@B.FR"}])
    dicts.ensure_tables(engine)
    dicts.write_countries(engine)
    src = source("crm", "customers", {"customer_id": "id", "email": "mail"})
    compiled = compile_staging(engine, src, PROJECT)
    assert not engine.exists("stg_crm")
    assert engine.to_arrow(compiled.stg.select("email")).to_pylist() == [{"email": "a@b.fr"}]


def test_missing_column_names_source_field_and_columns(engine):
    load_raw(engine, "crm", [{"id": "1", "courriel": "a@b.fr"}])
    with pytest.raises(ProjectError) as err:
        stage(engine, source("crm", "customers", {"customer_id": "id", "email": "mail"}))
    text = str(err.value)
    assert "sources/crm.yml" in text and "'email'" in text and "'mail'" in text
    assert "available columns: id, courriel" in text


def test_unloaded_source_is_a_clear_error(engine):
    with pytest.raises(PasserelleError, match="has not been loaded"):
        stage(engine, source("ghost", "customers", {"customer_id": "id"}))


def test_unsupported_format_is_a_project_error(engine):
    load_raw(engine, "crm", [{"id": "1", "d": "1 mars 1980"}])
    with pytest.raises(ProjectError, match="%B"):
        stage(engine, source("crm", "customers", {
            "customer_id": "id", "birth_date": {"column": "d", "format": "%d %B %Y"}}))
