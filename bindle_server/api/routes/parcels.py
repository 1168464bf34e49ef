"""Parcel upload and download through an invoice, with `Range`, a strong `ETag` and caching."""

from __future__ import annotations

from fastapi import Request
from starlette.responses import Response, StreamingResponse

from bindle_server.api import caching
from bindle_server.api.body import stream_body
from bindle_server.api.ranges import requested_range
from bindle_server.api.responses import document_response, response_format
from bindle_server.model import BindleId
from bindle_server.service import BindleService


async def upload(
    request: Request,
    service: BindleService,
    bindle_id: BindleId,
    sha256: str,
    body_timeout: float,
) -> Response:
    length_header = request.headers.get("content-length")
    content_length = int(length_header) if length_header and length_header.isdigit() else None
    chunks = stream_body(request, body_timeout)
    await service.upload_parcel(bindle_id, sha256, chunks, content_length)
    fmt = response_format(request)
    return document_response(request, {"message": "parcel created"}, fmt)


async def download(
    request: Request,
    service: BindleService,
    bindle_id: BindleId,
    sha256: str,
    allow_yanked: bool,
) -> Response:
    parcel = await service.stored_parcel(bindle_id, sha256, allow_yanked=allow_yanked)
    label, size = parcel.label, parcel.size
    # The digest names the exact bytes forever, so it is a perfect strong validator, and
    # the answer never changes (the yank and access rules were applied just above).
    etag = caching.strong_tag(sha256)
    headers = {
        "ETag": etag,
        "Accept-Ranges": "bytes",
        "Cache-Control": caching.cache_control(
            shared=caching.readable_by_anyone(request, bindle_id.name), final=True
        ),
    }
    if caching.none_match(request, etag):
        return caching.not_modified(headers)
    status, start, end = requested_range(request.headers, etag, size, headers)
    # Set as a header, not as media_type, so Starlette adds no charset: the label's media
    # type is served exactly as the invoice states it.
    headers["Content-Type"] = label.media_type
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers)
    return StreamingResponse(
        service.read_parcel(sha256, start, end), status_code=status, headers=headers
    )
