"""FastAPI dependencies as `Annotated` aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from bindle_server.service import BindleService


def get_service(request: Request) -> BindleService:
    service: BindleService = request.app.state.service
    return service


ServiceDep = Annotated[BindleService, Depends(get_service)]
