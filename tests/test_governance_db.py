"""The application database: migrations from empty on SQLite and PostgreSQL, models and
migrations agree, the audit log refuses changes, the project's settings."""

from __future__ import annotations

import textwrap

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.exc import DBAPIError

from governance_helpers import BACKENDS, app_db_url  # noqa: F401
from passerelle.definition import load_project
from passerelle.errors import EngineError, ProjectError
from passerelle.governance import audit
from passerelle.governance.db import (
    connect,
    current_revision,
    head_revision,
    make_engine,
    open_app_db,
    upgrade,
)
from passerelle.governance.tables import Base
from passerelle.project.starter import init_project

TABLES = {"users", "api_tokens", "sessions", "audit_log", "login_attempts"}


@BACKENDS
def test_migrations_from_empty_match_the_models(app_db_url):  # noqa: F811
    engine = make_engine(app_db_url)
    assert current_revision(engine) is None
    assert upgrade(engine) == (None, head_revision())
    assert upgrade(engine) == (head_revision(), head_revision())  # a second run does nothing
    assert set(inspect(engine).get_table_names()) >= TABLES
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == [], f"models and migrations differ: {diff}"
    engine.dispose()


@BACKENDS
def test_audit_log_refuses_update_and_delete(app_db_url):  # noqa: F811
    db = connect(app_db_url)
    with db.session() as session:
        audit.record(session, ("cli", "alice"), "user.add", resource="user:1")
    statements = ["UPDATE audit_log SET action = 'forged'", "DELETE FROM audit_log"]
    if db.engine.dialect.name == "postgresql":
        statements.append("TRUNCATE audit_log")
    for statement in statements:
        with pytest.raises(DBAPIError, match="append-only"), db.engine.begin() as conn:
            conn.execute(text(statement))
    [entry] = audit.query(db)
    assert (entry["action"], entry["actor_id"]) == ("user.add", "alice")
    db.close()


def test_default_database_is_a_private_file_in_the_project(tmp_path):
    init_project(tmp_path / "p")
    assert ".passerelle/" in (tmp_path / "p" / ".gitignore").read_text()
    with open_app_db(load_project(tmp_path / "p")) as db:
        assert current_revision(db.engine) == head_revision()
    folder = tmp_path / "p" / ".passerelle"
    assert (folder / "app.db").is_file()
    assert folder.stat().st_mode & 0o077 == 0  # password hashes: owner only


@BACKENDS
def test_app_database_url_from_the_project_file(tmp_path, app_db_url):  # noqa: F811
    (tmp_path / "passerelle.yml").write_text(f"name: t\napp_database: {app_db_url}\n")
    with open_app_db(load_project(tmp_path)) as db:
        assert db.engine.url.render_as_string(hide_password=False).endswith(
            app_db_url.partition("://")[2])
        assert current_revision(db.engine) == head_revision()
    assert not (tmp_path / ".passerelle").exists()


def test_unreachable_database_is_a_clear_error():
    with pytest.raises(EngineError, match="application database") as info:
        connect("postgresql://postgres@127.0.0.1:1/postgres")
    assert "app_database" in info.value.instruction


def test_custom_roles_are_validated_with_file_and_line(tmp_path):
    (tmp_path / "passerelle.yml").write_text(textwrap.dedent("""\
        name: t
        roles:
          support:
            - pii:read
            - privacy:handel
          marketer: [pii:read]
        """))
    with pytest.raises(ProjectError) as info:
        load_project(tmp_path)
    problems = [str(p) for p in info.value.problems]
    assert ("passerelle.yml:5: roles.support.1: unknown permission 'privacy:handel' "
            "(did you mean 'privacy:handle'?)") in problems
    assert any(p.startswith("passerelle.yml:6:") and "built-in role" in p for p in problems)


def test_custom_roles_grant_their_permissions(tmp_path):
    (tmp_path / "passerelle.yml").write_text("name: t\nroles:\n  support: [pii:read]\n")
    with open_app_db(load_project(tmp_path)) as db:
        assert db.roles.permissions("support") == {"pii:read"}
        assert db.roles.permissions("it_admin") >= {"admin:users", "audit:read"}
        assert db.roles.permissions("gone") == frozenset()
