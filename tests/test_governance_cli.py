"""`passerelle users / tokens / audit / db`: passwords never as arguments, tokens shown once,
every change audited as the operating-system account (cli)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from governance_helpers import BACKENDS, PASSWORD, app_db_url, fast_hashes  # noqa: F401
from passerelle.cli import app
from passerelle.definition import load_project
from passerelle.governance.db import open_app_db
from passerelle.governance.errors import WeakPassword
from passerelle.governance.tokens import principal_from_token
from passerelle.identity.service import default_author


def _project(root: Path, url: str) -> Path:
    (root / "passerelle.yml").write_text(f"name: t\napp_database: {url}\n")
    return root


def run(project: Path, *args: str, stdin: str | None = None):
    result = CliRunner().invoke(app, [*args, "--project", str(project)], input=stdin)
    return result


def test_users_add_reads_the_password_from_stdin(tmp_path):
    """A real process, production hashing: the first administrator of a new project."""
    (tmp_path / "passerelle.yml").write_text("name: t\n")
    done = subprocess.run(
        [sys.executable, "-c", "from passerelle.cli import main; main()", "users", "add",
         "admin@example.com", "--role", "it_admin", "--password-stdin", "--project",
         str(tmp_path)], input=PASSWORD + "\n", capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "admin@example.com added with role it_admin" in done.stdout
    assert PASSWORD not in done.stdout + done.stderr
    with open_app_db(load_project(tmp_path)) as db:
        from passerelle.governance.signin import authenticate

        assert authenticate(db, "admin@example.com", PASSWORD, None).role == "it_admin"
    weak = run(tmp_path, "users", "add", "b@example.com", "--role", "marketer",
               "--password-stdin", stdin="short\n")
    assert isinstance(weak.exception, WeakPassword) and "at least 12" in str(weak.exception)


@BACKENDS
def test_users_tokens_and_audit_from_the_command_line(tmp_path, app_db_url,  # noqa: F811
                                                      fast_hashes):  # noqa: F811
    project = _project(tmp_path, app_db_url)
    added = run(project, "users", "add", "jm@example.com", "--role", "marketer",
                stdin=f"{PASSWORD}\n{PASSWORD}\n")  # typed twice at the prompt
    assert added.exit_code == 0, added.output
    assert PASSWORD not in added.output
    mismatch = run(project, "users", "add", "x@example.com", "--role", "analyst",
                   stdin=f"{PASSWORD}\nsomething else\n{PASSWORD}\n{PASSWORD}\n")
    assert "do not match" in mismatch.output and mismatch.exit_code == 0
    assert run(project, "users", "role", "jm@example.com", "analyst").exit_code == 0
    assert run(project, "users", "disable", "jm@example.com").exit_code == 0
    assert run(project, "users", "enable", "jm@example.com").exit_code == 0
    assert run(project, "users", "reset-password", "jm@example.com", "--password-stdin",
               stdin="a completely new passphrase\n").exit_code == 0
    users = json.loads(run(project, "users", "list", "--json").stdout)
    assert [(u["email"], u["role"], u["disabled"]) for u in users] == [
        ("jm@example.com", "analyst", False), ("x@example.com", "analyst", False)]

    created = run(project, "tokens", "create", "--scope", "profiles:read", "--expires", "90d",
                  "--name", "website")
    assert created.exit_code == 0, created.output
    secret = created.stdout.strip().splitlines()[-1]
    assert secret.startswith("psl_")
    with open_app_db(load_project(project)) as db:
        token_id = principal_from_token(db, secret).id
    listed = run(project, "tokens", "list", "--json").stdout
    assert secret not in listed and json.loads(listed)[0]["status"] == "active"
    assert run(project, "tokens", "revoke", token_id).exit_code == 0
    assert json.loads(run(project, "tokens", "list", "--json").stdout)[0]["status"] == "revoked"

    entries = json.loads(run(project, "audit", "--json").stdout)
    assert [e["action"] for e in entries] == [
        "token.revoke", "token.create", "user.password_reset", "user.enable", "user.disable",
        "user.role", "user.add", "user.add"]
    assert {(e["actor_kind"], e["actor_id"]) for e in entries} == {("cli", default_author())}
    mine = json.loads(run(project, "audit", "--user", "jm@example.com", "--json").stdout)
    assert mine == []  # jm did nothing; what was done to them is under resource
    csv = run(project, "audit", "--action", "token.*", "--since", "1d", "--csv").stdout
    assert csv.splitlines()[0].startswith("id,at,actor_kind") and len(csv.splitlines()) == 3
    assert "already at" in run(project, "db", "upgrade").stdout


def test_db_upgrade_creates_the_tables_and_is_audited(tmp_path):
    (tmp_path / "passerelle.yml").write_text("name: t\n")
    first = run(tmp_path, "db", "upgrade")
    assert first.exit_code == 0 and "upgraded from empty to" in first.stdout
    [entry] = json.loads(run(tmp_path, "audit", "--json").stdout)
    assert entry["action"] == "db.upgrade" and entry["actor_kind"] == "cli"


def test_unknown_scope_and_bad_duration_are_user_errors(tmp_path):
    (tmp_path / "passerelle.yml").write_text("name: t\n")
    bad = run(tmp_path, "tokens", "create", "--scope", "profile:read")
    assert "Unknown scope(s): profile:read" in str(bad.exception)
    bad = run(tmp_path, "tokens", "create", "--scope", "api:read", "--expires", "soon")
    assert "not a duration" in str(bad.exception)
