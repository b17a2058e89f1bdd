"""Users, sign-in (lock-out, rate limit), API tokens, sessions and the audit trail they
leave, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from governance_helpers import (  # noqa: F401
    BACKENDS,
    PASSWORD,
    app_db,
    app_db_url,
    fast_hashes,
)
from passerelle.governance import audit, passwords
from passerelle.governance.db import connect
from passerelle.governance.errors import (
    AccountLocked,
    CsrfFailed,
    SessionExpired,
    SignInFailed,
    TokenRejected,
    TooManyAttempts,
    UnknownRole,
    UserExists,
    WeakPassword,
)
from passerelle.governance.sessions import (
    check_csrf,
    create_session,
    lookup_session,
    revoke_session,
)
from passerelle.governance.signin import SignInPolicy, authenticate
from passerelle.governance.tables import ApiToken, LoginAttempt, WebSession
from passerelle.governance.tokens import create_token, principal_from_token, revoke_token
from passerelle.governance.users import add_user, reset_password, set_disabled, set_role
from passerelle.runlog import utcnow

ADMIN = ("cli", "it-person")
EMAIL = "Jeanne.Martin@example.com"


def _shift(db, table, column, delta, **where) -> None:
    """Moves stored times back, as if they had happened earlier."""
    with db.session() as session:
        for row in session.scalars(select(table).filter_by(**where)):
            setattr(row, column, getattr(row, column) - delta)


def test_production_hashes_are_argon2id():
    hashed = passwords.hash_password(PASSWORD)
    assert hashed.startswith("$argon2id$") and "m=65536,t=3,p=4" in hashed
    assert passwords.verify_password(hashed, PASSWORD)
    assert not passwords.verify_password(hashed, PASSWORD + "!")


@BACKENDS
def test_password_policy(app_db):  # noqa: F811
    for weak in ("short", "jeanne.martin", "jeanne.martin@example.com", "a" * 14):
        with pytest.raises(WeakPassword):
            add_user(app_db, EMAIL, "marketer", weak, ADMIN)
    user = add_user(app_db, EMAIL, "marketer", PASSWORD, ADMIN)
    assert user.email == "jeanne.martin@example.com"  # one account whatever the case
    with pytest.raises(UserExists):
        add_user(app_db, "JEANNE.MARTIN@example.com", "marketer", PASSWORD, ADMIN)
    with pytest.raises(UnknownRole, match="not a role"):
        add_user(app_db, "other@example.com", "superuser", PASSWORD, ADMIN)


@BACKENDS
def test_sign_in_role_and_custom_role(app_db):  # noqa: F811
    add_user(app_db, EMAIL, "marketer", PASSWORD, ADMIN)
    who = authenticate(app_db, "jeanne.martin@EXAMPLE.com", PASSWORD, "10.0.0.1")
    assert (who.kind, who.role) == ("user", "marketer")
    assert who.can("segments:write") and not who.can("pii:read")
    set_role(app_db, EMAIL, "support", ADMIN)  # declared in the project (fixture)
    who = authenticate(app_db, EMAIL, PASSWORD, "10.0.0.1")
    assert who.permissions == {"pii:read", "privacy:handle"}


@BACKENDS
def test_wrong_password_unknown_and_disabled_look_alike(app_db):  # noqa: F811
    add_user(app_db, EMAIL, "analyst", PASSWORD, ADMIN)
    with pytest.raises(SignInFailed) as wrong:
        authenticate(app_db, EMAIL, "not the password", "10.0.0.1")
    with pytest.raises(SignInFailed) as unknown:
        authenticate(app_db, "nobody@example.com", PASSWORD, "10.0.0.1")
    set_disabled(app_db, EMAIL, True, ADMIN)
    with pytest.raises(SignInFailed) as disabled:
        authenticate(app_db, EMAIL, PASSWORD, "10.0.0.1")
    assert str(wrong.value) == str(unknown.value) == str(disabled.value)
    set_disabled(app_db, EMAIL, False, ADMIN)
    assert authenticate(app_db, EMAIL, PASSWORD, "10.0.0.1").role == "analyst"
    reasons = [r["detail"]["reason"] for r in audit.query(app_db, action="signin")
               if r["outcome"] == "failure"]
    assert reasons == ["disabled", "unknown_user", "failure"]


@BACKENDS
def test_lock_out_survives_a_restart_and_ends(app_db_url, fast_hashes):  # noqa: F811
    policy = SignInPolicy(max_failures=3, window=timedelta(minutes=15))
    db = connect(app_db_url)
    add_user(db, EMAIL, "marketer", PASSWORD, ADMIN)
    for ip in ("10.0.0.1", "10.0.0.2", "10.0.0.3"):  # from several addresses
        with pytest.raises(SignInFailed):
            authenticate(db, EMAIL, "guess guess guess", ip, policy)
    db.close()
    db = connect(app_db_url)  # the server restarts: the failures are in the database
    with pytest.raises(AccountLocked) as locked:
        authenticate(db, EMAIL, PASSWORD, "10.0.0.4", policy)  # even the right password
    assert locked.value.until > utcnow()
    _shift(db, LoginAttempt, "at", timedelta(minutes=16))
    assert authenticate(db, EMAIL, PASSWORD, "10.0.0.4", policy).kind == "user"
    for _ in range(3):
        with pytest.raises(SignInFailed):
            authenticate(db, EMAIL, "guess guess guess", "10.0.0.1", policy)
    reset_password(db, EMAIL, "a brand new passphrase", ADMIN)  # an administrator unlocks
    assert authenticate(db, EMAIL, "a brand new passphrase", "10.0.0.1", policy)
    db.close()


@BACKENDS
def test_rate_limit_per_address(app_db):  # noqa: F811
    policy = SignInPolicy(ip_max_failures=4)
    add_user(app_db, EMAIL, "marketer", PASSWORD, ADMIN)
    for i in range(4):  # trying many accounts from one address
        with pytest.raises(SignInFailed):
            authenticate(app_db, f"user{i}@example.com", PASSWORD, "203.0.113.9", policy)
    with pytest.raises(TooManyAttempts) as limited:
        authenticate(app_db, EMAIL, PASSWORD, "203.0.113.9", policy)
    assert 0 < limited.value.retry_after_seconds <= 15 * 60 + 1
    assert authenticate(app_db, EMAIL, PASSWORD, "198.51.100.1", policy)  # others still can


@BACKENDS
def test_tokens_scopes_expiry_revocation_and_owner(app_db):  # noqa: F811
    info, secret = create_token(app_db, ["profiles:read"], timedelta(days=90), ADMIN,
                                name="website")
    assert secret.startswith("psl_") and len(secret) > 40
    who = principal_from_token(app_db, secret)
    assert (who.kind, who.id, who.display_name) == ("token", info.id, "website")
    assert who.has_scope("profiles:read") and not who.has_scope("api:read")
    assert who.permissions == frozenset()
    with app_db.session() as session:  # only the digest is stored
        assert secret not in session.get(ApiToken, info.id).token_hash

    _, admin_secret = create_token(app_db, ["admin"], None, ADMIN)
    assert principal_from_token(app_db, admin_secret).has_scope("api:write")

    _shift(app_db, ApiToken, "expires_at", timedelta(days=91), id=info.id)
    with pytest.raises(TokenRejected, match="expired"):
        principal_from_token(app_db, secret)

    _, secret = create_token(app_db, ["api:read"], timedelta(days=1), ADMIN)
    revoked = revoke_token(app_db, principal_from_token(app_db, secret).id, ADMIN)
    assert revoked.status == "revoked"
    with pytest.raises(TokenRejected, match="revoked"):
        principal_from_token(app_db, secret)
    for bad in ("psl_" + "x" * 43, "Bearer nonsense"):
        with pytest.raises(TokenRejected):
            principal_from_token(app_db, bad)

    # a token acting for a person never does more than the person's role
    add_user(app_db, EMAIL, "marketer", PASSWORD, ADMIN)
    _, owned = create_token(app_db, ["admin"], timedelta(days=1), ADMIN, owner=EMAIL)
    assert principal_from_token(app_db, owned).permissions == {
        "segments:write", "audiences:export", "experiments:write"}
    set_disabled(app_db, EMAIL, True, ADMIN)
    with pytest.raises(TokenRejected, match="disabled"):
        principal_from_token(app_db, owned)


@BACKENDS
def test_sessions_idle_absolute_revoked_and_csrf(app_db):  # noqa: F811
    add_user(app_db, EMAIL, "marketer", PASSWORD, ADMIN)
    who = authenticate(app_db, EMAIL, PASSWORD, "10.0.0.1")
    started = create_session(app_db, who)
    found = lookup_session(app_db, started.session_id)
    assert found.principal == who and found.csrf_token == started.csrf_token
    check_csrf(found, started.csrf_token)
    for forged in (None, "", started.csrf_token[:-1] + "x"):
        with pytest.raises(CsrfFailed):
            check_csrf(found, forged)
    with app_db.session() as session:  # the cookie's value is never stored
        assert session.get(WebSession, started.session_id) is None

    _shift(app_db, WebSession, "last_seen_at", timedelta(hours=3))  # idle too long
    with pytest.raises(SessionExpired):
        lookup_session(app_db, started.session_id)

    second = create_session(app_db, who)
    _shift(app_db, WebSession, "expires_at", timedelta(hours=13))  # past its lifetime
    with pytest.raises(SessionExpired):
        lookup_session(app_db, second.session_id)

    third = create_session(app_db, who)
    revoke_session(app_db, third.session_id, ip="10.0.0.1")
    with pytest.raises(SessionExpired):
        lookup_session(app_db, third.session_id)

    fourth = create_session(app_db, who)
    reset_password(app_db, EMAIL, "another long passphrase", ADMIN)  # ends every session
    with pytest.raises(SessionExpired):
        lookup_session(app_db, fourth.session_id)


@BACKENDS
def test_audit_trail_names_ids_only_and_exports(app_db):  # noqa: F811
    user = add_user(app_db, EMAIL, "marketer", PASSWORD, ADMIN, ip="10.0.0.7")
    with pytest.raises(SignInFailed):
        authenticate(app_db, EMAIL, "wrong wrong wrong", "10.0.0.8")
    info, secret = create_token(app_db, ["api:read"], timedelta(days=1), ADMIN)
    rows = audit.query(app_db)
    assert [r["action"] for r in rows] == ["token.create", "signin", "user.add"]
    assert rows[1]["actor_id"] == str(user.id) and rows[1]["outcome"] == "failure"
    assert rows[2]["ip"] == "10.0.0.7" and rows[2]["resource"] == f"user:{user.id}"
    dumped = audit.to_json(rows) + audit.to_csv(rows)
    assert "jeanne" not in dumped.lower() and secret not in dumped and PASSWORD not in dumped
    assert json.loads(audit.to_json(rows))[0]["resource"] == f"token:{info.id}"
    assert audit.to_csv(rows).splitlines()[0] == ",".join(audit.COLUMNS)

    assert [r["action"] for r in audit.query(app_db, action="user.*")] == ["user.add"]
    assert [r["action"] for r in audit.query(app_db, action="user%*")] == []  # % is no wildcard
    assert len(audit.query(app_db, actor_id="it-person", actor_kind="cli")) == 2
    assert audit.query(app_db, since=utcnow() + timedelta(minutes=1)) == []
    assert len(audit.query(app_db, limit=1)) == 1
