"""The fields real person lists carry: region, a national identifier (hashed at staging with
the project's salt), gender, and extra source columns that identity compares; their
validation with file and line."""

from __future__ import annotations

import hashlib
from pathlib import Path

from passerelle.project.identity_models import Comparison, IdentityConfig
from passerelle.project.models import ProjectConfig
from passerelle.staging.unify import unify_entities
from staging_helpers import load_raw, source, stage, stage_values
from test_project_load import GOOD_SOURCE, problems_of, write

SALT = "s3cret-salt"
SALTED = ProjectConfig(name="t", identity_salt=SALT)


def test_gender_words_to_f_m_x(engine):
    values = ["F", "femme", "Mme.", "male", "M.", "Herr", "w", "divers", "X", "?", None]
    assert stage_values(engine, "customers", "gender", values) == [
        ("F", None), ("F", None), ("F", None), ("M", None), ("M", None), ("M", None),
        ("F", None), ("X", None), ("X", None), (None, "gender:invalid_gender"), (None, None),
    ]


def test_national_id_cleaned_and_region_kept(engine):
    ids = ["1 85 05 78 006 084 36", "12-345.678/9", "x" * 80]
    assert stage_values(engine, "customers", "national_id", ids) == [
        ("185057800608436", None), ("123456789", None), (None, "national_id:too_long"),
    ]
    assert stage_values(engine, "customers", "region", ["  New South  Wales "],
                        name="src2") == [("New South Wales", None)]


def test_national_id_hashed_with_the_project_salt(engine):
    values = ["1 85 05 78 006 084 36", "185057800608436", None]
    got = stage_values(engine, "customers", "national_id", values,
                       mapping={"column": "val", "hash": True}, project=SALTED)
    digest = hashlib.sha256((SALT + "185057800608436").encode()).hexdigest()
    assert got == [(digest, None), (digest, None), (None, None)]


def test_hash_without_a_salt_is_refused(engine):
    import pytest

    from passerelle.errors import ProjectError

    with pytest.raises(ProjectError) as info:
        stage_values(engine, "customers", "national_id", ["1"],
                     mapping={"column": "val", "hash": True})
    assert "identity_salt" in str(info.value.problems[0])


def test_extra_fields_reach_customer_records(engine):
    from passerelle.project.load import ProjectDefinition

    load_raw(engine, "a", [{"id": "1", "emp": "ACME", "n": "Ann"}])
    load_raw(engine, "b", [{"id": "2", "n": "Bob"}])
    a = source("a", "customers", {"customer_id": "id", "first_name": "n"},
               extra_fields={"employer": "emp"})
    b = source("b", "customers", {"customer_id": "id", "first_name": "n"})
    for src in (a, b):
        stage(engine, src)
    project = ProjectDefinition(root=Path("."), config=ProjectConfig(name="t"),
                                sources={"a": a, "b": b})
    unify_entities(project, engine)
    rows = engine.to_arrow(engine.table("customer_records").order_by("_record_id")).to_pylist()
    assert [(r["first_name"], r["extra_employer"]) for r in rows] == [("Ann", "ACME"),
                                                                       ("Bob", None)]


def test_identity_compares_new_and_extra_fields():
    config = IdentityConfig.model_validate({
        "keys": [{"field": "national_id", "max_names": None}],
        "probabilistic": {"comparisons": [
            {"field": "first_name", "method": "name"}, {"field": "gender"},
            {"field": "region", "method": "text"},
            {"field": "extra_employer", "method": "name"}],
            "blocking": [["first_name", "extra_employer"]]}})
    assert config.keys[0].field == "national_id"
    assert Comparison(field="extra_employer").method == "exact"


def test_unknown_fields_reported_with_file_and_line(tmp_path):
    write(tmp_path, {
        "passerelle.yml": "name: t\n",
        "sources/crm.yml": GOOD_SOURCE + "    extra_fields:\n      employer: emp\n",
        "identity.yml": """
            keys:
              - field: national_id
              - field: extra_passport
            probabilistic:
              comparisons:
                - {field: first_name, method: name}
                - {field: extra_employr, method: text}
              blocking:
                - [first_name, extra_employer]
        """,
    })
    assert problems_of(tmp_path) == [
        "identity.yml:3: 'extra_passport' is no customer source's extra field (hint: declare "
        "it in a customer source: `extra_fields: {passport: <column>}`)",
        "identity.yml:7: 'extra_employr' is no customer source's extra field "
        "(hint: did you mean 'extra_employer'?)",
    ]
    write(tmp_path, {"identity.yml": """
        probabilistic:
          comparisons:
            - {field: extra_employer, method: date}
    """})
    problem, = problems_of(tmp_path)
    assert problem.startswith("identity.yml:3: probabilistic.comparisons.0: ")
    assert "extra_employer is an extra field (text)" in problem


def test_extra_fields_only_on_customer_sources(tmp_path):
    write(tmp_path, {
        "passerelle.yml": "name: t\n",
        "sources/shop.yml": """
            entity: orders
            connector: {type: csv, path: data/o.csv}
            columns: {order_id: id, ordered_at: at, amount: amt}
            extra_fields: {till: t}
        """,
    })
    problem, = problems_of(tmp_path)
    assert problem.startswith("sources/shop.yml:1:") and "customer sources" in problem
