"""Retries: repeatable calls survive broken connections and 5xx, with bounded attempts;
a download cut off mid-way resumes with a byte range and is still verified."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from bindle_server.client import (
    AsyncBindleClient,
    BindleClient,
    ConnectionFailed,
    DigestMismatch,
    RetryPolicy,
    ServerError,
)
from tests.factories import make_invoice, parcel
from tests.servers import ServerProcess

FAST = RetryPolicy(attempts=4, backoff=0.01, max_delay=0.05, deadline=10)

Fault = Callable[[httpx.Request, int], httpx.Response | None]


class FaultyTransport(httpx.BaseTransport):
    """The real transport to the live server, with a fault injected per request."""

    def __init__(self, fault: Fault) -> None:
        self._real = httpx.HTTPTransport()
        self._fault = fault
        self.requests: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        injected = self._fault(request, len(self.requests))
        return injected if injected is not None else self._real.handle_request(request)

    def close(self) -> None:
        self._real.close()


class AsyncFaultyTransport(httpx.AsyncBaseTransport):
    """FaultyTransport for the async client."""

    def __init__(self, fault: Fault) -> None:
        self._real = httpx.AsyncHTTPTransport()
        self._fault = fault
        self.requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        injected = self._fault(request, len(self.requests))
        return injected if injected is not None else await self._real.handle_async_request(request)

    async def aclose(self) -> None:
        await self._real.aclose()


def _refuse_first(count: int) -> Fault:
    def fault(request: httpx.Request, number: int) -> httpx.Response | None:
        if number <= count:
            raise httpx.ConnectError("connection refused (injected)", request=request)
        return None

    return fault


def test_reads_are_retried_after_connection_errors_and_5xx(live_server: ServerProcess) -> None:
    doc = make_invoice("example.com/retry", "1.0.0")
    with BindleClient(live_server.url) as plain:
        plain.create_invoice(doc.toml())

    refusing = FaultyTransport(_refuse_first(2))
    with BindleClient(live_server.url, retry=FAST, transport=refusing) as client:
        assert client.get_invoice(doc.bindle_id).bindle.name == "example.com/retry"
    assert len(refusing.requests) == 3

    def unavailable_once(request: httpx.Request, number: int) -> httpx.Response | None:
        return httpx.Response(503, content=b'error = "busy"\n') if number == 1 else None

    busy = FaultyTransport(unavailable_once)
    with BindleClient(live_server.url, retry=FAST, transport=busy) as client:
        client.yank_invoice(doc.bindle_id)  # DELETE is repeatable: yanking twice is a no-op
    assert [r.method for r in busy.requests] == ["DELETE", "DELETE"]


def test_retries_are_bounded_in_attempts_and_time(live_server: ServerProcess) -> None:
    always = FaultyTransport(_refuse_first(1000))
    policy = RetryPolicy(attempts=3, backoff=0.01, max_delay=0.02, deadline=5)
    started = time.monotonic()
    with (
        BindleClient(live_server.url, retry=policy, transport=always) as client,
        pytest.raises(ConnectionFailed, match="after 3 tries"),
    ):
        client.get_invoice("example.com/none/1.0.0")
    assert len(always.requests) == 3
    assert time.monotonic() - started < 5

    def error_500(request: httpx.Request, number: int) -> httpx.Response | None:
        return httpx.Response(500, content=b'error = "internal server error"\n')

    failing = FaultyTransport(error_500)
    with (
        BindleClient(live_server.url, retry=policy, transport=failing) as client,
        pytest.raises(ServerError, match="internal server error"),
    ):
        client.query()
    assert len(failing.requests) == 3


def test_creating_an_invoice_is_never_repeated(live_server: ServerProcess) -> None:
    refusing = FaultyTransport(_refuse_first(1))
    with (
        BindleClient(live_server.url, retry=FAST, transport=refusing) as client,
        pytest.raises(ConnectionFailed, match="after 1 try"),
    ):
        client.create_invoice(make_invoice("example.com/once", "1.0.0").toml())
    assert len(refusing.requests) == 1


class _CutStream(httpx.SyncByteStream):
    """The first `keep` bytes of a response body, then a broken connection."""

    def __init__(self, inner: httpx.SyncByteStream, keep: int) -> None:
        self._inner = inner
        self._keep = keep

    def __iter__(self) -> Iterator[bytes]:
        sent = 0
        for chunk in self._inner:
            if sent + len(chunk) >= self._keep:
                yield chunk[: self._keep - sent]
                raise httpx.ReadError("connection reset (injected)")
            sent += len(chunk)
            yield chunk

    def close(self) -> None:
        self._inner.close()


class CuttingTransport(FaultyTransport):
    """Breaks the first parcel download after `keep` bytes."""

    def __init__(self, keep: int, fault: Fault = lambda request, number: None) -> None:
        super().__init__(fault)
        self._keep = keep
        self._cut = False

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if "@" in request.url.path and not self._cut:
            self._cut = True
            assert isinstance(response.stream, httpx.SyncByteStream)
            response.stream = _CutStream(response.stream, self._keep)
        return response


def test_a_broken_download_resumes_with_a_range_and_is_verified(
    live_server: ServerProcess,
) -> None:
    payload = parcel(bytes(range(256)) * 16384)  # 4 MiB
    doc = make_invoice("example.com/resume", "1.0.0", parcels=[payload])
    with BindleClient(live_server.url) as plain:
        plain.create_invoice(doc.toml())
        plain.upload_parcel(doc.bindle_id, payload.sha256, payload.data)

    cutting = CuttingTransport(keep=1_500_000)
    received = io.BytesIO()
    with BindleClient(live_server.url, retry=FAST, transport=cutting) as client:
        client.download_parcel(doc.bindle_id, payload.sha256, received)
    assert received.getvalue() == payload.data
    first, resumed = [r for r in cutting.requests if "@" in r.url.path]
    assert "range" not in first.headers
    # Chunks are handed over whole, so the resume starts at the last complete chunk.
    start = int(resumed.headers["range"].removeprefix("bytes=").removesuffix("-"))
    assert 0 < start <= 1_500_000
    assert resumed.headers["if-range"] == f'"{payload.sha256}"'


def test_a_resumed_download_with_wrong_bytes_still_fails_the_digest_check(
    live_server: ServerProcess,
) -> None:
    payload = parcel(bytes(range(256)) * 8192)  # 2 MiB
    doc = make_invoice("example.com/resume-bad", "1.0.0", parcels=[payload])
    with BindleClient(live_server.url) as plain:
        plain.create_invoice(doc.toml())
        plain.upload_parcel(doc.bindle_id, payload.sha256, payload.data)

    def flip_resumed_bytes(request: httpx.Request, number: int) -> httpx.Response | None:
        if request.headers.get("range"):
            start = int(request.headers["range"].removeprefix("bytes=").rstrip("-"))
            body = bytes(len(payload.data) - start)  # zeros instead of the real tail
            return httpx.Response(
                206,
                content=body,
                headers={"Content-Range": f"bytes {start}-{payload.size - 1}/{payload.size}"},
            )
        return None

    cutting = CuttingTransport(keep=1_500_000, fault=flip_resumed_bytes)
    with (
        BindleClient(live_server.url, retry=FAST, transport=cutting) as client,
        pytest.raises(DigestMismatch),
    ):
        client.download_parcel(doc.bindle_id, payload.sha256, io.BytesIO())


class _LoseFirstUploadAnswer(FaultyTransport):
    """Delivers the first parcel upload to the server, then loses its answer."""

    def __init__(self) -> None:
        super().__init__(lambda request, number: None)
        self._lost = False

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if request.method == "POST" and "@" in request.url.path and not self._lost:
            self._lost = True
            response.read()
            raise httpx.ReadError("answer lost (injected)", request=request)
        return response


@pytest.mark.parametrize("as_path", [False, True])
def test_an_upload_whose_answer_was_lost_succeeds_on_the_409_of_its_retry(
    live_server: ServerProcess, tmp_path: Path, as_path: bool
) -> None:
    payload = parcel(b"stored on the first try")
    doc = make_invoice("example.com/lost-answer", "1.0.0", parcels=[payload])
    transport = _LoseFirstUploadAnswer()
    with BindleClient(live_server.url, retry=FAST, transport=transport) as client:
        client.create_invoice(doc.toml())
        source: bytes | Path = payload.data
        if as_path:
            source = tmp_path / "parcel.bin"
            source.write_bytes(payload.data)
        client.upload_parcel(doc.bindle_id, payload.sha256, source)  # no ParcelExists
    uploads = [r for r in transport.requests if r.method == "POST" and "@" in r.url.path]
    assert len(uploads) == 2


def test_both_clients_retry_a_parcel_check_as_the_call_allows(live_server: ServerProcess) -> None:
    # The clients once differed here: one retried `parcel_exists` because it said so
    # itself, the other because the call is repeatable. Both now follow the call.
    payload = parcel(b"stored before the check")
    doc = make_invoice("example.com/exists", "1.0.0", parcels=[payload])
    with BindleClient(live_server.url) as plain:
        plain.create_invoice(doc.toml())
        plain.upload_parcel(doc.bindle_id, payload.sha256, payload.data)

    def busy_once(request: httpx.Request, number: int) -> httpx.Response | None:
        return httpx.Response(503, content=b'error = "busy"\n') if number == 1 else None

    sync = FaultyTransport(busy_once)
    with BindleClient(live_server.url, retry=FAST, transport=sync) as client:
        assert client.parcel_exists(doc.bindle_id, payload.sha256)

    concurrent = AsyncFaultyTransport(busy_once)

    async def check() -> bool:
        async with AsyncBindleClient(live_server.url, retry=FAST, transport=concurrent) as client:
            return await client.parcel_exists(doc.bindle_id, payload.sha256)

    assert asyncio.run(check())
    assert [r.method for r in sync.requests] == [r.method for r in concurrent.requests]
    assert [r.method for r in sync.requests] == ["HEAD", "HEAD"]
