"""A minimal HTTP/1.1 keep-alive client for the concurrent phases.

httpx costs about a core per ~500 requests/s, which made the create/GET/fill figures a
measure of the client. This client sends pre-encoded request bytes and reads exactly
what a response with a Content-Length needs: the status line, the header block up to the
blank line, then Content-Length body bytes. Anything else (chunked, no Content-Length, a
status line that is not HTTP/1.1) stops the benchmark with a BenchError instead of being
guessed at.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Final

from bindle_bench.common import LOOPBACK, BenchError

REQUEST_TIMEOUT: Final = 60.0  # seconds per request in a phase: (re)connect, send, response
CONNECT_TIMEOUT: Final = 10.0  # seconds for opening the phase's connections before timing
MAX_RESPONSE_HEAD: Final = 64 * 1024  # bytes of status line plus headers
HEAD_END: Final = b"\r\n\r\n"


class TransportFailure(Exception):
    """One request failed on the wire (refused, reset, closed, timed out): counted as -1."""


class _ClosedBeforeResponse(Exception):
    """The connection ended before any byte of the response arrived."""


@dataclass(frozen=True, slots=True)
class RawResponse:
    status: int
    body: bytes

    def text(self, limit: int = 300) -> str:
        return self.body[:limit].decode(errors="replace")


def encode_request(
    method: str,
    target: str,
    port: int,
    body: bytes = b"",
    content_type: str | None = None,
    accept: str | None = None,
) -> bytes:
    """The complete bytes of one HTTP/1.1 request (keep-alive is HTTP/1.1's default)."""
    lines = [f"{method} {target} HTTP/1.1", f"Host: {LOOPBACK}:{port}"]
    if accept is not None:
        lines.append(f"Accept: {accept}")
    if content_type is not None:
        lines.append(f"Content-Type: {content_type}")
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + body


def parse_head(head: bytes) -> tuple[int, int, bool]:
    """Status, Content-Length and whether the server closes the connection, from the head.

    `head` is the status line and header lines including the final blank line.
    """
    status_line, _, header_block = head.partition(b"\r\n")
    version, _, rest = status_line.partition(b" ")
    code = rest[:3]
    if version != b"HTTP/1.1" or len(code) != 3 or not code.isdigit():
        raise BenchError(f"not an HTTP/1.1 status line: {status_line[:200]!r}")
    status = int(code)
    if status < 200:
        raise BenchError(f"unexpected interim response {status_line[:200]!r}")
    length = -1
    close = False
    for line in header_block.split(b"\r\n"):
        name, colon, value = line.partition(b":")
        if not colon:
            continue  # the blank line(s) at the end
        name = name.strip().lower()
        if name == b"content-length":
            value = value.strip()
            if not value.isdigit() or (length >= 0 and int(value) != length):
                raise BenchError(f"bad Content-Length in {head[:500]!r}")
            length = int(value)
        elif name == b"transfer-encoding":
            raise BenchError(
                f"response with Transfer-Encoding ({value.strip()[:50]!r}); this client "
                f"reads only Content-Length bodies: {head[:500]!r}"
            )
        elif name == b"connection":
            close = b"close" in value.lower()
    if length < 0:
        raise BenchError(f"response without Content-Length: {head[:500]!r}")
    return status, length, close


class RawConnection:
    """One keep-alive HTTP/1.1 connection to the server on 127.0.0.1, reopened when needed.

    Every request is bounded by `timeout` (reconnecting, sending and reading included).
    A request on a reused connection that the server closed while it was idle (EOF or a
    reset before any response byte) is sent once more on a new connection, as HTTP clients
    do; `retries` counts those.
    """

    def __init__(self, port: int, timeout: float = REQUEST_TIMEOUT) -> None:
        self._port = port
        self._timeout = timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._served = 0  # responses read on the current connection
        self.opened = 0  # connections opened, the first one included
        self.closed_by_server = 0  # `Connection: close` answers and idle connections closed
        self.retries = 0

    async def connect(self) -> None:
        self.drop()
        self._reader, self._writer = await asyncio.open_connection(
            LOOPBACK, self._port, limit=MAX_RESPONSE_HEAD
        )
        self._served = 0
        self.opened += 1

    def drop(self, graceful: bool = False) -> None:
        """Close the connection now, without waiting for anything.

        `graceful` flushes and sends FIN; otherwise the connection is aborted (its state is
        unknown after an error).
        """
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            if graceful:
                writer.close()
            else:
                writer.transport.abort()

    async def request(self, data: bytes) -> RawResponse:
        try:
            async with asyncio.timeout(self._timeout):
                return await self._request(data)
        except TimeoutError as exc:
            self.drop()
            raise TransportFailure(f"no complete response within {self._timeout:g} s") from exc
        except OSError as exc:
            self.drop()
            raise TransportFailure(f"{type(exc).__name__}: {exc}") from exc
        except BaseException:
            self.drop()  # the connection's state is unknown now (BenchError, cancellation)
            raise

    async def _request(self, data: bytes) -> RawResponse:
        if self._writer is None:
            await self.connect()
        reused = self._served > 0
        try:
            return await self._exchange(data)
        except _ClosedBeforeResponse as exc:
            self.drop()
            if not reused:
                raise TransportFailure(
                    f"a new connection closed before the response: {exc}"
                ) from exc
            self.closed_by_server += 1
            self.retries += 1
        await self.connect()
        try:
            return await self._exchange(data)
        except _ClosedBeforeResponse as exc:
            raise TransportFailure(f"connection closed before the response, twice: {exc}") from exc

    async def _exchange(self, data: bytes) -> RawResponse:
        reader, writer = self._reader, self._writer
        assert reader is not None and writer is not None
        try:
            writer.write(data)
            await writer.drain()
            head = await reader.readuntil(HEAD_END)
        except asyncio.IncompleteReadError as exc:
            if exc.partial:
                raise TransportFailure("connection closed inside the response head") from exc
            raise _ClosedBeforeResponse("EOF") from exc
        except ConnectionError as exc:
            raise _ClosedBeforeResponse(f"{type(exc).__name__}: {exc}") from exc
        except asyncio.LimitOverrunError as exc:
            raise BenchError(f"response head longer than {MAX_RESPONSE_HEAD} bytes") from exc
        status, length, close = parse_head(head)
        try:
            body = await reader.readexactly(length) if length else b""
        except asyncio.IncompleteReadError as exc:
            raise TransportFailure(
                f"connection closed after {len(exc.partial)} of {length} body bytes"
            ) from exc
        self._served += 1
        if close:
            self.closed_by_server += 1
            self.drop(graceful=True)
        return RawResponse(status, body)


@dataclass
class ConnectionPool:
    """The connections of one group of phases; one worker per connection."""

    connections: list[RawConnection]

    @classmethod
    async def open(cls, port: int, count: int) -> ConnectionPool:
        pool = cls([RawConnection(port) for _ in range(count)])
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                for connection in pool.connections:  # one at a time: none is left behind
                    await connection.connect()
        except (OSError, TimeoutError) as exc:
            pool.close()
            raise BenchError(f"cannot open {count} connections to port {port}: {exc!r}") from exc
        except BaseException:
            pool.close()
            raise
        return pool

    def close(self) -> None:
        for connection in self.connections:
            connection.drop(graceful=True)

    def counters(self) -> tuple[int, int, int]:
        """Connections opened, closed by the server, requests retried; totals so far."""
        return (
            sum(c.opened for c in self.connections),
            sum(c.closed_by_server for c in self.connections),
            sum(c.retries for c in self.connections),
        )
