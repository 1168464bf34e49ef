"""`/v1/login?provider=NAME`: start the OIDC device authorization flow (RFC 8628).

The answer is the device endpoint's RFC 8628 section 3.2 response plus `client_id` and
`token_url`, in TOML unless `Accept` asks for JSON, as the reference server answers.
The route needs no credentials: it is how a caller gets them. Like the reference, it is
a 400 when the server has no OIDC provider configured.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from bindle_server.api.auth import AuthSetup
from bindle_server.api.openapi import responses
from bindle_server.api.responses import document_response, response_format
from bindle_server.errors import InvalidQuery

router = APIRouter()

# The one provider this server supports, and the placeholder name the reference
# `bindle login` sends (it has a single provider too and ignores the parameter).
PROVIDERS = frozenset({"oidc", "nothing"})

_RESPONSES = responses(
    {200: "Device authorization: device_code, user_code, verification_uri, expires_in, "
     "interval, client_id, token_url"},
    (400, 502),
)  # fmt: skip
_PARAMETERS = {
    "parameters": [
        {
            "name": "provider",
            "in": "query",
            "required": True,
            "schema": {"type": "string", "enum": sorted(PROVIDERS)},
            "description": "The login provider: oidc (the reference client sends nothing)",
        }
    ]
}


@router.get("/login", responses=_RESPONSES, openapi_extra=_PARAMETERS)
async def login(request: Request) -> Response:
    """Start an OIDC device login: the caller shows the user the code and polls token_url."""
    setup: AuthSetup = request.app.state.auth
    params = request.query_params
    unknown = sorted({name for name in params if name != "provider"})
    if unknown:
        raise InvalidQuery(f"unknown query parameter(s) {', '.join(unknown)}")
    provider = params.get("provider")
    if not provider:
        raise InvalidQuery("login needs ?provider=oidc")
    if setup.oidc is None:
        raise InvalidQuery("login is not available: this server has no OIDC provider configured")
    if provider not in PROVIDERS:
        raise InvalidQuery(f"unknown login provider {provider!r}: this server supports oidc")
    details = await setup.oidc.start_device_flow()
    return document_response(request, details, response_format(request))
