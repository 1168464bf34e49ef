"""`/v1/bindle-keys`: the server's public keys as a keyring (keyring protocol spec)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from bindle_server.api.deps import ServiceDep
from bindle_server.api.openapi import query_parameters, responses
from bindle_server.api.responses import document_response, response_format
from bindle_server.errors import InvalidQuery
from bindle_server.model import SignatureRole
from bindle_server.signing import parse_role

router = APIRouter()


def _roles(request: Request) -> list[SignatureRole] | None:
    params = request.query_params.multi_items()
    unknown = sorted({name for name, _ in params if name != "roles"})
    if unknown:
        raise InvalidQuery(f"unknown query parameter(s) {', '.join(unknown)}; only roles is known")
    values = [value for name, value in params if name == "roles"]
    if not values:
        return None
    roles = []
    for value in values:
        for part in value.split(","):
            try:
                roles.append(parse_role(part))
            except ValueError as exc:
                raise InvalidQuery(str(exc)) from None
    return roles


_RESPONSES = responses({200: "The server's public keys as a keyring"}, (400,))
_PARAMETERS = query_parameters(
    ("roles", "string", "Comma-separated roles to filter by (creator, approver, host, proxy)")
)


@router.get("/bindle-keys", responses=_RESPONSES, openapi_extra=_PARAMETERS)
@router.head("/bindle-keys", responses=_RESPONSES, openapi_extra=_PARAMETERS)
async def bindle_keys(request: Request, service: ServiceDep) -> Response:
    """The server's public keys with signed labels; `?roles=host,approver` filters them."""
    keyring = service.published_keys(_roles(request))
    fmt = response_format(request)
    return document_response(request, keyring.document(), fmt)
