"""ASGI middleware that refuses malformed requests before any route sees them."""

from __future__ import annotations

import re

from starlette.types import ASGIApp, Receive, Scope, Send

from bindle_server.api.errors import error_response

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class RequestGuard:
    """431 past `header_limit` bytes of headers (RFC 6585); 400 for control characters
    in the decoded path.

    No bindle name, version or digest contains a control character, and Starlette's
    route patterns would otherwise read `NAME/1.0.0%0A` as `NAME/1.0.0` (`$` matches
    before a final newline), acting on a bindle the client did not name.
    """

    def __init__(self, app: ASGIApp, header_limit: int) -> None:
        self.app = app
        self.header_limit = header_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            size = sum(len(name) + len(value) + 4 for name, value in scope["headers"])
            if size > self.header_limit:
                message = (
                    f"request headers too large: {size} bytes, the limit is {self.header_limit}"
                )
                await error_response(431, message)(scope, receive, send)
                return
            if _CONTROL.search(scope["path"]):
                message = "invalid path: it contains control characters (such as %0A or %00)"
                await error_response(400, message)(scope, receive, send)
                return
        await self.app(scope, receive, send)
