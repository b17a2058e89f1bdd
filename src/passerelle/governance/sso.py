"""Single sign-on: from a provider's checked ID token to a Passerelle user and role.

The person is matched by e-mail (created on their first sign-in, without a password);
their role is taken from the configured claim on every sign-in, so a change at the
provider applies the next time they sign in. A disabled user stays refused. Every outcome
is written to the audit log (``signin`` with ``method: sso``), by user id only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select

from passerelle.governance import audit
from passerelle.governance.db import AppDB
from passerelle.governance.errors import GovernanceError
from passerelle.governance.oidc import OidcClient, PendingSignIn, SsoError
from passerelle.governance.principal import Principal
from passerelle.governance.signin import user_principal
from passerelle.governance.tables import User
from passerelle.governance.users import normalise_email
from passerelle.project.sso_models import SsoConfig
from passerelle.runlog import utcnow

NO_PASSWORD = "!sso"  # not an Argon2 hash: no password matches it
CREATED_BY = "sso"


def sign_in(db: AppDB, client: OidcClient, pending: PendingSignIn | None,
            params: Mapping[str, str], ip: str | None) -> Principal:
    """The whole callback: the provider's answer checked, the user matched or created, the
    role applied. Raises :class:`SsoError` (audited) when anything is refused."""
    try:
        if pending is None:
            raise SsoError("bad_state", "This sign-in was not started in this browser, or "
                           "took longer than 10 minutes.", "Start the sign-in again.", 400)
        claims = client.finish(pending, params)
        return account(db, client.config, claims, ip)
    except SsoError as exc:
        if not exc.audited:
            audit_refusal(db, ip, exc.code)
        raise


def role_of(config: SsoConfig, claims: Mapping[str, Any]) -> str:
    """The Passerelle role the claims map to (see ``role_map`` and ``default_role``)."""
    values = _claim_values(claims, config.role_claim)
    if not values:
        if config.default_role is not None:
            return config.default_role
        raise SsoError("no_role", f"Your sign-in carries no “{config.role_claim}”, so "
                       "Passerelle cannot tell your role.", "Ask IT to give you a role "
                       "for Passerelle at the sign-in provider.", 403)
    for value, role in config.role_map.items():
        if value in values:
            return role
    raise SsoError("unknown_role", "Your role at the sign-in provider is not one Passerelle "
                   "knows.", "Ask IT to map it in passerelle.yml (sso: role_map), or to "
                   "give you a mapped role.", 403)


def _claim_values(claims: Mapping[str, Any], name: str) -> list[str]:
    """The claim's string values: the claim named so (namespaced claims contain dots), else
    the dotted path into nested claims (realm_access.roles)."""
    value: Any = claims.get(name)
    if value is None and "." in name:
        value = claims
        for part in name.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str) and v]
    return []


def account(db: AppDB, config: SsoConfig, claims: Mapping[str, Any],
            ip: str | None) -> Principal:
    """The user behind checked claims: matched by e-mail or created, their role set."""
    if claims.get("email_verified") is False:
        raise SsoError("email_unverified", "The sign-in provider has not verified your "
                       "e-mail address.", "Verify it at the provider, then sign in again.",
                       403)
    try:
        email = normalise_email(str(claims.get("email") or ""))
    except GovernanceError:
        raise SsoError("no_email", "The sign-in provider gave no e-mail address.",
                       "Tell IT: Passerelle needs the email scope and claim.", 403) from None
    domain = email.rpartition("@")[2]
    if config.allowed_domains and domain not in config.allowed_domains:
        raise SsoError("domain_refused", "Your e-mail domain may not sign in to this "
                       "Passerelle.", "Sign in with your work account.", 403)
    role = role_of(config, claims)
    with db.session() as session:
        user = session.scalar(select(User).where(User.email == email))
        if user is not None and user.disabled_at is not None:
            _record(session, ("user", str(user.id)), ip, "disabled")  # committed, then refused
            principal = None
        else:
            principal = _matched(db, session, user, email, role, ip)
    if principal is None:
        raise _audited(SsoError("disabled", "Your Passerelle account is disabled.",
                                "Ask an administrator to enable it.", 403))
    return principal


def _matched(db: AppDB, session: Any, user: User | None, email: str, role: str,
             ip: str | None) -> Principal:
    if user is None:
        now = utcnow()
        user = User(email=email, role=role, password_hash=NO_PASSWORD, created_at=now,
                    created_by=CREATED_BY, password_changed_at=now)
        session.add(user)
        session.flush()
        audit.record(session, ("user", str(user.id)), "user.add", resource=f"user:{user.id}",
                     ip=ip, detail={"role": role, "via": "sso"})
    elif user.role != role:
        audit.record(session, ("user", str(user.id)), "user.role", resource=f"user:{user.id}",
                     ip=ip, detail={"from": user.role, "to": role, "via": "sso"})
        user.role = role
    _record(session, ("user", str(user.id)), ip, None)
    return user_principal(db, user)


def _record(session: Any, actor: tuple[str, str], ip: str | None, reason: str | None) -> None:
    audit.record(session, actor, "signin", ip=ip,
                 outcome="success" if reason is None else "failure",
                 detail={"method": "sso"} if reason is None else
                 {"method": "sso", "reason": reason})


def audit_refusal(db: AppDB, ip: str | None, code: str) -> None:
    """A refusal before anyone is known (the provider down, a wrong state or token)."""
    with db.session() as session:
        _record(session, ("anonymous", "-"), ip, code)


def _audited(exc: SsoError) -> SsoError:
    exc.audited = True
    return exc
