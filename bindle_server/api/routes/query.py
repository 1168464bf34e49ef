"""`/v1/_q`: search invoices by name terms and a SemVer filter, page by page."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from starlette.responses import Response

from bindle_server.api.deps import ServiceDep
from bindle_server.api.openapi import query_parameters, responses
from bindle_server.api.responses import document_response, response_format
from bindle_server.model import to_document
from bindle_server.search.query import Query

router = APIRouter()


_RESPONSES = responses({200: "A page of matching invoices"}, (400,))
_PARAMETERS = query_parameters(
    ("q", "string", "Terms that must all occur in the bindle name"),
    ("v", "string", "SemVer filter: a version, a Rust requirement or an npm range"),
    ("o", "integer", "Offset of the first result"),
    ("l", "integer", "Page size, 0 to 255 (default 50)"),
    ("strict", "boolean", "Strict matching (always used)"),
    ("yanked", "boolean", "Include yanked bindles"),
)


@router.get("/_q", responses=_RESPONSES, openapi_extra=_PARAMETERS)
@router.head("/_q", responses=_RESPONSES, openapi_extra=_PARAMETERS)
async def query_invoices(request: Request, service: ServiceDep) -> Response:
    """Invoices whose name contains every term of `q`; yanked ones only with `yanked=true`."""
    query = Query.from_params(request.query_params.multi_items())
    result = await service.query(query)
    fmt = response_format(request)
    document = {
        "query": query.text,
        # Matching is always strict; the spec lets a server answer standard queries so.
        "strict": True,
        "offset": query.offset,
        "limit": query.limit,
        "total": result.total,
        "more": result.more,
        "yanked": query.yanked,
        "timestamp": int(time.time()),
        "invoices": [to_document(invoice, fmt) for invoice in result.invoices],
    }
    return document_response(request, document, fmt)
