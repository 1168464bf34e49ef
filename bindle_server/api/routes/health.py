"""`/healthz`: liveness, outside the `/v1` prefix as in the reference."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import JSONResponse

from bindle_server import __version__

router = APIRouter()


@router.get("/healthz", response_class=JSONResponse)
@router.head("/healthz", response_class=JSONResponse)
async def healthz() -> JSONResponse:
    """`{"status": "OK", "version": ...}` while the server can answer requests."""
    return JSONResponse({"status": "OK", "version": __version__})
