"""`/v1/_q`: search invoices by name terms and a SemVer filter, page by page."""

from __future__ import annotations

import dataclasses
import time

from fastapi import APIRouter, Request
from starlette.responses import Response
from starlette.routing import Route

from bindle_server.api.auth import AccessDep
from bindle_server.api.deps import ServiceDep, SettingsDep
from bindle_server.api.hot import HotRoute
from bindle_server.api.openapi import query_parameters, responses
from bindle_server.api.responses import encoded_response, response_format
from bindle_server.auth import Verb
from bindle_server.errors import InvalidQuery
from bindle_server.model.pages import dump_page, invoice_entry
from bindle_server.search.query import Query, parse_boolean

router = APIRouter()


_RESPONSES = responses({200: "A page of matching invoices"}, (400, 401))
_PARAMETERS = query_parameters(
    ("q", "string", "Terms that must all occur in the bindle name"),
    ("v", "string", "SemVer filter: a version, a Rust requirement or an npm range"),
    ("o", "integer", "Offset of the first result"),
    ("l", "integer", "Page size, 0 to 255 (default 50)"),
    ("strict", "boolean", "Strict matching (always used)"),
    ("yanked", "boolean", "Include yanked bindles"),
    ("upstream", "boolean", "On a mirror: also ask the upstreams; results merged, de-duplicated"),
)


def _upstream_param(params: list[tuple[str, str]]) -> bool:
    values = [value for name, value in params if name == "upstream"]
    if len(values) > 1:
        raise InvalidQuery("query parameter 'upstream' is given more than once")
    return bool(values) and parse_boolean(values[0], "upstream")


@router.get("/_q", responses=_RESPONSES, openapi_extra=_PARAMETERS)
@router.head("/_q", responses=_RESPONSES, openapi_extra=_PARAMETERS)
async def query_invoices(
    request: Request, service: ServiceDep, settings: SettingsDep, access: AccessDep
) -> Response:
    """Invoices whose name contains every term of `q`; yanked ones only with `yanked=true`.

    Only invoices the caller may read are counted and listed, so `total` and `more` are
    the caller's. On a mirror, `upstream=true` answers from the local store and the
    upstreams together, merged and de-duplicated by bindle id.
    """
    if access.identity.is_anonymous:
        # 401 tells a caller without credentials that it needs some; an authenticated
        # caller who may read nothing gets an empty page, as with any filter.
        access.require_any(Verb.READ)
    params = request.query_params.multi_items()
    upstream = _upstream_param(params)
    params = [(name, value) for name, value in params if name != "upstream"]
    query = Query.from_params(params)
    query = dataclasses.replace(query, name_prefixes=access.readable_prefixes())
    result = None
    if upstream and settings.upstream:
        # Imported here: servers that mirror nothing never load the mirror.
        from bindle_server.mirror import MirrorService

        if isinstance(service, MirrorService):
            result = await service.query_with_upstream(query, params)
    fmt = response_format(request)
    if result is None:
        total, entries = await service.query_entries(query, fmt)
    else:
        total, entries = result.total, [invoice_entry(i, fmt) for i in result.invoices]
    head = {
        "query": query.text,
        # Matching is always strict; the spec lets a server answer standard queries so.
        "strict": True,
        "offset": query.offset,
        "limit": query.limit,
        "total": total,
        "more": query.offset + len(entries) < total,
        "yanked": query.yanked,
        "timestamp": int(time.time()),
    }
    return encoded_response(request, dump_page(head, entries, fmt), fmt)


def hot_routes(prefix: str) -> list[Route]:
    """`_q` ahead of its FastAPI route (api/hot.py)."""
    return [HotRoute(f"{prefix}/_q", query_invoices, methods=["GET", "HEAD"])]
