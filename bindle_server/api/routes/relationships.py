"""`/v1/_r/missing/{id}`: which of an invoice's parcels are not uploaded yet."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from bindle_server.api.auth import AccessDep
from bindle_server.api.deps import ServiceDep
from bindle_server.api.openapi import responses
from bindle_server.api.responses import document_response, response_format
from bindle_server.auth import Verb
from bindle_server.model import BindleId, to_document

router = APIRouter()


_MISSING = responses({200: "`missing`: labels of parcels not uploaded yet"}, (400, 401, 403, 404))


@router.get("/_r/missing/{path:path}", responses=_MISSING)
@router.head("/_r/missing/{path:path}", responses=_MISSING)
async def missing_parcels(
    path: str, request: Request, service: ServiceDep, access: AccessDep
) -> Response:
    """The labels of the invoice's parcels whose bytes are not stored (`missing = []` if none)."""
    bindle_id = BindleId.parse(path)
    access.require(Verb.READ, bindle_id.name)
    labels = await service.missing_parcels(bindle_id)
    fmt = response_format(request)
    return document_response(request, {"missing": [to_document(lb, fmt) for lb in labels]}, fmt)
