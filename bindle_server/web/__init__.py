"""The web UI: server-rendered pages for people, over the same service and access rules
as the API (`/v1`). It is one more thin layer: routes call the service, templates show
what they return, and nothing here changes what the API does."""

from __future__ import annotations

from fastapi import Depends, FastAPI

from bindle_server.web import assets, downloads, pages
from bindle_server.web.security import SecurityHeaders
from bindle_server.web.templating import mark_ui_request


def install_web(app: FastAPI) -> None:
    """Add the UI's routes and static assets to `app` (the API's own routes come first)."""
    # Marked as UI requests: their errors are HTML pages, not the API's TOML.
    ui = [Depends(mark_ui_request)]
    app.include_router(pages.router, dependencies=ui)
    app.include_router(downloads.router, dependencies=ui)
    app.include_router(assets.router, dependencies=ui)
    # Outermost, so that error pages and every other HTML answer carry the headers too.
    app.add_middleware(SecurityHeaders)
