"""`/v1/_r/resolve/{id}` and `/v1/_r/archive/{id}`: a selection of groups and features,
listed as labels or streamed as a deterministic tar with `ETag`, `Range` and `If-Range`."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response, StreamingResponse

from bindle_server.api import caching
from bindle_server.api.auth import AccessDep
from bindle_server.api.deps import ServiceDep
from bindle_server.api.openapi import query_parameters, responses
from bindle_server.api.ranges import requested_range
from bindle_server.api.responses import document_response, response_format
from bindle_server.auth import Verb
from bindle_server.model import BindleId, to_document
from bindle_server.search.query import parse_boolean
from bindle_server.service.selection import open_selection_archive, resolve_selection
from bindle_server.web.downloads import content_disposition

router = APIRouter()

TAR = "application/x-tar"

_PARAMETERS = query_parameters(
    ("groups", "string", "Group names, comma-separated or repeated"),
    ("features", "string", "Features as NS.KEY=VALUE, comma-separated or repeated"),
    ("yanked", "boolean", "Also serve a yanked bindle"),
)
_RESOLVE = responses(
    {200: "`labels` the selection needs, the `groups` it satisfies, `chosen` oneOf members"},
    (400, 401, 403, 404),
)
_ARCHIVE = responses(
    {
        200: "A tar of `invoice.toml` and the selected parcels by name",
        206: "A byte range of the tar",
        304: "Unchanged: `If-None-Match` names the current `ETag`",
    },
    (400, 401, 403, 404, 416),
    {TAR: {"schema": {"type": "string", "format": "binary"}}},
)


@router.get("/_r/resolve/{path:path}", responses=_RESOLVE, openapi_extra=_PARAMETERS)
@router.head("/_r/resolve/{path:path}", responses=_RESOLVE, openapi_extra=_PARAMETERS)
async def resolve(path: str, request: Request, service: ServiceDep, access: AccessDep) -> Response:
    """The labels a selection of groups and features needs (400 naming a broken rule)."""
    bindle_id = BindleId.parse(path)
    access.require(Verb.READ, bindle_id.name)
    groups, features, yanked = _selection(request)
    resolved = await resolve_selection(service, bindle_id, groups, features, allow_yanked=yanked)
    selection = resolved.selection
    fmt = response_format(request)
    document = {
        "groups": list(selection.groups),
        "chosen": dict(selection.chosen),
        "size": selection.size,
        "labels": [to_document(label, fmt) for label in selection.labels],
    }
    return document_response(request, document, fmt)


@router.get("/_r/archive/{path:path}", responses=_ARCHIVE, openapi_extra=_PARAMETERS)
@router.head("/_r/archive/{path:path}", responses=_ARCHIVE, openapi_extra=_PARAMETERS)
async def archive(path: str, request: Request, service: ServiceDep, access: AccessDep) -> Response:
    """A tar of `invoice.toml` and the selection's parcels by name (every parcel when no
    group or feature is named); the same selection always gives the same bytes."""
    bindle_id = BindleId.parse(path)
    access.require(Verb.READ, bindle_id.name)
    # Access, yank, resolution and storage checks all come first: a 304 or 206 must never
    # answer what a 200 would refuse, and no error can arise once bytes are on the way.
    groups, features, yanked = _selection(request)
    archive = await open_selection_archive(
        service, bindle_id, groups, features, allow_yanked=yanked
    )
    etag = await caching.entity_tag(archive.tag_input)
    headers = {
        "ETag": etag,
        "Accept-Ranges": "bytes",
        # A live invoice can still be yanked, which changes `invoice.toml`: revalidate.
        "Cache-Control": caching.cache_control(
            shared=caching.readable_by_anyone(request, bindle_id.name), final=archive.final
        ),
        "Content-Disposition": content_disposition(archive.filename, "bindle.tar"),
    }
    if caching.none_match(request, etag):
        return caching.not_modified(headers)
    status, start, end = requested_range(request.headers, etag, archive.tar.size, headers)
    headers["Content-Type"] = TAR
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers)
    return StreamingResponse(archive.tar.stream(start, end), status_code=status, headers=headers)


def _selection(request: Request) -> tuple[list[str], list[str], bool]:
    """The `groups`, the `features` and `yanked` a request asks for."""
    raw = request.query_params.get("yanked")
    yanked = False if raw is None else parse_boolean(raw, "yanked")
    return _listed(request, "groups"), _listed(request, "features"), yanked


def _listed(request: Request, key: str) -> list[str]:
    """Every value of a repeatable, comma-separated parameter, without empty items."""
    values = request.query_params.getlist(key)
    return [item.strip() for value in values for item in value.split(",") if item.strip()]
