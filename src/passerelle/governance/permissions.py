"""Permissions, roles and scopes: the vocabulary is defined with the project files
(:mod:`passerelle.project.permissions`), since ``passerelle.yml`` declares custom roles."""

from passerelle.project.permissions import (
    BUILTIN_ROLES,
    PERMISSIONS,
    SCOPE_INCLUDES,
    SCOPES,
    Roles,
    expand_scopes,
    scope_permissions,
    unknown_permission_message,
)

__all__ = ["BUILTIN_ROLES", "PERMISSIONS", "SCOPES", "SCOPE_INCLUDES", "Roles", "expand_scopes",
           "scope_permissions", "unknown_permission_message"]
