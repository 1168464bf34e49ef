"""`/v1/_r/missing/{id}`: which of an invoice's parcels are not uploaded yet."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from bindle_server.api.deps import ServiceDep
from bindle_server.api.openapi import responses
from bindle_server.api.responses import document_response, response_format
from bindle_server.model import BindleId, to_document

router = APIRouter()


_MISSING = responses({200: "`missing`: labels of parcels not uploaded yet"}, (400, 403, 404))


@router.get("/_r/missing/{path:path}", responses=_MISSING)
@router.head("/_r/missing/{path:path}", responses=_MISSING)
async def missing_parcels(path: str, request: Request, service: ServiceDep) -> Response:
    """The labels of the invoice's parcels whose bytes are not stored (`missing = []` if none)."""
    labels = await service.missing_parcels(BindleId.parse(path))
    fmt = response_format(request)
    return document_response(request, {"missing": [to_document(lb, fmt) for lb in labels]}, fmt)
