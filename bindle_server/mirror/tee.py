"""Serve a parcel while it is stored: one upstream stream, read once, fed to a client and
to the parcel store at the same time."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable

import anyio

# Chunks buffered between the client's side and the store's. Small, so a slow disk slows
# the download (and a slow client slows the upstream) rather than filling memory.
_BUFFERED_CHUNKS = 8
# How long a cancelled fetch waits for the store to drop its temp file.
_CLEANUP_SECONDS = 10.0

Store = Callable[[AsyncIterable[bytes]], Awaitable[bool]]


async def tee_to_store(
    chunks: AsyncIterable[bytes], store: Store, start: int = 0, end: int | None = None
) -> AsyncIterator[bytes]:
    """Yield bytes `start` to `end` of `chunks` while `store` writes all of them.

    `store` verifies the stream (digest and size) and makes it visible only when every
    check passed. The last piece due to the caller is held back until `store` has
    finished: a client never receives a whole body whose bytes failed verification, it
    receives a short one and an error. An upstream that fails mid-stream, or a caller
    that goes away, leaves nothing stored.
    """
    send, receive = anyio.create_memory_object_stream[bytes](_BUFFERED_CHUNKS)

    async def write() -> bool:
        async with receive:
            return await store(receive)

    task = asyncio.create_task(write())
    held = b""
    position = 0
    try:
        async with send:
            async for chunk in chunks:
                try:
                    await send.send(chunk)
                except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                    break  # the store gave up (too many bytes): its error is raised below
                piece = _overlap(chunk, position, start, end)
                position += len(chunk)
                if piece:
                    if held:
                        yield held
                    held = piece
        await task
    finally:
        if not task.done():
            task.cancel()
            # Shielded, so that a cancelled request still lets the store remove its temp.
            with anyio.move_on_after(_CLEANUP_SECONDS, shield=True):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
    if held:
        yield held


def _overlap(chunk: bytes, position: int, start: int, end: int | None) -> bytes:
    """The part of `chunk` (which begins at `position`) that lies in [start, end)."""
    low = max(start - position, 0)
    high = len(chunk) if end is None else min(end - position, len(chunk))
    return chunk[low:high] if low < high else b""
