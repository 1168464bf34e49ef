"""FastAPI dependencies as `Annotated` aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from bindle_server.config import Settings
from bindle_server.service import BindleService

# Dependencies are `async def` although they never await: FastAPI runs a plain `def`
# dependency in its thread pool, a thread hand-off on every request for a dict lookup.


async def get_service(request: Request) -> BindleService:
    service: BindleService = request.app.state.service
    return service


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


ServiceDep = Annotated[BindleService, Depends(get_service)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
