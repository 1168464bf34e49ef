"""Counts every HTTP request: by route template, method and status, its latency, and the
body bytes it received and sent.

Labelled by the route's template (`/v1/_i/{path:path}`), which the router writes into
the scope, never by the raw path: one label per bindle id would grow without bound.
FastAPI writes the template as its router declared it, without the prefix the router
was included under, so the API prefix is put back here.
"""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bindle_server.api.metrics import UNROUTED, Metrics

# Any token is a method to HTTP: others are counted together, so that a client cannot
# make up label values without bound.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class RequestMetrics:
    def __init__(self, app: ASGIApp, metrics: Metrics, prefix: str) -> None:
        self.app = app
        self.metrics = metrics
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        received = 0
        sent = 0
        status = 500  # what the client gets when the app fails before answering

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
            return message

        async def counting_send(message: Message) -> None:
            nonlocal sent, status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, counting_receive, counting_send)
        finally:
            self.metrics.observe_request(
                self._template(scope),
                scope["method"] if scope["method"] in _METHODS else "other",
                status,
                received,
                sent,
                time.perf_counter() - started,
            )

    def _template(self, scope: Scope) -> str:
        template = getattr(scope.get("route"), "path", None)
        if not isinstance(template, str):
            return UNROUTED
        prefix = self.prefix
        if scope["path"].startswith(f"{prefix}/") and not template.startswith(f"{prefix}/"):
            return prefix + template
        return template
