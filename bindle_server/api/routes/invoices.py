"""`/v1/_i`: create invoices; read, yank and reach parcels through `/v1/_i/{path}`."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response
from starlette.routing import Route

from bindle_server.api import caching
from bindle_server.api.auth import Access, AccessDep
from bindle_server.api.body import read_body
from bindle_server.api.deps import ServiceDep, SettingsDep
from bindle_server.api.errors import error_response
from bindle_server.api.hot import HotRoute
from bindle_server.api.openapi import DOCUMENT, INVOICE_BODY, PARCEL_BODY, responses
from bindle_server.api.paths import parse_target
from bindle_server.api.responses import document_response, encoded_response, response_format
from bindle_server.api.routes import parcels
from bindle_server.auth import Verb
from bindle_server.config import Settings
from bindle_server.errors import PurgeDisabled
from bindle_server.model import BindleId, Format, dump_document, nested_toml, to_document
from bindle_server.search.query import parse_boolean
from bindle_server.service import BindleService

router = APIRouter()


def _yanked_param(request: Request) -> bool:
    raw = request.query_params.get("yanked")
    return False if raw is None else parse_boolean(raw, "yanked")


def _body_format(request: Request) -> Format:
    content_type = request.headers.get("content-type", "")
    essence = content_type.split(";", 1)[0].strip().lower()
    return Format.JSON if essence == "application/json" else Format.TOML


@router.post(
    "/_i",
    status_code=201,
    responses=responses(
        {201: "Stored; every parcel is stored", 202: "Stored; `missing` lists parcels to upload"},
        (400, 401, 403, 408, 409, 413, 422, 507),
    ),
    openapi_extra=INVOICE_BODY,
)
async def create_invoice(
    request: Request, service: ServiceDep, settings: SettingsDep, access: AccessDep
) -> Response:
    """Store a new invoice. 201 when all its parcels are stored, 202 with `missing` otherwise."""
    return await _create(request, service, settings, access)


async def _create(
    request: Request, service: BindleService, settings: Settings, access: Access
) -> Response:
    # Refuse a caller who may create nothing before reading the body; the name is checked
    # once the service has parsed the invoice.
    access.require_any(Verb.CREATE)
    body = await read_body(request, settings.max_invoice_bytes, settings.body_timeout, "invoice")

    def authorize(bindle_id: BindleId) -> None:
        access.require(Verb.CREATE, bindle_id.name)

    created = await service.create_invoice(body, _body_format(request), authorize=authorize)
    fmt = response_format(request)
    status = 202 if created.missing else 201
    missing = [to_document(label, fmt) for label in created.missing]
    if fmt is Format.TOML and created.stored is not None:
        # The invoice as just written, not rendered again: rendering TOML was the largest
        # part of a create's CPU (py-spy).
        head = dump_document({"missing": missing}, fmt)
        body = head + b"\n" + nested_toml(created.stored, "invoice")
        return encoded_response(request, body, fmt, status)
    document = {"invoice": to_document(created.invoice, fmt), "missing": missing}
    return document_response(request, document, fmt, status)


_READ = responses(
    {
        200: "The invoice (TOML or JSON), or a parcel's bytes with its label's media type",
        206: "A byte range of the parcel",
        304: "Unchanged: `If-None-Match` names the current `ETag`",
    },
    (400, 401, 403, 404, 416),
    {**DOCUMENT, "*/*": {"schema": {"type": "string", "format": "binary"}}},
)


@router.get("/_i/{path:path}", responses=_READ)
@router.head("/_i/{path:path}", responses=_READ)
async def get_invoice_or_parcel(
    path: str, request: Request, service: ServiceDep, access: AccessDep
) -> Response:
    """An invoice (`?yanked=true` to read a yanked one), or a parcel's bytes through it."""
    return await _read(request, service, access, path)


async def _read_path(
    request: Request, service: BindleService, settings: Settings, access: Access
) -> Response:
    return await _read(request, service, access, request.path_params["path"])


def hot_routes(prefix: str) -> list[Route]:
    """Invoice creates and reads ahead of the FastAPI routes (api/hot.py)."""
    return [
        HotRoute(f"{prefix}/_i", _create, methods=["POST"]),
        HotRoute(f"{prefix}/_i/{{path:path}}", _read_path, methods=["GET", "HEAD"]),
    ]


async def _read(request: Request, service: BindleService, access: Access, path: str) -> Response:
    target = parse_target(path)
    # A parcel is read through its invoice, so the invoice's name decides (HEAD too).
    access.require(Verb.READ, target.bindle_id.name)
    allow_yanked = _yanked_param(request)
    if target.sha256 is not None:
        return await parcels.download(
            request, service, target.bindle_id, target.sha256, allow_yanked
        )
    # Access and yank rules come first: a 304 must never answer what a 200 would refuse.
    fmt = response_format(request)
    rendered = await service.rendered_invoice(target.bindle_id, fmt, allow_yanked=allow_yanked)
    body = rendered.body
    headers = {
        "ETag": caching.strong_tag(rendered.sha256),
        "Cache-Control": caching.cache_control(
            shared=caching.readable_by_anyone(request, target.bindle_id.name),
            final=rendered.yanked,
        ),
        "Vary": "Accept",
    }
    if caching.none_match(request, headers["ETag"]):
        return caching.not_modified(headers)
    if request.method == "HEAD":
        headers["Content-Length"] = str(len(body))
        return Response(media_type=fmt.media_type, headers=headers)
    return Response(body, media_type=fmt.media_type, headers=headers)


@router.post(
    "/_i/{path:path}",
    responses=responses({200: "Parcel stored"}, (400, 401, 403, 404, 405, 408, 409, 507)),
    openapi_extra=PARCEL_BODY,
)
async def upload_parcel(
    path: str, request: Request, service: ServiceDep, settings: SettingsDep, access: AccessDep
) -> Response:
    """Upload a parcel's bytes (any content type, chunked or not); 200 when stored."""
    target = parse_target(path)
    access.require(Verb.CREATE, target.bindle_id.name)
    if target.sha256 is None:
        return error_response(405, "invoices are created by POST to /_i, not to their own path")
    return await parcels.upload(
        request, service, target.bindle_id, target.sha256, settings.body_timeout
    )


@router.delete(
    "/_i/{path:path}",
    responses=responses({200: "Invoice yanked (or purged)"}, (400, 401, 403, 404, 405)),
)
async def yank_invoice(
    path: str, request: Request, service: ServiceDep, access: AccessDep
) -> Response:
    """Yank an invoice; yanking it again is a successful no-op.

    With `?purge=true`, remove it for good instead (the `purge` verb; never on a server
    without authentication): it answers 404 from then on, and its id cannot come back
    with other content.
    """
    target = parse_target(path)
    raw = request.query_params.get("purge")
    purge = raw is not None and parse_boolean(raw, "purge")
    if purge:
        if not access.setup.enabled:
            raise PurgeDisabled()
        access.require(Verb.PURGE, target.bindle_id.name)
    else:
        access.require(Verb.YANK, target.bindle_id.name)
    if target.sha256 is not None:
        return error_response(405, "parcels cannot be deleted; yank the invoice instead")
    fmt = response_format(request)
    if purge:
        await service.purge(target.bindle_id, reason=f"purged by {access.identity.subject}")
        return document_response(request, {"message": "invoice purged"}, fmt)
    await service.yank_invoice(target.bindle_id)
    return document_response(request, {"message": "invoice yanked"}, fmt)
