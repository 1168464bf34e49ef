"""Request bodies with limits: a size cap for documents, a stall timeout for every body."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
from fastapi import Request

from bindle_server.errors import BodyTimeout, PayloadTooLarge


async def stream_body(request: Request, stall_seconds: float) -> AsyncIterator[bytes]:
    """The body's chunks; BodyTimeout when no chunk arrives for `stall_seconds`.

    A client that stalls mid-upload would otherwise hold its temp file (and a worker
    thread's attention) forever; failing the request lets the store discard it.
    """
    chunks = request.stream().__aiter__()
    while True:
        try:
            with anyio.fail_after(stall_seconds):
                chunk = await chunks.__anext__()
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise BodyTimeout(stall_seconds) from None
        if chunk:
            yield chunk


async def read_body(request: Request, limit: int, stall_seconds: float, what: str) -> bytes:
    """The whole body, refused with 413 as soon as it is known to pass `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"{what} too large: {declared} bytes, the limit is {limit}")
    body = bytearray()
    async for chunk in stream_body(request, stall_seconds):
        body += chunk
        if len(body) > limit:
            raise PayloadTooLarge(f"{what} too large: over {limit} bytes")
    return bytes(body)
