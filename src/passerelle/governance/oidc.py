"""OpenID Connect: the authorization code flow with PKCE, state and nonce, for the web app.

The protocol's pieces come from authlib (the authorization URL, the PKCE challenge, the token
request and how the client authenticates to it, the ID token's claims: issuer, audience,
expiry, nonce, at_hash) and joserfc (the ID token's signature, against the provider's
published keys); the provider is called with httpx, with a timeout and a size limit. The
provider's settings (its discovery document) and keys are kept an hour; a token signed
with a key not seen yet makes one new fetch of the keys (the provider rotated them).

A sign-in under way is kept in the server's memory (:class:`PendingSignIns`) for ten
minutes, under a random id that only the browser's cookie holds: the state, the nonce and
the PKCE verifier never leave the server.
"""

from __future__ import annotations

import hmac
import os
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from passerelle.errors import ExitCode, PasserelleError
from passerelle.governance.errors import NotAuthenticated
from passerelle.project.sso_models import SsoConfig

METADATA_TTL = 3600.0  # seconds the discovery document and the keys are kept
FLOW_TTL = 600.0  # seconds a person has to come back from the provider
MAX_FLOWS = 10_000  # sign-ins under way at once (the oldest are dropped beyond)
MAX_RESPONSE = 1_000_000  # bytes of a provider's answer
MAX_PARAM = 4096  # characters of a callback parameter
LEEWAY = 120  # seconds of clock difference allowed with the provider
# Signatures with the provider's public keys only: never "none", never a shared secret.
ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384",
              "ES512", "EdDSA")


class SsoError(NotAuthenticated):
    """A single sign-on refused: ``code`` is the short reason written to the audit log."""

    def __init__(self, code: str, message: str, instruction: str, status: int = 401) -> None:
        self.code = code
        self.http_status = status
        self.audited = False  # set once the audit log has the refusal
        super().__init__(message, instruction)


class SsoNotConfigured(PasserelleError):
    """The server cannot offer single sign-on as passerelle.yml describes it."""

    exit_code = ExitCode.EXTERNAL_ERROR


def client_secret(config: SsoConfig, environ: Mapping[str, str] = os.environ) -> str | None:
    """The client secret, from the environment variable the project names (None: a public
    client). Checked when the server starts, so a missing variable stops it at once."""
    if config.client_secret_env is None:
        return None
    secret = environ.get(config.client_secret_env, "")
    if not secret.strip():
        raise SsoNotConfigured(
            f"sso: the environment variable {config.client_secret_env} is not set (it holds "
            "the client secret of the OpenID Connect provider).",
            f"Set {config.client_secret_env} in the server's environment, or remove "
            "client_secret_env for a public client.")
    return secret.strip()


def unreachable(what: str) -> SsoError:
    return SsoError("provider_unreachable", f"The sign-in provider did not answer ({what}).",
                    "Try again in a moment; if it lasts, tell IT.", 502)


def bad_token(what: str) -> SsoError:
    return SsoError("bad_token", f"The sign-in provider's answer was refused: {what}.",
                    "Sign in again; if it lasts, tell IT (the provider or its settings).", 401)


# ------------------------------------------------------------------ sign-ins under way
@dataclass(frozen=True)
class PendingSignIn:
    state: str
    nonce: str
    code_verifier: str
    redirect_uri: str
    next_path: str
    started: float  # time.monotonic()


class PendingSignIns:
    """Sign-ins under way, each usable once, for :data:`FLOW_TTL` seconds."""

    def __init__(self, ttl: float = FLOW_TTL, limit: int = MAX_FLOWS) -> None:
        self._flows: OrderedDict[str, PendingSignIn] = OrderedDict()
        self._lock = threading.Lock()
        self.ttl, self.limit = ttl, limit

    def put(self, pending: PendingSignIn) -> str:
        flow_id = secrets.token_urlsafe(32)
        with self._lock:
            self._drop_old(time.monotonic())
            while len(self._flows) >= self.limit:
                self._flows.popitem(last=False)
            self._flows[flow_id] = pending
        return flow_id

    def take(self, flow_id: str | None) -> PendingSignIn | None:
        if not flow_id:
            return None
        with self._lock:
            self._drop_old(time.monotonic())
            return self._flows.pop(flow_id, None)

    def _drop_old(self, now: float) -> None:
        while self._flows:
            oldest = next(iter(self._flows.values()))
            if now - oldest.started < self.ttl:
                break
            self._flows.popitem(last=False)


# ------------------------------------------------------------------------- the client
class OidcClient:
    """One provider, as ``sso:`` in passerelle.yml describes it."""

    def __init__(self, config: SsoConfig, secret: str | None,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.config = config
        self._secret = secret
        self._http = httpx.Client(timeout=config.timeout_seconds, transport=transport,
                                  follow_redirects=False)
        self._lock = threading.Lock()
        self._metadata: tuple[float, dict[str, Any]] | None = None
        self._keys: tuple[float, Any] | None = None

    def __repr__(self) -> str:  # never the secret
        return f"OidcClient({self.config.issuer!r}, client_id={self.config.client_id!r})"

    def close(self) -> None:
        self._http.close()

    # ---------------------------------------------------------------- the provider
    def _get_json(self, url: str, what: str) -> dict[str, Any]:
        return _json_of(self._send("GET", url, what, {"Accept": "application/json"}), what)

    def _send(self, method: str, url: str, what: str, headers: dict[str, str],
              content: str | None = None) -> tuple[int, bytes]:
        """(status, body) of one call, the body read up to :data:`MAX_RESPONSE` bytes."""
        try:
            with self._http.stream(method, url, headers=headers, content=content) as response:
                body = b""
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > MAX_RESPONSE:
                        raise unreachable(f"{what} answered more than {MAX_RESPONSE} bytes")
                return response.status_code, body
        except httpx.HTTPError as exc:
            raise unreachable(f"{what}: {type(exc).__name__}") from None

    def metadata(self) -> dict[str, Any]:
        """The provider's discovery document (kept :data:`METADATA_TTL` seconds)."""
        with self._lock:
            if self._metadata and time.monotonic() - self._metadata[0] < METADATA_TTL:
                return self._metadata[1]
        doc = self._get_json(self.config.discovery, "discovery document")
        missing = [k for k in ("issuer", "authorization_endpoint", "token_endpoint",
                               "jwks_uri") if not isinstance(doc.get(k), str)]
        if missing:
            raise unreachable(f"its discovery document lacks {', '.join(missing)}")
        if doc["issuer"].rstrip("/") != self.config.issuer:
            raise SsoError("provider_misconfigured", "The sign-in provider names another "
                           "issuer than passerelle.yml.", "Tell IT: sso.issuer must be "
                           "the provider's issuer, exactly.", 502)
        with self._lock:
            self._metadata = (time.monotonic(), doc)
        return doc

    def keys(self, refresh: bool = False) -> Any:
        """The provider's signing keys (a joserfc KeySet)."""
        from joserfc.errors import JoseError
        from joserfc.jwk import KeySet

        with self._lock:
            if (not refresh and self._keys
                    and time.monotonic() - self._keys[0] < METADATA_TTL):
                return self._keys[1]
        doc = self._get_json(self.metadata()["jwks_uri"], "signing keys")
        try:
            key_set = KeySet.import_key_set(doc)  # type: ignore[arg-type]
        except (JoseError, ValueError, TypeError, KeyError):
            raise unreachable("its signing keys could not be read") from None
        with self._lock:
            self._keys = (time.monotonic(), key_set)
        return key_set

    # -------------------------------------------------------------------- the flow
    def begin(self, redirect_uri: str, next_path: str) -> tuple[str, PendingSignIn]:
        """The provider's URL to send the person to, and what the callback will check."""
        from authlib.common.security import generate_token
        from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
        from authlib.oauth2.rfc7636 import create_s256_code_challenge

        endpoint = self.metadata()["authorization_endpoint"]
        pending = PendingSignIn(state=generate_token(32), nonce=generate_token(32),
                                code_verifier=generate_token(64), redirect_uri=redirect_uri,
                                next_path=next_path, started=time.monotonic())
        url = prepare_grant_uri(
            endpoint, client_id=self.config.client_id, response_type="code",
            redirect_uri=redirect_uri, scope=" ".join(self.config.scopes),
            state=pending.state, nonce=pending.nonce,
            code_challenge=create_s256_code_challenge(pending.code_verifier),
            code_challenge_method="S256")
        return url, pending

    def finish(self, pending: PendingSignIn, params: Mapping[str, str]) -> dict[str, Any]:
        """The ID token's claims, once the callback's state, the code's exchange, the
        token's signature and its claims are all checked."""
        if any(len(v) > MAX_PARAM for v in params.values()):
            raise SsoError("bad_request", "The sign-in answer is too long.",
                           "Sign in again.", 400)
        if not hmac.compare_digest(params.get("state", "").encode(), pending.state.encode()):
            raise SsoError("bad_state", "This sign-in answer does not belong to the sign-in "
                           "started in this browser.", "Start the sign-in again.", 400)
        if params.get("error"):
            raise SsoError("provider_refused", "The sign-in provider refused the sign-in "
                           f"({params['error'][:100]}).", "Check with IT that your account "
                           "may use Passerelle.", 401)
        if not params.get("code"):
            raise SsoError("bad_request", "The sign-in answer has no code.",
                           "Start the sign-in again.", 400)
        token = self._exchange(pending, params["code"])
        return self._claims(token, pending)

    def _exchange(self, pending: PendingSignIn, code: str) -> dict[str, Any]:
        from authlib.oauth2.auth import ClientAuth
        from authlib.oauth2.rfc6749.parameters import prepare_token_request

        endpoint = self.metadata()["token_endpoint"]
        body = prepare_token_request("authorization_code", code=code,
                                     redirect_uri=pending.redirect_uri,
                                     code_verifier=pending.code_verifier)
        method = self.config.client_auth if self._secret else "none"
        headers = {"Content-Type": "application/x-www-form-urlencoded",
                   "Accept": "application/json"}
        url, headers, body = ClientAuth(self.config.client_id, self._secret, method).prepare(
            "POST", endpoint, headers, body)
        response = self._send("POST", url, "token endpoint", headers, body)
        if response[0] in (400, 401):
            error = _json_of(response, "token endpoint", ok=(400, 401)).get("error")
            raise SsoError("token_refused", "The sign-in provider refused to give a token "
                           f"({str(error)[:100]}).", "Start the sign-in again; if it lasts, "
                           "tell IT (client id and secret).", 401)
        token = _json_of(response, "token endpoint")
        if not isinstance(token.get("id_token"), str):
            raise bad_token("no ID token (is the openid scope granted?)")
        return token

    def _claims(self, token: dict[str, Any], pending: PendingSignIn) -> dict[str, Any]:
        from authlib.oidc.core import CodeIDToken
        from joserfc import jwt
        from joserfc.errors import InvalidKeyIdError, JoseError

        supported = self.metadata().get("id_token_signing_alg_values_supported") or ["RS256"]
        algorithms = [a for a in supported if a in ALGORITHMS]
        if not algorithms:
            raise bad_token("the provider signs with no algorithm Passerelle accepts")
        try:
            try:
                decoded = jwt.decode(token["id_token"], self.keys(), algorithms=algorithms)
            except InvalidKeyIdError:  # a new key: the provider rotated its keys
                decoded = jwt.decode(token["id_token"], self.keys(refresh=True),
                                     algorithms=algorithms)
            claims = CodeIDToken(
                decoded.claims, decoded.header,
                {"iss": {"essential": True, "value": self.metadata()["issuer"]},
                 "aud": {"essential": True, "value": self.config.client_id}},
                {"nonce": pending.nonce, "client_id": self.config.client_id,
                 "access_token": token.get("access_token")})
            claims.validate(leeway=LEEWAY)
        except JoseError as exc:
            raise bad_token(f"ID token: {exc.description or exc.error.replace('_', ' ')}"
                            ) from None
        return dict(claims)


def _json_of(response: tuple[int, bytes], what: str, ok: tuple[int, ...] = (200,)
              ) -> dict[str, Any]:
    import json

    status, body = response
    if status not in ok:
        raise unreachable(f"{what} answered HTTP {status}")
    try:
        doc = json.loads(body)
    except ValueError:
        raise unreachable(f"{what} did not answer JSON") from None
    if not isinstance(doc, dict):
        raise unreachable(f"{what} did not answer a JSON object")
    return doc
