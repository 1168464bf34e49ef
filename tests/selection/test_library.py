"""The client library: `resolve()` and `download_archive()` on both clients, live."""

from __future__ import annotations

import asyncio
import tarfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from bindle_server.client import (
    AsyncBindleClient,
    BadRequest,
    BindleClient,
    InvalidInput,
    Resolution,
    RetryPolicy,
)
from bindle_server.model import Invoice
from tests.selection.conftest import publish_live
from tests.selection.invoices import multi_platform
from tests.servers import ServerProcess

FAST = RetryPolicy(attempts=4, backoff=0.01, max_delay=0.05, deadline=10)


class _CutArchive(httpx.BaseTransport):
    """The real transport, except that the first archive body breaks after `keep` bytes."""

    def __init__(self, keep: int) -> None:
        self._real = httpx.HTTPTransport()
        self._keep = keep
        self.archive_requests: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self._real.handle_request(request)
        if "/_r/archive/" in request.url.path:
            self.archive_requests.append(request)
            if len(self.archive_requests) == 1:
                assert isinstance(response.stream, httpx.SyncByteStream)
                response.stream = _Cut(response.stream, self._keep)
        return response

    def close(self) -> None:
        self._real.close()


class _Cut(httpx.SyncByteStream):
    def __init__(self, inner: httpx.SyncByteStream, keep: int) -> None:
        self._inner, self._keep = inner, keep

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


class _AsyncCutArchive(httpx.AsyncBaseTransport):
    """_CutArchive for the async client."""

    def __init__(self, keep: int) -> None:
        self._real = httpx.AsyncHTTPTransport()
        self._keep = keep
        self.archive_requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._real.handle_async_request(request)
        if "/_r/archive/" in request.url.path:
            self.archive_requests.append(request)
            if len(self.archive_requests) == 1:
                assert isinstance(response.stream, httpx.AsyncByteStream)
                response.stream = _AsyncCut(response.stream, self._keep)
        return response

    async def aclose(self) -> None:
        await self._real.aclose()


class _AsyncCut(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream, keep: int) -> None:
        self._inner, self._keep = inner, keep

    async def __aiter__(self) -> AsyncIterator[bytes]:
        sent = 0
        async for chunk in self._inner:
            if sent + len(chunk) >= self._keep:
                yield chunk[: self._keep - sent]
                raise httpx.ReadError("connection reset (injected)")
            sent += len(chunk)
            yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()


def test_resolve_on_both_clients_returns_the_typed_selection(live_server: ServerProcess) -> None:
    bindle = publish_live(live_server, multi_platform())
    with BindleClient(live_server.url) as client:
        resolution = client.resolve(bindle.bindle_id, groups=["windows-amd64"])
        assert isinstance(resolution, Resolution)
        assert [label.name for label in resolution.labels] == [
            "README.md",
            "LICENSE",
            "bin/windows-amd64/tool.exe",
        ]
        assert resolution.chosen == {"binary": bindle.part("bin/windows-amd64/tool.exe").sha256}
        assert "binary" in resolution.groups
        assert resolution.size == sum(label.size for label in resolution.labels)
        with pytest.raises(BadRequest, match=r"unsatisfiable selection \(oneOf\)"):
            client.resolve(bindle.bindle_id, groups=["linux-amd64", "windows-amd64"])
        with pytest.raises(InvalidInput, match="cannot contain ','"):
            client.resolve(bindle.bindle_id, groups=["a,b"])

    async def resolve_async() -> Resolution:
        async with AsyncBindleClient(live_server.url) as client:
            return await client.resolve(
                bindle.bindle_id, features=["platform.os=linux", "platform.arch=arm64"]
            )

    arm = asyncio.run(resolve_async())
    assert "bin/linux-arm64/tool" in [label.name for label in arm.labels]


def test_download_archive_on_both_clients_gives_the_same_verified_bytes(
    live_server: ServerProcess, tmp_path: Path
) -> None:
    bindle = publish_live(live_server, multi_platform())
    checked: list[Invoice] = []
    with BindleClient(live_server.url) as client:
        report = client.download_archive(
            bindle.bindle_id, tmp_path / "sync.tar", groups=["docs"], check=checked.append
        )
    assert report.size == (tmp_path / "sync.tar").stat().st_size and report.resumed == 0
    assert [invoice.bindle_id.key for invoice in checked] == [bindle.invoice().bindle_id.key]

    async def download() -> None:
        async with AsyncBindleClient(live_server.url) as client:
            await client.download_archive(bindle.bindle_id, tmp_path / "async.tar", groups=["docs"])

    asyncio.run(download())
    assert (tmp_path / "async.tar").read_bytes() == (tmp_path / "sync.tar").read_bytes()
    with tarfile.open(tmp_path / "sync.tar") as archive:
        assert "docs/manual.html" in archive.getnames()


def test_broken_archive_download_resumes_with_range_and_if_range(
    live_server: ServerProcess, tmp_path: Path
) -> None:
    bindle = publish_live(live_server, multi_platform())
    whole = httpx.get(f"{live_server.url}/_r/archive/{bindle.bindle_id}")
    cutting = _CutArchive(keep=2500)
    with BindleClient(live_server.url, retry=FAST, transport=cutting) as client:
        client.download_archive(bindle.bindle_id, tmp_path / "tool.tar")
    assert (tmp_path / "tool.tar").read_bytes() == whole.content
    first, resumed = cutting.archive_requests
    assert "range" not in first.headers
    assert resumed.headers["range"] == "bytes=2500-"
    assert resumed.headers["if-range"] == whole.headers["etag"]


def test_broken_async_archive_download_resumes_too(
    live_server: ServerProcess, tmp_path: Path
) -> None:
    bindle = publish_live(live_server, multi_platform())
    whole = httpx.get(f"{live_server.url}/_r/archive/{bindle.bindle_id}")
    cutting = _AsyncCutArchive(keep=1800)

    async def download() -> None:
        async with AsyncBindleClient(live_server.url, retry=FAST, transport=cutting) as client:
            await client.download_archive(bindle.bindle_id, tmp_path / "tool.tar")

    asyncio.run(download())
    assert (tmp_path / "tool.tar").read_bytes() == whole.content
    assert cutting.archive_requests[1].headers["range"] == "bytes=1800-"


def test_part_already_complete_answered_416_is_downloaded_again(
    live_server: ServerProcess, tmp_path: Path
) -> None:
    # A run that died between the last byte and the rename leaves a whole part: its range
    # starts past the end (416), so the archive is fetched again rather than trusted.
    bindle = publish_live(live_server, multi_platform())
    whole = httpx.get(f"{live_server.url}/_r/archive/{bindle.bindle_id}")
    (tmp_path / "tool.tar.part").write_bytes(whole.content)
    (tmp_path / "tool.tar.part.etag").write_text(whole.headers["etag"])
    with BindleClient(live_server.url) as client:
        report = client.download_archive(bindle.bindle_id, tmp_path / "tool.tar")
    assert report.resumed == 0
    assert (tmp_path / "tool.tar").read_bytes() == whole.content
    assert sorted(path.name for path in tmp_path.glob("tool.tar*")) == ["tool.tar"]
