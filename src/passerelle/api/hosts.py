"""Who may reach `passerelle serve`: the bind address and the Host header.

The API has no accounts yet, so the server listens on loopback only, and answers only to
the host names it knows: a web page cannot reach it through DNS rebinding (a name of the
attacker's that resolves to 127.0.0.1 still sends the attacker's name in Host).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from fastapi.responses import JSONResponse
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from passerelle.api.errors import error_body
from passerelle.errors import PasserelleError

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
_ACCEPTED = "passerelle.host_accepted"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind_address(host: str) -> None:
    """Refuse to listen beyond this machine while the API has no authentication."""
    if is_loopback(host):
        return
    raise PasserelleError(
        f"passerelle serve will not listen on {host}: the API has no accounts or tokens yet "
        "(they come with governance), so anyone who can reach the port could read and erase "
        "personal data.",
        "Listen on 127.0.0.1 (the default) and reach it from another machine through an SSH "
        "tunnel (ssh -L 8080:127.0.0.1:8080 server) or a reverse proxy with authentication "
        "on the same host; add the name the proxy forwards to `server: allowed_hosts:` in "
        "passerelle.yml.")


def allowed_hosts(bind: str, configured: Sequence[str]) -> list[str]:
    """Host header values to accept: loopback names, the bind address, the configured ones
    (IPv6 literals as they appear in a Host header: in brackets)."""
    hosts: dict[str, None] = {}
    for host in (*LOOPBACK_NAMES, bind, *configured):
        try:
            if ipaddress.ip_address(host.strip("[]")).version == 6:
                host = f"[{host.strip('[]')}]"
        except ValueError:
            pass
        hosts[host.lower()] = None
    return list(hosts)


async def _accept(scope: Scope, receive: Receive, send: Send) -> None:
    scope[_ACCEPTED] = True


async def _discard(message: dict) -> None:
    return None


class HostCheck:
    """Starlette's TrustedHostMiddleware decides; a refusal answers in the API's JSON error
    shape (400 ``invalid_host``) instead of its plain text."""

    def __init__(self, app: ASGIApp, hosts: Sequence[str]) -> None:
        self.app, self.hosts = app, list(hosts)
        self.trusted = TrustedHostMiddleware(_accept, allowed_hosts=self.hosts,
                                             www_redirect=False)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        await self.trusted(scope, receive, _discard)
        if scope.pop(_ACCEPTED, False):
            await self.app(scope, receive, send)
            return
        response = JSONResponse(error_body(
            "invalid_host", "This server does not answer to the host name in the request's "
            "Host header.", f"Use one of: {', '.join(self.hosts)}; IT can add names under "
            "`server: allowed_hosts:` in passerelle.yml."), status_code=400)
        await response(scope, receive, send)
