"""Response bodies: TOML or JSON chosen by `Accept`, as the reference server chooses."""

from __future__ import annotations

from fastapi import Request
from starlette.responses import Response

from bindle_server.model import Document, Format, dump_document


def negotiate(accept: str | None) -> Format:
    """The first `Accept` entry whose subtype is toml or json wins; anything else is TOML.

    `q=` weights are ignored and a `+suffix` does not count, exactly as the reference
    reads the header (BINDLE-PROTOCOL.md section 1).
    """
    for entry in (accept or "").split(","):
        media_range = entry.split(";", 1)[0].strip().lower()
        _, _, subtype = media_range.partition("/")
        subtype = subtype.split("+", 1)[0]
        if subtype == "toml":
            return Format.TOML
        if subtype == "json":
            return Format.JSON
    return Format.TOML


def response_format(request: Request) -> Format:
    return negotiate(request.headers.get("accept"))


def document_response(
    request: Request, document: Document, fmt: Format, status: int = 200
) -> Response:
    """A TOML or JSON document; HEAD gets the same headers and no body."""
    return encoded_response(request, dump_document(document, fmt), fmt, status)


def encoded_response(request: Request, body: bytes, fmt: Format, status: int = 200) -> Response:
    """A document already encoded in `fmt`; HEAD gets the same headers and no body."""
    if request.method == "HEAD":
        return Response(
            status_code=status,
            media_type=fmt.media_type,
            headers={"Content-Length": str(len(body))},
        )
    return Response(body, status_code=status, media_type=fmt.media_type)
