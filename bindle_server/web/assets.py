"""`/docs/assets/FILE`: the scripts and styles of Swagger UI and ReDoc, served by this
server so that `/docs` and `/redoc` work without reaching any other host.

The viewers' files come from the fastapi-offline distribution (its package data only);
`swagger-init.js`, which starts Swagger UI without an inline script, is ours. Only these
names are served, so a request cannot reach any other file.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import metadata, resources
from importlib.resources.abc import Traversable
from pathlib import Path

from fastapi import APIRouter
from starlette.exceptions import HTTPException
from starlette.responses import FileResponse, Response

from bindle_server import __version__
from bindle_server.threads import run_sync

ASSETS_PATH = "/docs/assets"
_JS = "text/javascript; charset=utf-8"
_CSS = "text/css; charset=utf-8"
# Every URL carries the versions of both packages (`?v=`), so a new release is a new URL
# and the old files may be cached for as long as browsers keep anything.
_CACHE = "public, max-age=31536000, immutable"


@dataclass(frozen=True)
class _Asset:
    package: str
    name: str
    media_type: str

    @property
    def resource(self) -> Traversable:
        return resources.files(self.package).joinpath("static", self.name)


_ASSETS = {
    asset.name: asset
    for asset in (
        _Asset("fastapi_offline", "swagger-ui-bundle.js", _JS),
        _Asset("fastapi_offline", "swagger-ui.css", _CSS),
        _Asset("fastapi_offline", "redoc.standalone.js", _JS),
        _Asset("fastapi_offline", "favicon.png", "image/png"),
        _Asset("bindle_server.web", "swagger-init.js", _JS),
    )
}

router = APIRouter(include_in_schema=False)


@functools.cache
def _cache_key() -> str:
    return f"{metadata.version('fastapi-offline')}-{__version__}"


def asset_url(name: str, root_path: str = "") -> str:
    """The URL of one of the viewers' assets, with its cache key."""
    if name not in _ASSETS:
        raise ValueError(f"no docs asset named {name!r}")
    return f"{root_path.rstrip('/')}{ASSETS_PATH}/{name}?v={_cache_key()}"


@router.get(ASSETS_PATH + "/{name}")
@router.head(ASSETS_PATH + "/{name}")
async def docs_asset(name: str) -> Response:
    """One of the known assets; anything else (another name, a path) is 404."""
    asset = _ASSETS.get(name)
    if asset is None:
        raise HTTPException(404, f"no docs asset named {name!r}")
    headers = {"Cache-Control": _CACHE, "X-Content-Type-Options": "nosniff"}
    resource = asset.resource
    if isinstance(resource, Path):
        return FileResponse(resource, media_type=asset.media_type, headers=headers)
    # Installed in a zip: read it in a worker thread (the largest is 1.5 MB).
    content = await run_sync(resource.read_bytes)
    return Response(content, media_type=asset.media_type, headers=headers)
