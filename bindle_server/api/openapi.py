"""What the OpenAPI description says about bodies the routes build by hand.

Routes return TOML (default) or JSON documents and parcel bytes themselves, so FastAPI
cannot infer their responses, parameters or request bodies; these tables state them.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

_TEXT: dict[str, Any] = {"schema": {"type": "string"}}
DOCUMENT: dict[str, Any] = {
    "application/toml": _TEXT,
    "application/json": {"schema": {"type": "object"}},
}
ERROR_BODY: dict[str, Any] = {"application/toml": _TEXT}

_ERRORS = {
    400: "Malformed id, digest, document or parameter",
    401: "Credentials missing where required, or not valid (carries WWW-Authenticate)",
    403: "Access denied by the authorization policy, or the bindle is yanked "
    "(add ?yanked=true where allowed)",
    404: "Not stored",
    405: "Method not allowed on this path",
    408: "The request body stalled",
    409: "Already exists",
    413: "Over the server's size limits",
    416: "Range not satisfiable",
    422: "An invoice submitted as yanked",
    431: "Request headers too large",
    502: "The OIDC provider could not be reached or answered something unusable",
    507: "The server's disk is full",
}


class TomlResponse(Response):
    """The default response class, so undocumented responses are described as TOML."""

    media_type = "application/toml"


def responses(
    success: dict[int, str], errors: tuple[int, ...], content: dict[str, Any] | None = None
) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of a route: its successes with `content`, its errors as TOML."""
    table: dict[int | str, dict[str, Any]] = {
        status: {"description": text, "content": content or DOCUMENT}
        for status, text in success.items()
    }
    for status in (*errors, 431):
        table[status] = {"description": _ERRORS[status], "content": ERROR_BODY}
    return table


def query_parameters(*names: tuple[str, str, str]) -> dict[str, Any]:
    """`openapi_extra` documenting query parameters (name, JSON type, description)."""
    return {
        "parameters": [
            {"name": name, "in": "query", "required": False, "schema": {"type": kind},
             "description": text}
            for name, kind, text in names
        ]
    }  # fmt: skip


INVOICE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "The invoice, as TOML (or JSON with Content-Type: application/json)",
        "content": {"application/toml": _TEXT, "application/json": {"schema": {"type": "object"}}},
    }
}
PARCEL_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "The parcel's exact bytes",
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }
}
