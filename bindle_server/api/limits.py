"""ASGI middleware refusing oversized header blocks before any route runs."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from bindle_server.api.errors import error_response


class HeaderLimit:
    """431 Request Header Fields Too Large (RFC 6585) past `limit` bytes of headers."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            size = sum(len(name) + len(value) + 4 for name, value in scope["headers"])
            if size > self.limit:
                message = f"request headers too large: {size} bytes, the limit is {self.limit}"
                await error_response(431, message)(scope, receive, send)
                return
        await self.app(scope, receive, send)
