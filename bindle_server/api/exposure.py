"""Who may reach a server that has no authentication: loopback callers, unless the
operator opted in with `--unauthenticated`.

The app enforces this itself, so `bindle-server`, `uvicorn --factory` and a program that
embeds `create_app` all get the same rule. It is checked twice: against the configured
address when the app is built (a clear start-up error), and against the local address of
every connection (uvicorn's own `--host 0.0.0.0` never reaches the settings).
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from starlette.types import ASGIApp, Receive, Scope, Send

from bindle_server.api.errors import error_response
from bindle_server.config import Settings
from bindle_server.errors import InvalidAuthConfig

NOT_LOOPBACK = (
    "this server has no authentication and answers only on loopback addresses; "
    "start it with credentials, or with --unauthenticated (BINDLE_UNAUTHENTICATED=true) "
    "to serve every address open"
)


def check_exposure(settings: Settings, authenticated: bool) -> None:
    """Refuse (InvalidAuthConfig) to serve open on a non-loopback address unless asked to."""
    if authenticated or settings.unauthenticated or settings.listens_on_loopback():
        return
    raise InvalidAuthConfig(
        f"refusing to serve {settings.address} without authentication: it is not a loopback "
        "address, so anyone who can reach it could read, write and yank. To serve it open "
        "anyway, say so with --unauthenticated or BINDLE_UNAUTHENTICATED=true (in a "
        "container: docker run -e BINDLE_UNAUTHENTICATED=true ...). Or give credentials: "
        "--htpasswd-file, the --oidc-* settings, or a token (bindle-server token create). "
        "Or listen on 127.0.0.1 (--address)."
    )


class LoopbackOnly:
    """403 for a connection that arrived on a non-loopback interface.

    Only network addresses are judged: a Unix socket or an in-process transport (whose
    `server` is a path or a name) cannot be reached from another host.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            server = scope.get("server")
            if server and _remote_interface(str(server[0])):
                await error_response(403, NOT_LOOPBACK)(scope, receive, send)
                return
        await self.app(scope, receive, send)


@lru_cache(maxsize=64)
def _remote_interface(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return not address.is_loopback
