"""Project files: every problem reported at once, with file, line and hint."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from passerelle.definition import load_project
from passerelle.errors import ProjectError
from passerelle.project.schema import json_schema
from passerelle.project.starter import init_project


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return root


GOOD_SOURCE = """
    entity: customers
    connector: {type: csv, path: data/c.csv}
    columns:
      customer_id: id
      email: mail
"""


def problems_of(root: Path) -> list[str]:
    with pytest.raises(ProjectError) as info:
        load_project(root)
    return [str(p) for p in info.value.problems]


def test_starter_project_loads(tmp_path):
    init_project(tmp_path / "p")
    project = load_project(tmp_path / "p")
    assert list(project.sources) == ["contacts"]
    assert project.sources["contacts"].mappings()["birth_date"].formats == ["%d/%m/%Y"]
    assert len(project.checks) == 2


def test_not_a_project(tmp_path):
    [problem] = problems_of(tmp_path)
    assert "no passerelle.yml here" in problem and "passerelle init" in problem


def test_every_problem_reported_with_line_and_hint(tmp_path):
    write(tmp_path, {
        "passerelle.yml": """
            name: t
            engine:
              type: duckdb
              pth: x.duckdb
            timezone: Europe/Pariss
        """,
        "sources/crm.yml": """
            entity: customers
            connector:
              type: csv
              path: data/crm.csv
            columns:
              customer_id: id
              emial: email
        """,
        "sources/orders.yml": """
            entity: orders
            connector: {type: csv, path: o.csv}
            customer_source: crmm
            columns:
              order_id: id
              amount: total
        """,
        "checks/q.yml": """
            checks:
              - type: not_null
                source: crm
                column: emal
              - type: unique
                source: nope
                column: x
        """,
        "checks/broken.yml": "checks:\n  - type: not_null\n   source: x\n",
    })
    problems = problems_of(tmp_path)
    assert problems == [
        "checks/broken.yml:3: YAML syntax error: while parsing a block collection did not "
        "find expected '-' indicator "
        "(hint: check indentation and that ':' is followed by a space)",
        "passerelle.yml:4: unknown key 'engine.pth' (hint: did you mean 'path'?)",
        "passerelle.yml:5: timezone: unknown time zone 'Europe/Pariss' (e.g. Europe/Paris)",
        "sources/crm.yml:7: 'emial' is not a field of the customers entity "
        "(hint: did you mean 'email'?)",
        "sources/orders.yml:4: required field 'ordered_at' of orders is not mapped "
        "(hint: add `ordered_at: <source column>` under columns)",
        "sources/orders.yml:3: customer_source 'crmm' is not a source (hint: did you mean 'crm'?)",
        "checks/q.yml:4: 'emal' is not a column of stg_crm (hint: did you mean 'email'?)",
        "checks/q.yml:6: check on unknown source 'nope'",
    ]


def test_unknown_connector_key_names_the_line_and_suggests(tmp_path):
    write(tmp_path, {
        "passerelle.yml": "name: t\n",
        "sources/crm.yml": """
            entity: customers
            connector:
              type: csv
              path: a.csv
              delimter: ";"
            columns: {customer_id: id}
        """,
    })
    assert problems_of(tmp_path) == [
        "sources/crm.yml:5: unknown key 'connector.delimter' (hint: did you mean 'delimiter'?)"
    ]


def test_wrong_types_and_missing_keys(tmp_path):
    write(tmp_path, {
        "passerelle.yml": "name: t\ncurrency: euro\n",
        "sources/db.yml": """
            entity: orders
            connector: {type: postgres, database: shop, table: "orders; drop table x"}
            columns:
              order_id: {column: id, value: 3}
              ordered_at: d
              amount: a
        """,
    })
    problems = problems_of(tmp_path)
    assert problems[0].startswith("passerelle.yml:2: currency: String should match pattern")
    assert "sources/db.yml:2: connector.table: must be a table name" in problems[1]
    assert "sources/db.yml:4: columns.order_id: give exactly one of 'column' or 'value'" in (
        problems[2])
    assert len(problems) == 3


def test_env_variables_substituted_and_missing_reported(tmp_path, monkeypatch):
    write(tmp_path, {
        "passerelle.yml": """
            name: t
            engine: {type: postgres, password: "${PG_PASS}", database: "${PG_DB:-warehouse}"}
        """,
    })
    monkeypatch.delenv("PG_PASS", raising=False)
    assert problems_of(tmp_path) == [
        "passerelle.yml: environment variable ${PG_PASS} is not set "
        "(hint: export PG_PASS=... or use ${PG_PASS:-default})"
    ]
    monkeypatch.setenv("PG_PASS", "s3cret")
    config = load_project(tmp_path).config
    assert config.engine.password.get_secret_value() == "s3cret"
    assert config.engine.database == "warehouse"
    assert "s3cret" not in repr(config)


def test_duplicate_source_names(tmp_path):
    write(tmp_path, {
        "passerelle.yml": "name: t\n",
        "sources/a.yml": GOOD_SOURCE,
        "sources/b.yml": "name: a\n" + textwrap.dedent(GOOD_SOURCE),
    })
    assert problems_of(tmp_path) == [
        "sources/b.yml:1: source name 'a' is used twice (hint: source names must be unique)"
    ]


def test_json_schema_is_generated_from_models():
    schema = json_schema("source")
    assert schema["additionalProperties"] is False
    connector_kinds = {ref["$ref"].rsplit("/", 1)[-1]
                       for ref in schema["properties"]["connector"]["oneOf"]}
    assert connector_kinds == {"CsvConnector", "ParquetConnector", "JsonlConnector",
                               "PostgresConnector", "MySQLConnector", "CollectorConnector"}
    assert "customers" in json.dumps(schema["properties"]["entity"])


def test_duplicate_check_names(tmp_path):
    write(tmp_path, {
        "passerelle.yml": "name: t\n",
        "sources/a.yml": GOOD_SOURCE,
        "checks/one.yml": "checks:\n  - {type: not_null, source: a, column: email}\n",
        "checks/two.yml": "checks:\n  - type: not_null\n    source: a\n    column: email\n",
    })
    assert problems_of(tmp_path) == [
        "checks/two.yml:2: check name 'not_null_a_email' is used twice "
        "(hint: first used in checks/one.yml:2; give one of them a `name:`)"
    ]


def test_identity_yml_cross_checked(tmp_path):
    write(tmp_path, {
        "passerelle.yml": "name: t\n",
        "sources/crm.yml": GOOD_SOURCE,
        "identity.yml": """
            keys:
              - field: email
                sources: [crm, shop]
              - field: emial
            survivorship:
              source_priority: [crm]
              fields:
                first_nam: most_recent
                consent_email: source_priority
            pins:
              - kind: merge
                records: ["crm:1", "nowhere"]
                reason: same person
        """,
    })
    problems = problems_of(tmp_path)
    assert problems[0].startswith("identity.yml:4: keys.1.field: Input should be")
    assert len(problems) == 1  # a file that does not parse is not cross-checked
    (tmp_path / "identity.yml").write_text((tmp_path / "identity.yml").read_text()
                                           .replace("  - field: emial\n", ""))
    assert problems_of(tmp_path) == [
        "identity.yml:3: 'shop' is not a customers source (hint: customers sources: crm)",
        "identity.yml:7: 'first_nam' is not a field of the golden record "
        "(hint: did you mean 'first_name'?)",
        "identity.yml:8: 'consent_email' has no survivorship rule: consent always follows the "
        "latest choice (hint: remove this line)",
        "identity.yml:11: pin record 'nowhere' is not source:record_id "
        "(hint: e.g. crm_contacts:CRM-000123)",
    ]
