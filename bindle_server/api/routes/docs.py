"""The API's own description (`/openapi.json`) and its viewers (`/docs`, `/redoc`).

They are served to whoever may read the registry: with anonymous read off, an anonymous
caller gets the same 401 challenge as on `/v1`, since the description names every route.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.responses import HTMLResponse, JSONResponse

from bindle_server.api.auth import Access, get_access
from bindle_server.auth.authn import REQUIRED

OPENAPI_PATH = "/openapi.json"


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


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    from fastapi.openapi.docs import get_swagger_ui_html

    return get_swagger_ui_html(openapi_url=_openapi_url(request), title=request.app.title)


@router.get("/redoc")
async def redoc(request: Request) -> HTMLResponse:
    from fastapi.openapi.docs import get_redoc_html

    return get_redoc_html(openapi_url=_openapi_url(request), title=request.app.title)
