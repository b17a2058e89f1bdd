"""Who may reach `passerelle serve`: the bind address and the Host header.

Every /api route needs a credential (api/auth.py), so the server may listen beyond
loopback; it warns when it does over plain http or with no account yet. It answers only to
the host names it knows: a web page cannot reach it through DNS rebinding (a name of the
attacker's that resolves to 127.0.0.1 still sends the attacker's name in Host).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Any

from fastapi.responses import JSONResponse
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from passerelle.api.errors import error_body

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
_ACCEPTED = "passerelle.host_accepted"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bind_warnings(host: str, db: Any) -> list[str]:
    """What to tell IT when the server listens beyond this machine: every route needs a
    credential, but an app with no account yet, or plain http, deserves a warning."""
    if is_loopback(host):
        return []
    from sqlalchemy import func, select

    from passerelle.governance.tables import User

    warnings = [f"Listening on {host}: every /api route needs a token or a session, but "
                "traffic is plain http: put a reverse proxy with TLS (https) in front, and "
                "list it under `server: trusted_proxies:` so that cookies are Secure."]
    with db.session() as session:
        users = session.scalar(select(func.count()).select_from(User))
    if not users:
        warnings.append("No account exists yet: nobody can sign in. Create the first "
                        "administrator with `passerelle users add EMAIL --role it_admin`.")
    return warnings


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


def forwarding(project: Any) -> dict[str, Any]:
    """uvicorn's options for forwarded headers: believed from ``server: trusted_proxies``
    only (then a proxy's ``X-Forwarded-Proto: https`` makes cookies Secure), else ignored."""
    proxies = project.config.server.trusted_proxies
    return {"proxy_headers": bool(proxies), "forwarded_allow_ips": ",".join(proxies) or None}
