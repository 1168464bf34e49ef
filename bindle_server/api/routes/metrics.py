"""`/metrics`: the Prometheus scrape, outside `/v1` where Prometheus looks for it.

Open on a server without authentication (which serves loopback only unless told
otherwise, and lets every caller do everything anyway). With authentication, the caller
needs the `metrics` verb: a policy rule grants it (to a token for Prometheus'
`authorization` setting, say); without a policy every authenticated caller has it.
Anonymous read never implies it.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from bindle_server.api.auth import AccessDep
from bindle_server.api.metrics import CONTENT_TYPE, Metrics
from bindle_server.auth import Verb

router = APIRouter(include_in_schema=False)


@router.get("/metrics")
async def metrics(request: Request, access: AccessDep) -> Response:
    access.require_any(Verb.METRICS)
    values: Metrics = request.app.state.metrics
    exposition = await values.exposition(request.app.state.service.index)
    return Response(exposition, media_type=CONTENT_TYPE)
