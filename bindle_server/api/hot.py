"""Routes for the hot paths, as plain Starlette routes matched before FastAPI's.

FastAPI solves each route's dependencies per request. For invoice creates and reads and
for `_q`, whose arguments are only the request, the service, the settings and the caller's
access, that solving cost a fifth of the CPU of an invoice GET served from memory and a
twentieth of a create (py-spy). The FastAPI routes stay declared, so that the OpenAPI
document describes them; these answer in their place through the same functions and the
same authentication.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import Scope

from bindle_server.api.auth import Access, get_access
from bindle_server.config import Settings
from bindle_server.service import BindleService

Handler = Callable[[Request, BindleService, Settings, Access], Awaitable[Response]]
"""A route's body, given what FastAPI's dependencies would have given it."""


class HotRoute(Route):
    """A Starlette route that names itself in the scope, as FastAPI's do: request metrics
    label requests by the template of the route that answered them."""

    def __init__(self, path: str, handler: Handler, methods: list[str]) -> None:
        super().__init__(path, _without_dependencies(handler), methods=methods)
        self.include_in_schema = False

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child_scope = super().matches(scope)
        if match is not Match.NONE:
            child_scope["route"] = self
        return match, child_scope


def _without_dependencies(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        state = request.app.state
        return await handler(request, state.service, state.settings, await get_access(request))

    return endpoint
