"""Downloads for people: one parcel under its label's name, or the whole bindle as the
standalone `.tar.gz` that `bindle push -p` and the reference client read.

The access rules are the API's: read access on the bindle's name, the parcel listed by
the invoice it is reached through, and a yanked invoice only with `?yanked=true`.
"""

from __future__ import annotations

import unicodedata
import zlib
from collections.abc import AsyncIterator
from urllib.parse import quote

from fastapi import APIRouter, Request
from starlette.responses import Response, StreamingResponse

from bindle_server.api.auth import AccessDep
from bindle_server.api.deps import ServiceDep
from bindle_server.api.routes import parcels
from bindle_server.auth import Verb
from bindle_server.errors import InvalidBindleId
from bindle_server.model import BindleId, check_sha256
from bindle_server.search.query import parse_boolean
from bindle_server.service.archive import open_archive
from bindle_server.threads import run_sync

# install_web marks these routes as the UI's, so their errors are HTML pages.
router = APIRouter(include_in_schema=False)

TARBALL_SUFFIX = ".tar.gz"
# Chunks at least this long are compressed in a worker thread; shorter ones (tar headers,
# small parcels) cost less than the hop to a thread.
_THREAD_COMPRESS = 64 * 1024
_GZIP_LEVEL = 6
# Longest file name offered to the browser (most file systems allow 255 bytes).
_MAX_FILENAME = 200
# Nothing downloaded here is a page of this site: should a browser render it anyway,
# it runs no script and reaches nothing.
_SANDBOX = "sandbox; default-src 'none'"


def _allow_yanked(request: Request) -> bool:
    raw = request.query_params.get("yanked")
    return False if raw is None else parse_boolean(raw, "yanked")


@router.get("/parcel/{path:path}")
@router.head("/parcel/{path:path}")
async def download_parcel(
    path: str, request: Request, service: ServiceDep, access: AccessDep
) -> Response:
    """A parcel's bytes as an attachment named after its label: `/parcel/NAME/VERSION/SHA256`."""
    bindle, _, sha256 = path.rpartition("/")
    if not bindle:
        raise InvalidBindleId("expected /parcel/NAME/VERSION/SHA256")
    bindle_id = BindleId.parse(bindle)
    check_sha256(sha256)
    access.require(Verb.READ, bindle_id.name)
    allow_yanked = _allow_yanked(request)
    # The API's own answer (Range, ETag, Content-Length, the label's media type), so the
    # rules cannot drift apart; only how a browser should save it is added.
    response = await parcels.download(request, service, bindle_id, sha256, allow_yanked)
    invoice = await service.get_invoice(bindle_id, allow_yanked=allow_yanked)
    label = invoice.label_for(sha256)
    name = label.name if label is not None and label.name else sha256
    response.headers["Content-Disposition"] = content_disposition(name, sha256)
    response.headers["Content-Security-Policy"] = _SANDBOX
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@router.get("/download/{path:path}")
async def download_archive(
    path: str, request: Request, service: ServiceDep, access: AccessDep
) -> Response:
    """The bindle as a standalone `.tar.gz`: `/download/NAME/VERSION.tar.gz`."""
    if not path.endswith(TARBALL_SUFFIX):
        raise InvalidBindleId("expected /download/NAME/VERSION.tar.gz")
    bindle_id = BindleId.parse(path.removesuffix(TARBALL_SUFFIX))
    access.require(Verb.READ, bindle_id.name)
    archive = await open_archive(service, bindle_id, allow_yanked=_allow_yanked(request))
    headers = {
        "Content-Disposition": content_disposition(archive.filename, archive.top),
        "Content-Security-Policy": _SANDBOX,
        "X-Content-Type-Options": "nosniff",
    }
    return StreamingResponse(
        gzip_stream(archive.stream()), media_type="application/gzip", headers=headers
    )


async def gzip_stream(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """`chunks` gzip-compressed as they pass. zlib writes the gzip header with mtime 0
    and no file name, so the same input always gives the same bytes."""
    compressor = zlib.compressobj(_GZIP_LEVEL, zlib.DEFLATED, 31)
    async for chunk in chunks:
        if len(chunk) >= _THREAD_COMPRESS:
            compressed = await run_sync(compressor.compress, chunk)
        else:
            compressed = compressor.compress(chunk)
        if compressed:
            yield compressed
    yield compressor.flush()


def content_disposition(name: str, fallback: str) -> str:
    """`attachment` with a file name that is safe to save: the last path segment of
    `name`, without control or quoting characters; non-ASCII names go in `filename*`
    (RFC 6266 section 4.3) with an ASCII stand-in in `filename` for old clients."""
    filename = _safe_filename(name) or _safe_filename(fallback) or "download"
    # `%` too: some clients percent-decode a plain `filename`.
    ascii_name = "".join("_" if ord(char) > 126 or char == "%" else char for char in filename)
    if ascii_name == filename:
        return f'attachment; filename="{filename}"'
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename, safe='')}"


def _safe_filename(name: str) -> str:
    # A label name may be a path ("css/main.css"); a browser saves only the last part.
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    kept = "".join(
        char
        for char in unicodedata.normalize("NFC", base)
        if unicodedata.category(char)[0] not in "CZ" or char == " "
    )
    kept = kept.replace('"', "").replace(";", "_").strip(" .")
    while len(kept.encode()) > _MAX_FILENAME:
        kept = kept[:-1]
    return kept
