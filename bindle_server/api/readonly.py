"""`--read-only`: the registry answers reads and refuses every write, for a migration or a
backup that needs the store to hold still.

Refused before any route runs (so before authentication, and before a body is read): a
write is a request with a method other than GET, HEAD or OPTIONS.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from bindle_server.api.errors import error_response

READS = frozenset({"GET", "HEAD", "OPTIONS"})
MESSAGE = (
    "this registry is read-only for now (a migration or backup is under way): "
    "reads work, writes do not; retry the write later"
)
RETRY_AFTER = "300"  # seconds: a backup is minutes, not milliseconds


class ReadOnly:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] not in READS:
            response = error_response(503, MESSAGE, {"Retry-After": RETRY_AFTER})
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
