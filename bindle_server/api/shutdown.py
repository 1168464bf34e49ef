"""A forced shutdown (a second Ctrl-C) is not a server error.

uvicorn's first SIGINT waits for requests in flight; a second one cancels them. The
cancellation then surfaces as an "exception in ASGI application": a plain-text 500 for
the client and a long traceback per request (and one more for the lifespan) in the log.
This outermost middleware answers 503 with the usual TOML error while a response can
still be sent, and logs one line per request instead.
"""

from __future__ import annotations

import asyncio
import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bindle_server.api.errors import error_response

log = logging.getLogger(__name__)

MESSAGE = "the server is shutting down; retry the request in a moment"


class ShutdownGuard:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except asyncio.CancelledError:
            # Only the server cancels a request's task (a client that goes away is an
            # `http.disconnect` message instead), and it does so only to stop.
            _uncancel()
            where = f"{scope['method']} {scope['path']}"
            if started:
                log.warning("%s cut short by a forced shutdown", where)
                return
            log.warning("%s interrupted by a forced shutdown: answered 503", where)
            headers = {"Retry-After": "5", "Connection": "close"}
            await error_response(503, MESSAGE, headers)(scope, receive, send)

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def receive_or_stop() -> Message:
            # Cancelled while waiting for the shutdown message: that *is* the shutdown,
            # so the app closes its stores as it would after a plain Ctrl-C.
            try:
                return await receive()
            except asyncio.CancelledError:
                _uncancel()
                return {"type": "lifespan.shutdown"}

        try:
            await self.app(scope, receive_or_stop, send)
        except asyncio.CancelledError:
            _uncancel()  # cancelled again during the clean-up: the process is exiting


def _uncancel() -> None:
    """Let the task go on awaiting (the answer, the clean-up) once it has handled its
    cancellation."""
    task = asyncio.current_task()
    if task is not None:
        task.uncancel()
