"""destinations/*.yml: parsing, ${ENV} secrets, and errors with file, line and hint."""

from __future__ import annotations

from pathlib import Path

import pytest

from passerelle.activation import (
    CsvDestination,
    DestinationError,
    MySQLDestination,
    PostgresDestination,
    WebhookDestination,
    activate,
    load_destinations,
    parse_destination,
)
from passerelle.errors import ProjectError


def _write(root: Path, name: str, text: str) -> None:
    (root / "destinations").mkdir(exist_ok=True)
    (root / "destinations" / name).write_text(text, encoding="utf-8")


def test_load_every_kind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK_SECRET", "a-very-long-random-secret")
    monkeypatch.setenv("CRM_PASSWORD", "pw")
    _write(tmp_path, "brevo_vip.yml", "type: csv\nformat: brevo\npath: exports/{audience}.csv\n"
                                      "attributes:\n  VILLE: city\n")
    _write(tmp_path, "crm_hook.yml", "type: webhook\nurl: https://crm.example/hook\n"
                                     "secret: ${HOOK_SECRET}\nbatch_size: 100\n")
    _write(tmp_path, "crm_pg.yaml", "type: postgres\nconnection:\n  database: crm\n"
                                    "  password: ${CRM_PASSWORD}\n  schema: marketing\n"
                                    "table: vip\nmode: upsert\n")
    _write(tmp_path, "shop.yml", "type: mysql\nconnection: {database: shop}\ntable: vip\n")
    found = load_destinations(tmp_path)
    assert sorted(found) == ["brevo_vip", "crm_hook", "crm_pg", "shop"]
    assert isinstance(found["brevo_vip"], CsvDestination)
    assert found["brevo_vip"].attributes == {"VILLE": "city"}
    hook = found["crm_hook"]
    assert isinstance(hook, WebhookDestination) and hook.batch_size == 100
    assert hook.secret.get_secret_value() == "a-very-long-random-secret"
    assert "a-very-long" not in repr(hook)  # secrets never show
    pg = found["crm_pg"]
    assert isinstance(pg, PostgresDestination) and pg.connection.schema_ == "marketing"
    assert (pg.mode, pg.connection.port) == ("upsert", 5432)
    shop = found["shop"]
    assert isinstance(shop, MySQLDestination) and shop.connection.port == 3306


def test_errors_name_file_line_and_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MISSING_SECRET", raising=False)
    _write(tmp_path, "a.yml", "type: csv\nformat: brevo\npth: x.csv\n")
    _write(tmp_path, "b.yml", "type: webhook\nurl: https://x.example\nsecret: ${MISSING_SECRET}\n")
    _write(tmp_path, "c.yml", "type: csv\nformat: sendgrid\npath: x.csv\n")
    _write(tmp_path, "d.yml", "type: ftp\n")
    with pytest.raises(ProjectError) as info:
        load_destinations(tmp_path)
    text = str(info.value)
    assert "destinations/a.yml:3: unknown key 'pth' (hint: did you mean 'path'?)" in text
    assert "destinations/a.yml:1: path: required key is missing" in text
    assert "destinations/b.yml: environment variable ${MISSING_SECRET} is not set" in text
    assert "destinations/c.yml:2: format: Input should be 'brevo', 'mailchimp' " \
           "or 'generic'" in text
    assert "destinations/d.yml:1: Input tag 'ftp'" in text
    assert "'csv', 'google_customer_match', 'meta_custom_audience', 'webhook', 'postgres', " \
           "'mysql'" in text


@pytest.mark.parametrize(("data", "message"), [
    ({"type": "webhook", "url": "ftp://x", "secret": "0123456789abcdef"}, "http:// or https://"),
    ({"type": "webhook", "url": "https://x", "secret": "short"}, "at least 16 characters"),
    ({"type": "csv", "path": "x.csv", "tags": ["a"]}, "tags only apply to format: mailchimp"),
    ({"type": "csv", "path": "x.csv", "attributes": {"CITY": "City Name"}}, "profiles column"),
    ({"type": "postgres", "connection": {"database": "d"}, "table": "bad name"},
     "must be a table name"),
    ({"type": "mysql", "connection": {"database": "d"}, "table": "t", "mode": "merge"},
     "'replace' or 'upsert'"),
])
def test_parse_destination_refuses(data: dict, message: str) -> None:
    with pytest.raises(DestinationError, match="The destination is invalid") as info:
        parse_destination(data)
    assert message in info.value.reason


def test_activate_rejects_unknown_objects(duckdb_engine) -> None:
    with pytest.raises(DestinationError, match="Unknown destination"):
        activate(duckdb_engine, "vip", {"type": "csv"}, name="x")


def test_examples_in_the_docs_are_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every ```yaml destination in docs/activation.md parses (the docs cannot drift)."""
    import re

    import yaml

    from passerelle.project.yamlio import substitute_env

    for name in ("CRM_WEBHOOK_SECRET", "CRM_DB_PASSWORD", "SHOP_DB_PASSWORD"):
        monkeypatch.setenv(name, "a-long-enough-secret-value")
    docs = Path(__file__).resolve().parents[1] / "docs" / "activation.md"
    blocks = re.findall(r"```yaml\n(.*?)```", docs.read_text("utf-8"), flags=re.S)
    kinds = []
    for block in blocks:
        missing: list[str] = []
        data = substitute_env(yaml.safe_load(block), missing)
        assert not missing
        kinds.append(type(parse_destination(data)).__name__)
    # every block parses, and every kind of destination has its example
    assert len(kinds) == len(blocks) and set(kinds) == {
        "CsvDestination", "AdListDestination", "WebhookDestination", "PostgresDestination",
        "MySQLDestination"}
