"""A small OpenID Connect provider for tests, served by uvicorn on a free loopback port.

It does what a real provider does for the authorization code flow: a discovery document,
its public keys (an RSA key made when it starts), an authorization endpoint that signs in
whoever the test says (``provider.person``) and redirects back with a one-use code, and a
token endpoint that checks the client's secret, the redirect URI and the PKCE verifier
before issuing an RS256-signed ID token carrying the nonce. ``provider.tamper`` lets a test
spoil the next ID token (its signature, its nonce, its audience)."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import uvicorn
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from collect_helpers import free_port

CLIENT_ID = "passerelle-tests"


@dataclass
class Provider:
    secret: str
    port: int = field(default_factory=free_port)
    person: dict[str, Any] = field(default_factory=dict)  # the claims of who signs in next
    # spoil the next ID token: "signature" (claims changed after signing), "foreign key"
    # (signed by another key under the same kid), "nonce", "audience"
    tamper: str | None = None
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    key_fetches: int = 0

    def __post_init__(self) -> None:
        self.key = RSAKey.generate_key(2048, parameters={"kid": "test-1", "use": "sig"})

    def rotate(self) -> None:
        """A new signing key under a new kid, as providers do from time to time."""
        self.key = RSAKey.generate_key(2048, parameters={"kid": f"test-{time.time_ns()}"})

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # ---------------------------------------------------------------- endpoints
    async def discovery(self, request: Request) -> Response:
        return JSONResponse({
            "issuer": self.issuer, "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token", "jwks_uri": f"{self.issuer}/jwks",
            "response_types_supported": ["code"], "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["S256"]})

    async def jwks(self, request: Request) -> Response:
        self.key_fetches += 1
        return JSONResponse(KeySet([self.key]).as_dict(private=False))

    async def authorize(self, request: Request) -> Response:
        q = request.query_params
        if (q.get("client_id") != CLIENT_ID or q.get("response_type") != "code"
                or q.get("code_challenge_method") != "S256" or "openid" not in
                q.get("scope", "").split()):
            return JSONResponse({"error": "invalid_request"}, status_code=400)
        code = secrets.token_urlsafe(16)
        self.codes[code] = {"nonce": q["nonce"], "challenge": q["code_challenge"],
                            "redirect_uri": q["redirect_uri"], "person": dict(self.person)}
        return RedirectResponse(f"{q['redirect_uri']}?code={code}&state={q['state']}",
                                status_code=302)

    async def token(self, request: Request) -> Response:
        form = dict(parse_qsl((await request.body()).decode()))
        self.token_requests.append({**form, "authorization": request.headers.get(
            "authorization", "")})
        expected = "Basic " + base64.b64encode(f"{CLIENT_ID}:{self.secret}".encode()).decode()
        posted = (form.get("client_id"), form.get("client_secret")) == (CLIENT_ID, self.secret)
        if request.headers.get("authorization") != expected and not posted:
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        grant = self.codes.pop(form.get("code", ""), None)
        verifier = form.get("code_verifier", "")
        challenge = base64.urlsafe_b64encode(
            hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        if (grant is None or form.get("grant_type") != "authorization_code"
                or form.get("redirect_uri") != grant["redirect_uri"]
                or challenge != grant["challenge"]):
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        return JSONResponse({"access_token": secrets.token_urlsafe(16), "token_type": "Bearer",
                             "expires_in": 300, "id_token": self.id_token(grant)})

    def id_token(self, grant: dict[str, Any]) -> str:
        now = int(time.time())
        tamper, self.tamper = self.tamper, None
        claims = {"iss": self.issuer, "sub": grant["person"].get("email", "someone"),
                  "aud": "someone-else" if tamper == "audience" else CLIENT_ID,
                  "iat": now, "exp": now + 300,
                  "nonce": "replayed" if tamper == "nonce" else grant["nonce"],
                  **grant["person"]}
        key = RSAKey.generate_key(2048, parameters={"kid": self.key.kid}) if (
            tamper == "foreign key") else self.key  # another key under the provider's kid
        token = jwt.encode({"alg": "RS256", "kid": key.kid}, claims, key)
        if tamper == "signature":  # the same signature over claims that grant more
            header, _payload, signature = token.split(".")
            payload = base64.urlsafe_b64encode(json.dumps(
                {**claims, "roles": ["cdp-admins"]}).encode()).rstrip(b"=").decode()
            token = f"{header}.{payload}.{signature}"
        return token

    # ------------------------------------------------------------------ serving
    def app(self) -> Starlette:
        return Starlette(routes=[
            Route("/.well-known/openid-configuration", self.discovery),
            Route("/jwks", self.jwks), Route("/authorize", self.authorize),
            Route("/token", self.token, methods=["POST"])])

    def start(self) -> Provider:
        self.server = uvicorn.Server(uvicorn.Config(self.app(), host="127.0.0.1",
                                                    port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "provider down"
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
