"""Every request gets an id: the caller's `X-Request-ID` when it is a plain token, else a
new one. It is sent back in the answer's `X-Request-ID` and set in `logs.REQUEST_ID`, so
that the log lines of one request (with `--log-format json`) can be found together."""

from __future__ import annotations

import itertools
import os
import re
import secrets

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bindle_server.logs import REQUEST_ID

HEADER = b"x-request-id"
# A caller's id is echoed into headers and logs: only short, plain tokens are taken.
_ACCEPTED = re.compile(rb"[A-Za-z0-9._:-]{1,64}")


class _NewIds:
    """32 hex digits: 16 random ones per process, then a counter. As unique as a uuid4
    across processes and nodes, without a getrandom system call per request."""

    def __init__(self) -> None:
        self.restart()
        # A forked worker must not repeat its supervisor's (or a sibling's) ids.
        os.register_at_fork(after_in_child=self.restart)

    def restart(self) -> None:
        self._prefix = secrets.token_hex(8)
        self._counter = itertools.count()

    def __call__(self) -> str:
        return f"{self._prefix}{next(self._counter):016x}"


new_request_id = _NewIds()


class RequestId:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((value for name, value in scope["headers"] if name == HEADER), None)
        raw = given if given is not None and _ACCEPTED.fullmatch(given) else None
        request_id = raw.decode() if raw is not None else new_request_id()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", []), (HEADER, request_id.encode())]
                message = {**message, "headers": headers}
            await send(message)

        token = REQUEST_ID.set(request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            REQUEST_ID.reset(token)
