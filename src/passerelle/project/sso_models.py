"""``sso:`` in passerelle.yml: single sign-on through an OpenID Connect provider.

The file names the environment variable that holds the client secret, never the secret.
The role of a person comes from one claim of their ID token, mapped to a Passerelle role
on every sign-in (docs/governance.md, "Single sign-on").
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_CLAIM = re.compile(r"^[A-Za-z0-9_:/.-]{1,200}$")


def _http_url(value: str, what: str) -> str:
    from urllib.parse import urlsplit

    loopback = urlsplit(value).hostname in ("127.0.0.1", "localhost", "::1")
    if not (value.startswith("https://") or (value.startswith("http://") and loopback)
            ) or len(value) > 2000:
        raise ValueError(f"{what} must be an https:// URL (http:// only for a provider on "
                         "this machine, in tests)")
    return value.rstrip("/")


class SsoConfig(BaseModel):
    """An OpenID Connect provider (Microsoft Entra ID, Google Workspace, Okta, Keycloak...)
    that people of the team sign in with, beside or instead of passwords."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=60, description=(
        "The provider's name on the sign-in button: 'Sign in with <name>'"))
    issuer: str = Field(description=(
        "The issuer URL; the ID token's `iss` must equal it, and the provider's settings are "
        "read from <issuer>/.well-known/openid-configuration unless discovery_url says"))
    discovery_url: str | None = Field(None, description=(
        "The discovery document's URL, when it is not under the issuer"))
    client_id: str = Field(min_length=1, max_length=255, description=(
        "The client (application) id registered at the provider"))
    client_secret_env: str | None = Field(None, description=(
        "Name of the environment variable that holds the client secret (never the secret "
        "itself); absent: a public client, PKCE only"))
    client_auth: Literal["client_secret_basic", "client_secret_post"] = Field(
        "client_secret_basic", description="How the secret is sent to the token endpoint")
    scopes: list[str] = Field(["openid", "email", "profile"], min_length=1, max_length=20,
                              description="Scopes asked for; openid is required")
    role_claim: str = Field("roles", description=(
        "The ID token claim that carries the role (a string or a list of strings); a dotted "
        "path reads a nested claim, e.g. realm_access.roles"))
    role_map: dict[str, str] = Field(min_length=1, description=(
        "Claim value -> Passerelle role. When the claim lists several mapped values, the "
        "first of role_map's order wins: list the most powerful first"))
    default_role: str | None = Field(None, description=(
        "The role of a person whose token has no role claim; absent: they are refused"))
    allowed_domains: list[str] = Field(default_factory=list, max_length=100, description=(
        "E-mail domains allowed to sign in (e.g. example.fr); empty: any"))
    redirect_url: str | None = Field(None, description=(
        "The callback URL registered at the provider, when the server is reached through a "
        "proxy under another name (default: <this server>/login/sso/callback)"))
    timeout_seconds: float = Field(10, gt=0, le=60, description=(
        "How long to wait for the provider's answers"))

    @field_validator("issuer", "discovery_url", "redirect_url")
    @classmethod
    def _url(cls, v: str | None, info) -> str | None:  # type: ignore[no-untyped-def]
        return None if v is None else _http_url(v, info.field_name)

    @field_validator("client_secret_env")
    @classmethod
    def _env(cls, v: str | None) -> str | None:
        if v is not None and not _ENV_NAME.match(v):
            raise ValueError("must be the NAME of an environment variable (letters, digits "
                             "and _), not the secret itself")
        return v

    @field_validator("scopes")
    @classmethod
    def _scopes(cls, v: list[str]) -> list[str]:
        if "openid" not in v:
            raise ValueError("must include openid")
        if any(not s or " " in s or len(s) > 100 for s in v):
            raise ValueError("each scope is one word")
        return v

    @field_validator("role_claim")
    @classmethod
    def _claim(cls, v: str) -> str:
        if not _CLAIM.match(v) or ".." in v or v.startswith(".") or v.endswith("."):
            raise ValueError("must be a claim name (or a dotted path like realm_access.roles)")
        return v

    @field_validator("allowed_domains")
    @classmethod
    def _domains(cls, v: list[str]) -> list[str]:
        out = [d.strip().lower().lstrip("@") for d in v]
        bad = [d for d in out if not _DOMAIN.match(d)]
        if bad:
            raise ValueError(f"not e-mail domains: {', '.join(bad)} (write example.fr)")
        return out

    @model_validator(mode="after")
    def _role_values(self) -> SsoConfig:
        if any(not k or len(k) > 255 for k in self.role_map):
            raise ValueError("role_map's claim values must be 1 to 255 characters")
        return self

    def roles_named(self) -> set[str]:
        """The Passerelle roles this block names (checked against the project's roles)."""
        return set(self.role_map.values()) | ({self.default_role} if self.default_role else set())

    @property
    def discovery(self) -> str:
        return self.discovery_url or f"{self.issuer}/.well-known/openid-configuration"
