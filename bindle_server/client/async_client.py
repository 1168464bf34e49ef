"""AsyncBindleClient: every Bindle v1 call over an asynchronous httpx client.

The same calls, checks and retry rules as BindleClient, decided once in `calls`,
`retry` and `transfers`; only the I/O is here, and file chunks are read and written
through aiofiles so the event loop never blocks on disk.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import Protocol, Self, TypeVar, Unpack

import aiofiles
import httpx

from bindle_server.client import calls, selection
from bindle_server.client.calls import Call, PagingOptions, QueryOptions
from bindle_server.client.config import ClientBase
from bindle_server.client.documents import CreatedInvoice, QueryPage
from bindle_server.client.errors import Addressed
from bindle_server.client.files import TempBeside
from bindle_server.client.integrity import CHUNK, blame_local_file
from bindle_server.client.progress import Progress, Transfer
from bindle_server.client.retry import RETRIED, RetrySchedule
from bindle_server.client.selection import ArchiveReport, Resolution
from bindle_server.client.transfers import ParcelDownload, ParcelUpload, UploadOutcome
from bindle_server.model import BindleId, Invoice, Label
from bindle_server.signing import KeyRing

T = TypeVar("T")


class AsyncWritable(Protocol):
    """Where an async download may write: anything with an awaitable `write`."""

    def write(self, data: bytes, /) -> Awaitable[object]: ...


class AsyncBindleClient(ClientBase[httpx.AsyncBaseTransport]):
    """An asyncio client for one Bindle server; `async with` it or `await aclose()`.

    Takes the same arguments as BindleClient (with an async `transport`). Safe to share
    between concurrent tasks: push and pull run many transfers through one client.
    """

    def _connect(self, transport: httpx.AsyncBaseTransport | None) -> None:
        self._http = httpx.AsyncClient(
            transport=transport,
            # Callers bound their own concurrency (push and pull: `concurrency`); a pool
            # limit below it would only make transfers queue into the pool timeout.
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=32),
            **self.config.http_options(),
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connections."""
        await self._http.aclose()

    # -- invoices ---------------------------------------------------------------------

    async def create_invoice(self, invoice: Invoice | bytes) -> CreatedInvoice:
        """Store a new invoice; the answer lists the parcels the server does not have yet.

        Raises InvoiceExists when the bindle id is taken (invoices are immutable).
        Not retried: a repeat after a lost answer would meet the invoice it stored.
        """
        return await self._call(calls.create_invoice(invoice))

    async def get_invoice(self, bindle_id: BindleId | str, *, yanked: bool = False) -> Invoice:
        """The stored invoice; with `yanked=True` a yanked one too (else BindleYanked)."""
        return await self._call(calls.get_invoice(bindle_id, yanked))

    async def yank_invoice(self, bindle_id: BindleId | str) -> None:
        """Yank a bindle: it stays readable only to those who ask for yanked bindles."""
        await self._call(calls.yank_invoice(bindle_id))

    async def missing_parcels(self, bindle_id: BindleId | str) -> list[Label]:
        """Labels of the invoice's parcels whose bytes the server does not have."""
        return await self._call(calls.missing_parcels(bindle_id))

    # -- selections of groups and features ----------------------------------------------

    async def resolve(
        self,
        bindle_id: BindleId | str,
        *,
        groups: Iterable[str] = (),
        features: Iterable[str] = (),
        yanked: bool = False,
    ) -> Resolution:
        """The labels the server says a selection needs (see BindleClient.resolve)."""
        return await self._call(selection.resolve(bindle_id, groups, features, yanked))

    async def download_archive(
        self,
        bindle_id: BindleId | str,
        destination: Path,
        *,
        groups: Iterable[str] = (),
        features: Iterable[str] = (),
        yanked: bool = False,
        progress: Progress | None = None,
        check: Callable[[Invoice], None] | None = None,
    ) -> ArchiveReport:
        """Save the tar of a selection, resumably (see BindleClient.download_archive)."""
        download = selection.ArchiveDownload(
            bindle_id,
            destination,
            groups=groups,
            features=features,
            yanked=yanked,
            api_root=self.config.base_url,
            progress=progress,
        )
        await asyncio.to_thread(download.load)

        async def attempt() -> None:
            async with self._http.stream(
                "GET", download.path, params=download.params, headers=download.headers()
            ) as response:
                if response.status_code >= 400:
                    await response.aread()
                restart = download.begin(response)
                if restart:
                    await asyncio.to_thread(download.forget_tag)
                async with aiofiles.open(download.part, "wb" if restart else "ab") as file:
                    if restart:
                        await asyncio.to_thread(download.keep_tag)
                    # As they arrive, so that a broken connection loses none of them.
                    async for chunk in response.aiter_bytes():
                        await file.write(download.received(chunk))
            download.check_complete()

        schedule = self.config.schedule(True, download.path)
        try:
            try:
                await self._with_retries(attempt, schedule)
            except selection.StalePart:
                await self._with_retries(attempt, schedule)
        finally:
            download.close()
        await asyncio.to_thread(download.verify, check)
        return await asyncio.to_thread(download.save)

    # -- queries and keys -------------------------------------------------------------

    async def query(
        self, query: str | None = None, version: str | None = None, **options: Unpack[QueryOptions]
    ) -> QueryPage:
        """One page of invoices whose name matches `query` and whose version `version`.

        Options: `offset` and `limit` (the page), `strict` name matching, `yanked`.
        """
        return await self._call(calls.query(query, version, **options))

    async def iter_query(
        self, query: str | None = None, version: str | None = None, **options: Unpack[PagingOptions]
    ) -> AsyncIterator[Invoice]:
        """Every matching invoice, for `async for`; pages are fetched as they are needed.

        Options: `strict` name matching, `yanked`, and `page_size` (50).
        """
        paging = calls.QueryPaging(query, version, **options)
        while (call := paging.next()) is not None:
            for invoice in paging.took(await self._call(call)):
                yield invoice

    async def host_keys(
        self, roles: Iterable[str] | None = None, *, url: str | None = None
    ) -> KeyRing:
        """The server's public keys (`/bindle-keys`), e.g. to add to a keyring.

        `url` fetches them from another key server's full address instead.
        """
        return await self._call(calls.host_keys(roles, url))

    # -- parcels ----------------------------------------------------------------------

    async def parcel_exists(
        self, bindle_id: BindleId | str, sha256: str, *, yanked: bool = False
    ) -> bool:
        """Whether the server has the parcel's bytes (HEAD through the invoice)."""
        return await self._call(calls.parcel_exists(bindle_id, sha256, yanked))

    async def upload_parcel(
        self,
        bindle_id: BindleId | str,
        sha256: str,
        source: Path | bytes | AsyncIterable[bytes],
        *,
        size: int | None = None,
        transfer: Transfer | None = None,
    ) -> None:
        """Upload a parcel's bytes from a file path, bytes or an async stream of chunks.

        Sent, retried and checked as by BindleClient.upload_parcel; file chunks are read
        through aiofiles, so the event loop never waits on the disk.
        """
        upload = ParcelUpload(bindle_id, sha256, transfer)
        if isinstance(source, Path):
            actual = (await asyncio.to_thread(source.stat)).st_size
            upload.from_file(str(source), actual, size)
        body = _body(upload, source, size)
        schedule = self.config.schedule(upload.repeatable, upload.path)
        response = await self._with_retries(lambda: self._post(upload, body()), schedule)
        if isinstance(source, Path) and upload.outcome(response) is UploadOutcome.BLAME_FILE:
            await asyncio.to_thread(blame_local_file, source, upload.sha256)
        upload.finish(response, self.config.base_url)

    async def download_parcel(
        self,
        bindle_id: BindleId | str,
        sha256: str,
        destination: Path | AsyncWritable,
        *,
        label: Label | None = None,
        yanked: bool = False,
        transfer: Transfer | None = None,
    ) -> Label:
        """Download a parcel to a path or an async writable, verifying its sha256 and size.

        As BindleClient.download_parcel: a path gets its bytes only once they are
        verified, and a broken connection is resumed with a byte range. Returns the
        parcel's label.
        """
        bid, sha = calls.to_bindle_id(bindle_id), calls.to_sha256(sha256)
        if label is None:
            label = calls.listed_label(await self.get_invoice(bid, yanked=yanked), bid, sha)
        download = ParcelDownload(
            bid,
            label,
            yanked=yanked,
            api_root=self.config.base_url,
            rewindable=isinstance(destination, Path),
            transfer=transfer,
        )
        if not isinstance(destination, Path):
            await self._download(download, destination.write, None)
            return label
        with TempBeside(destination) as temp:
            async with aiofiles.open(temp.path, "w+b") as file:

                async def rewind() -> None:
                    await file.seek(0)
                    await file.truncate()

                await self._download(download, file.write, rewind)
            temp.commit()
        return label

    # -- plumbing: the asynchronous I/O -------------------------------------------------

    async def _call(self, call: Call[T]) -> T:
        schedule = self.config.schedule(call.repeatable, call.path)
        response = await self._with_retries(lambda: self._request(call), schedule)
        return call.outcome(response, self.config.base_url)

    async def _request(self, call: Call[T]) -> httpx.Response:
        response = await self._http.request(
            call.method, call.path, params=call.params, content=call.content, headers=call.headers
        )
        calls.raise_if_transient(response, call.addressed, self.config.base_url)
        return response

    async def _post(
        self, upload: ParcelUpload, body: bytes | AsyncIterator[bytes]
    ) -> httpx.Response:
        upload.next_try()
        response = await self._http.post(upload.path, content=body, headers=upload.headers)
        calls.raise_if_transient(response, Addressed.PARCEL, self.config.base_url)
        return response

    async def _download(
        self,
        download: ParcelDownload,
        write: Callable[[bytes], Awaitable[object]],
        rewind: Callable[[], Awaitable[None]] | None,
    ) -> None:
        async def attempt() -> None:
            headers = download.headers()
            async with self._http.stream(
                "GET", download.path, params=download.params, headers=headers
            ) as response:
                if response.status_code >= 400:
                    await response.aread()
                if download.begin(response) and rewind is not None:
                    await rewind()
                async for chunk in response.aiter_bytes(CHUNK):
                    await write(download.received(chunk))

        await self._with_retries(attempt, self.config.schedule(True, download.path))
        download.finish()

    async def _with_retries(
        self, attempt: Callable[[], Awaitable[T]], schedule: RetrySchedule
    ) -> T:
        """Await `attempt` until it succeeds or `schedule` gives up (it raises then)."""
        while True:
            try:
                return await attempt()
            except RETRIED as failure:
                await asyncio.sleep(schedule.after(failure))


def _body(
    upload: ParcelUpload, source: Path | bytes | AsyncIterable[bytes], size: int | None
) -> Callable[[], bytes | AsyncIterator[bytes]]:
    """What each try sends: a new read of a file, the same bytes, or the one stream."""
    if isinstance(source, Path):
        return lambda: _file_chunks(source, upload)
    if isinstance(source, bytes):
        data = upload.from_bytes(source)
        return lambda: data
    upload.from_stream(size)
    chunks = _sent(source, upload)
    return lambda: chunks


async def _sent(chunks: AsyncIterable[bytes], upload: ParcelUpload) -> AsyncIterator[bytes]:
    async for chunk in chunks:
        yield upload.sent(chunk)


async def _file_chunks(path: Path, upload: ParcelUpload) -> AsyncIterator[bytes]:
    async with aiofiles.open(path, "rb") as file:
        while chunk := await file.read(CHUNK):
            yield upload.sent(chunk)
