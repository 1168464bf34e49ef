"""The API's own description (`/openapi.json`) and its viewers (`/docs`, `/redoc`).

They are served to whoever may read the registry: with anonymous read off, an anonymous
caller gets the same 401 challenge as on `/v1`, since the description names every route.
The viewers load their scripts and styles from this server (`/docs/assets/`), never from
a CDN, so they work offline and the pages' Content-Security-Policy can say `'self'`.
"""

from __future__ import annotations

from html import escape
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.responses import HTMLResponse, JSONResponse

from bindle_server.api.auth import Access, get_access
from bindle_server.auth.authn import REQUIRED
from bindle_server.web.assets import asset_url

OPENAPI_PATH = "/openapi.json"

# The viewers' own policy, stricter than none but looser than the UI's: both inject style
# attributes and elements at run time, Swagger UI shows data: images, and ReDoc runs its
# search index in a worker it creates from a blob: URL. ReDoc's footer also asks for a
# logo from its CDN: `img-src` keeps that request from leaving the browser.
DOCS_CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "worker-src blob:",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "object-src 'none'",
    )
)
_DOCS_HEADERS = {
    "Content-Security-Policy": DOCS_CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="icon" type="image/png" href="{favicon}">
{head}
</head>
<body>
{body}
</body>
</html>
"""


async def _reader(access: Annotated[Access, Depends(get_access)]) -> None:
    setup = access.setup
    if access.identity.is_anonymous and not (
        setup.authorizer.open_access or setup.authorizer.anonymous_read
    ):
        raise setup.authenticator.refuse(REQUIRED)


router = APIRouter(include_in_schema=False, dependencies=[Depends(_reader)])


def _openapi_url(request: Request) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/") + OPENAPI_PATH


@router.get(OPENAPI_PATH)
async def openapi(request: Request) -> JSONResponse:
    return JSONResponse(request.app.openapi())


def _page(request: Request, title: str, head: str, body: str) -> HTMLResponse:
    root = str(request.scope.get("root_path", ""))
    page = _PAGE.format(
        title=escape(f"{request.app.title} - {title}"),
        favicon=escape(asset_url("favicon.png", root)),
        head=head,
        body=body,
    )
    return HTMLResponse(page, headers=_DOCS_HEADERS)


def _asset(request: Request, name: str) -> str:
    return escape(asset_url(name, str(request.scope.get("root_path", ""))))


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    # swagger-init.js reads the description's URL from the data attribute.
    body = (
        f'<div id="swagger-ui" data-openapi-url="{escape(_openapi_url(request))}"></div>\n'
        f'<script src="{_asset(request, "swagger-ui-bundle.js")}"></script>\n'
        f'<script src="{_asset(request, "swagger-init.js")}"></script>'
    )
    head = f'<link rel="stylesheet" href="{_asset(request, "swagger-ui.css")}">'
    return _page(request, "Swagger UI", head, body)


@router.get("/redoc")
async def redoc(request: Request) -> HTMLResponse:
    # ReDoc's standalone bundle starts itself on the <redoc> element, no script needed.
    body = (
        f'<redoc spec-url="{escape(_openapi_url(request))}"></redoc>\n'
        f'<script src="{_asset(request, "redoc.standalone.js")}"></script>'
    )
    return _page(request, "ReDoc", "", body)
