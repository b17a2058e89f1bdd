"""What a person or a token may do: permissions, the built-in roles, token scopes.

Plain data in the ground floor (``project/``), beside the ``roles:`` of ``passerelle.yml``
that it validates; governance (accounts, tokens, the server's checks) reads it from here.
Built-in roles are code (documented in docs/governance.md); custom roles come from the
project file.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

PERMISSIONS: dict[str, str] = {
    "pii:read": "see personal data unmasked (e-mails, phones, names, addresses)",
    "audiences:export": "export and sync audiences to destinations",
    "segments:write": "create, edit and delete segments",
    "experiments:write": "set up experiments (write experiments/*.yml from the web app)",
    "pipeline:run": "run the pipeline and refresh segments",
    "identity:write": "add and remove identity pins, change identity rules",
    "glossary:approve": "approve metric definitions in the glossary",
    "privacy:handle": "answer access requests and erase persons",
    "admin:users": "manage users, roles and API tokens",
    "audit:read": "read and export the audit log",
}

BUILTIN_ROLES: dict[str, frozenset[str]] = {
    # Builds and ships audiences; sees personal data masked.
    "marketer": frozenset({"segments:write", "audiences:export", "experiments:write"}),
    # Reads results and curates the glossary; sees personal data masked.
    "analyst": frozenset({"segments:write", "glossary:approve", "experiments:write"}),
    # Runs the platform and answers data-subject requests: everything.
    "it_admin": frozenset(PERMISSIONS),
}

# What a token may do at most, whatever its owner may do. Scopes that grant no permission
# still open the routes that declare them (the collector, the profile API, reading routes).
SCOPES: dict[str, frozenset[str]] = {
    "collect:write": frozenset(),
    "profiles:read": frozenset(),
    "decide": frozenset(),  # GET /v1/decide: the next best messages of a placement
    "api:read": frozenset(),
    "api:write": frozenset({"segments:write", "audiences:export", "pipeline:run",
                            "identity:write", "glossary:approve", "privacy:handle"}),
    "pii:read": frozenset({"pii:read"}),
    "admin": frozenset(PERMISSIONS),
}
# A scope includes the scopes listed here (admin can do what every other scope can).
SCOPE_INCLUDES: dict[str, frozenset[str]] = {
    "admin": frozenset(SCOPES) - {"admin"},
    "api:write": frozenset({"api:read", "profiles:read", "decide"}),
    "api:read": frozenset({"profiles:read", "decide"}),
    "profiles:read": frozenset({"decide"}),
}


def unknown_permission_message(name: str) -> str:
    import difflib

    close = difflib.get_close_matches(name, list(PERMISSIONS), n=1)
    hint = f"did you mean '{close[0]}'?" if close else f"permissions: {', '.join(PERMISSIONS)}"
    return f"unknown permission '{name}' ({hint})"


def expand_scopes(scopes: Iterable[str]) -> frozenset[str]:
    """The scopes given plus every scope they include."""
    out = set(scopes)
    for scope in list(out):
        out |= SCOPE_INCLUDES.get(scope, frozenset())
    return frozenset(out)


def scope_permissions(scopes: Iterable[str]) -> frozenset[str]:
    return frozenset().union(*(SCOPES[s] for s in scopes if s in SCOPES))


class Roles:
    """The roles of one project: the built-in ones plus those of ``passerelle.yml``."""

    def __init__(self, custom: Mapping[str, Iterable[str]] | None = None) -> None:
        self._roles = dict(BUILTIN_ROLES)
        for name, perms in (custom or {}).items():
            self._roles[name] = frozenset(perms)

    def __contains__(self, name: object) -> bool:
        return name in self._roles

    def names(self) -> list[str]:
        return list(self._roles)

    def permissions(self, role: str) -> frozenset[str]:
        """A role that the project no longer declares grants nothing (never a guess)."""
        return self._roles.get(role, frozenset())
