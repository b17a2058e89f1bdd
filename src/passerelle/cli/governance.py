"""`passerelle users`, `tokens`, `audit` and `db`: accounts, API tokens, the audit log and the
application database. These commands never open the warehouse, so they work while a server
or a pipeline run holds it. Every change is audited with the operating-system account of
whoever typed it (actor kind ``cli``)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from passerelle.cli.common import ProjectOpt, app, console, err_console, print_json

users_app = typer.Typer(no_args_is_help=True,
                        help="People who sign in to the server, and their roles.")
tokens_app = typer.Typer(no_args_is_help=True, help="API tokens for applications and scripts.")
db_app = typer.Typer(no_args_is_help=True, help="The application database (users, audit...).")
app.add_typer(users_app, name="users")
app.add_typer(tokens_app, name="tokens")
app.add_typer(db_app, name="db")

EmailArg = Annotated[str, typer.Argument(help="The e-mail the person signs in with.")]
PasswordStdinOpt = Annotated[bool, typer.Option(
    "--password-stdin", help="Read the password from the first line of standard input.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]


@contextmanager
def _app_db(project: Path) -> Iterator:
    from passerelle.definition import load_project
    from passerelle.governance.db import open_app_db

    db = open_app_db(load_project(project))
    try:
        yield db
    finally:
        db.close()


def _password(from_stdin: bool) -> str:
    """Never an argument: it would stay in the shell history and the process list."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return typer.prompt("Password", hide_input=True, confirmation_prompt=True)


# ------------------------------------------------------------------------------ users
@users_app.command("add")
def users_add(email: EmailArg,
              role: Annotated[str, typer.Option(help="marketer, analyst, it_admin or a role "
                                                     "of passerelle.yml.")],
              password_stdin: PasswordStdinOpt = False, project: ProjectOpt = Path(".")) -> None:
    """Create an account (the first one: `--role it_admin`)."""
    from passerelle.governance.audit import cli_actor
    from passerelle.governance.users import add_user

    with _app_db(project) as db:
        user = add_user(db, email, role, _password(password_stdin), cli_actor())
    console.print(f"User {user.id} {user.email} added with role {user.role}.", highlight=False)


@users_app.command("list")
def users_list(as_json: JsonOpt = False, project: ProjectOpt = Path(".")) -> None:
    """Every account, disabled ones included."""
    from dataclasses import asdict

    from rich.table import Table

    from passerelle.governance.users import list_users

    with _app_db(project) as db:
        users = list_users(db)
    if as_json:
        print_json([asdict(u) for u in users])
        return
    table = Table(header_style="bold")
    for col in ("id", "e-mail", "role", "status", "created", "by"):
        table.add_column(col)
    for u in users:
        table.add_row(str(u.id), u.email, u.role, "disabled" if u.disabled else "active",
                      f"{u.created_at:%Y-%m-%d}", u.created_by)
    console.print(table if users else "No user yet: add one with `passerelle users add`.")


@users_app.command("disable")
def users_disable(user: EmailArg, project: ProjectOpt = Path(".")) -> None:
    """Stop an account signing in; its sessions end and the tokens it owns stop working."""
    _set_disabled(user, True, project)


@users_app.command("enable")
def users_enable(user: EmailArg, project: ProjectOpt = Path(".")) -> None:
    """Let a disabled account sign in again (also lifts a lock-out)."""
    _set_disabled(user, False, project)


def _set_disabled(user: str, disabled: bool, project: Path) -> None:
    from passerelle.governance.audit import cli_actor
    from passerelle.governance.users import set_disabled

    with _app_db(project) as db:
        info = set_disabled(db, user, disabled, cli_actor())
    console.print(f"User {info.id} {info.email} {'disabled' if disabled else 'enabled'}.",
                  highlight=False)


@users_app.command("role")
def users_role(user: EmailArg, role: Annotated[str, typer.Argument(help="The new role.")],
               project: ProjectOpt = Path(".")) -> None:
    """Change an account's role (takes effect on its next request)."""
    from passerelle.governance.audit import cli_actor
    from passerelle.governance.users import set_role

    with _app_db(project) as db:
        info = set_role(db, user, role, cli_actor())
    console.print(f"User {info.id} {info.email} now has role {info.role}.", highlight=False)


@users_app.command("reset-password")
def users_reset_password(user: EmailArg, password_stdin: PasswordStdinOpt = False,
                         project: ProjectOpt = Path(".")) -> None:
    """Set a new password; the account's sessions end and a lock-out is lifted."""
    from passerelle.governance.audit import cli_actor
    from passerelle.governance.users import reset_password

    with _app_db(project) as db:
        info = reset_password(db, user, _password(password_stdin), cli_actor())
    console.print(f"Password of user {info.id} {info.email} reset.", highlight=False)


# ----------------------------------------------------------------------------- tokens
@tokens_app.command("create")
def tokens_create(
    scope: Annotated[list[str], typer.Option(
        help="What the token may do (repeat): collect:write, decide, profiles:read, "
             "api:read, api:write, pii:read, admin.")],
    expires: Annotated[str, typer.Option(help="Lifetime (30d, 12h, 4w) or 'never'.")] = "90d",
    name: Annotated[str | None, typer.Option(help="What it is for (e.g. website).")] = None,
    owner: Annotated[str | None, typer.Option(
        "--user", help="Make the token act for this user (never more than their role).")]
    = None,
    project: ProjectOpt = Path("."),
) -> None:
    """Create a token and print it once: it cannot be shown again."""
    from passerelle.governance.audit import cli_actor
    from passerelle.governance.timespec import parse_duration
    from passerelle.governance.tokens import create_token

    lifetime = None if expires == "never" else parse_duration(expires)
    with _app_db(project) as db:
        info, secret = create_token(db, scope, lifetime, cli_actor(), name=name, owner=owner)
    until = f"{info.expires_at:%Y-%m-%d %H:%M} UTC" if info.expires_at else "never"
    err_console.print(f"Token {info.id} ({' '.join(info.scopes)}), expires {until}. "
                      "Copy it now: it is shown only once.", highlight=False)
    sys.stdout.write(secret + "\n")


@tokens_app.command("list")
def tokens_list(as_json: JsonOpt = False, project: ProjectOpt = Path(".")) -> None:
    """Every token (never its secret), revoked and expired ones included."""
    from dataclasses import asdict

    from rich.table import Table

    from passerelle.governance.tokens import list_tokens

    with _app_db(project) as db:
        tokens = list_tokens(db)
    if as_json:
        print_json([{**asdict(t), "status": t.status} for t in tokens])
        return
    table = Table(header_style="bold")
    table.add_column("id", no_wrap=True)
    for col in ("name", "scopes", "owner", "status", "expires", "last used"):
        table.add_column(col)
    for t in tokens:
        table.add_row(t.id, t.name, " ".join(t.scopes), str(t.owner_id or "-"), t.status,
                      f"{t.expires_at:%Y-%m-%d}" if t.expires_at else "never",
                      f"{t.last_used_at:%Y-%m-%d %H:%M}" if t.last_used_at else "-")
    console.print(table if tokens else "No token yet: create one with `passerelle tokens "
                                       "create`.")


@tokens_app.command("revoke")
def tokens_revoke(token_id: Annotated[str, typer.Argument(help="The token's id "
                                                                "(`tokens list`).")],
                  project: ProjectOpt = Path(".")) -> None:
    """Stop a token working, at once."""
    from passerelle.governance.audit import cli_actor
    from passerelle.governance.tokens import revoke_token

    with _app_db(project) as db:
        info = revoke_token(db, token_id, cli_actor())
    console.print(f"Token {info.id} revoked.")


# ------------------------------------------------------------------------------ audit
@app.command("audit")
def audit_log(
    user: Annotated[str | None, typer.Option(
        help="Who: an e-mail, a user id, a token id or an operating-system account.")] = None,
    action: Annotated[str | None, typer.Option(
        help="An action (signin, token.create) or a prefix ending in * (user.*).")] = None,
    since: Annotated[str | None, typer.Option(help="7d, 24h or a date (UTC).")] = None,
    limit: Annotated[int, typer.Option(min=1, help="Entries at most, newest first.")] = 100,
    as_json: JsonOpt = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="Print CSV.")] = False,
    project: ProjectOpt = Path("."),
) -> None:
    """The audit log: who did what, when, from where, with what outcome."""
    from rich.table import Table

    from passerelle.governance import audit
    from passerelle.governance.timespec import parse_since
    from passerelle.governance.users import find

    with _app_db(project) as db:
        actor_kind, actor_id = None, user
        if user is not None and "@" in user:
            with db.session() as session:
                actor_kind, actor_id = "user", str(find(session, user).id)
        rows = audit.query(db, actor_id=actor_id, actor_kind=actor_kind, action=action,
                           since=parse_since(since) if since else None, limit=limit)
    if as_json or as_csv:
        sys.stdout.write(audit.to_json(rows) if as_json else audit.to_csv(rows))
        return
    table = Table(header_style="bold")
    for col in ("at (UTC)", "who", "action", "resource", "from", "outcome"):
        table.add_column(col)
    for r in rows:
        table.add_row(f"{r['at']:%Y-%m-%d %H:%M:%S}", f"{r['actor_kind']}:{r['actor_id']}",
                      r["action"], r["resource"] or "", r["ip"] or "", r["outcome"])
    console.print(table if rows else "No entry matches.")


# --------------------------------------------------------------------------------- db
@db_app.command("upgrade")
def db_upgrade(project: ProjectOpt = Path(".")) -> None:
    """Bring the application database's tables up to this version of Passerelle (the
    server and every command also do it when they open it)."""
    from passerelle.definition import load_project
    from passerelle.governance import audit
    from passerelle.governance.db import connect, database_url, upgrade
    from passerelle.governance.permissions import Roles

    definition = load_project(project)
    db = connect(database_url(definition), Roles(definition.config.roles), migrate=False)
    try:
        before, after = upgrade(db.engine)
        if before != after:
            with db.session() as session:
                audit.record(session, audit.cli_actor(), "db.upgrade",
                             detail={"from": before, "to": after})
        where = db.engine.url.render_as_string(hide_password=True)
    finally:
        db.close()
    console.print(f"Application database {where}: "
                  + (f"upgraded from {before or 'empty'} to {after}." if before != after
                     else f"already at {after}."), highlight=False)
