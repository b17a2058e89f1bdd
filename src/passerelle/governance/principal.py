"""Who is calling: a signed-in person or an API token, with what they may do."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from passerelle.governance.permissions import expand_scopes


@dataclass(frozen=True)
class Principal:
    kind: Literal["user", "token"]
    id: str  # user id, or the token's public id
    display_name: str  # the user's e-mail, or the token's name: for screens, never for logs
    role: str | None  # a user's role; a token's owner's role (None for a service token)
    permissions: frozenset[str]
    scopes: frozenset[str] = frozenset()  # tokens only; includes the scopes they imply

    def can(self, permission: str) -> bool:
        return permission in self.permissions

    def has_scope(self, scope: str) -> bool:
        """A person signed in may use every route their permissions allow; events are sent
        by tracking libraries with a collect:write token, never by a person."""
        if self.kind == "user":
            return scope != "collect:write"
        return scope in self.scopes

    @property
    def audit_actor(self) -> tuple[str, str]:
        """(kind, id) as written in the audit log: ids only, no e-mail."""
        return self.kind, self.id

    @property
    def author(self) -> str:
        """How the warehouse's own registers (pins, privacy requests, exports, jobs) name
        who did it: ``user:<id>`` or ``token:<id>``, never an e-mail."""
        return f"{self.kind}:{self.id}"


def token_principal(token_id: str, name: str, scopes: list[str], owner_role: str | None,
                    owner_permissions: frozenset[str] | None) -> Principal:
    """A token may do what its scopes allow, and never more than its owner (if it has one)."""
    from passerelle.governance.permissions import scope_permissions

    allowed = scope_permissions(scopes)
    if owner_permissions is not None:
        allowed &= owner_permissions
    return Principal("token", token_id, name, owner_role, allowed, expand_scopes(scopes))
