"""AsyncBindleClient: every Bindle v1 call over an asynchronous httpx client.

The same calls, checks and retry rules as BindleClient (built from the same `calls`);
file chunks are read and written through aiofiles so the event loop never blocks on disk.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import Protocol, Self, TypeVar

import aiofiles
import httpx

from bindle_server.client import calls, documents
from bindle_server.client.calls import Call, ClientConfig
from bindle_server.client.documents import CreatedInvoice, QueryPage
from bindle_server.client.errors import Addressed, ServerError, SizeMismatch, UnexpectedResponse
from bindle_server.client.files import TempBeside
from bindle_server.client.integrity import CHUNK, ParcelCheck, verify_sent_file
from bindle_server.client.progress import SILENT_TRANSFER, Transfer
from bindle_server.client.retry import RetryPolicy, retryable_status
from bindle_server.model import BindleId, Invoice, Label, dump_invoice
from bindle_server.signing import KeyRing

T = TypeVar("T")


class AsyncWritable(Protocol):
    """Where an async download may write: anything with an awaitable `write`."""

    def write(self, data: bytes, /) -> Awaitable[object]: ...


class AsyncBindleClient:
    """An asyncio client for one Bindle server; `async with` it or `await aclose()`.

    Takes the same arguments as BindleClient. Safe to share between concurrent tasks:
    push and pull run many transfers through one client.
    """

    def __init__(
        self,
        server_url: str = calls.DEFAULT_SERVER_URL,
        *,
        auth: httpx.Auth | None = None,
        insecure: bool = False,
        timeout: float = 60.0,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.config = ClientConfig(server_url, auth, insecure, timeout, retry or RetryPolicy())
        self._http = httpx.AsyncClient(
            base_url=self.config.base_url,
            auth=auth,
            verify=not insecure,
            timeout=timeout,
            headers=self.config.headers,
            follow_redirects=True,
            transport=transport,
            # Callers bound their own concurrency (push and pull: `concurrency`); a pool
            # limit below it would only make transfers queue into the pool timeout.
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=32),
        )

    @classmethod
    def from_config(
        cls, config: ClientConfig, transport: httpx.AsyncBaseTransport | None = None
    ) -> AsyncBindleClient:
        """A client with the settings of `config` (e.g. a BindleClient's)."""
        return cls(
            config.server_url,
            auth=config.auth,
            insecure=config.insecure,
            timeout=config.timeout,
            retry=config.retry,
            transport=transport,
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
        document = dump_invoice(invoice) if isinstance(invoice, Invoice) else invoice
        response = await self._send(calls.create_invoice(document))
        return documents.created_invoice(response.content)

    async def get_invoice(self, bindle_id: BindleId | str, *, yanked: bool = False) -> Invoice:
        """The stored invoice; with `yanked=True` a yanked one too (else BindleYanked)."""
        call = calls.get_invoice(calls.to_bindle_id(bindle_id), yanked)
        return documents.answered_invoice((await self._send(call)).content)

    async def yank_invoice(self, bindle_id: BindleId | str) -> None:
        """Yank a bindle: it stays readable only to those who ask for yanked bindles."""
        await self._send(calls.yank_invoice(calls.to_bindle_id(bindle_id)))

    async def missing_parcels(self, bindle_id: BindleId | str) -> list[Label]:
        """Labels of the invoice's parcels whose bytes the server does not have."""
        response = await self._send(calls.missing_parcels(calls.to_bindle_id(bindle_id)))
        return documents.missing_labels(response.content)

    # -- queries and keys -------------------------------------------------------------

    async def query(
        self,
        query: str | None = None,
        version: str | None = None,
        *,
        offset: int | None = None,
        limit: int | None = None,
        strict: bool | None = None,
        yanked: bool | None = None,
    ) -> QueryPage:
        """One page of invoices whose name matches `query` and whose version `version`."""
        call = calls.query(query, version, offset, limit, strict, yanked)
        return documents.query_page((await self._send(call)).content)

    async def iter_query(
        self,
        query: str | None = None,
        version: str | None = None,
        *,
        strict: bool | None = None,
        yanked: bool | None = None,
        page_size: int = 50,
    ) -> AsyncIterator[Invoice]:
        """Every matching invoice, fetching page after page until the server has no more."""
        page = await self.query(
            query, version, offset=0, limit=page_size, strict=strict, yanked=yanked
        )
        for _ in range(calls.page_bound(page, page_size)):
            for invoice in page.invoices:
                yield invoice
            if not page.more or not page.invoices:
                return
            page = await self.query(
                query,
                version,
                offset=page.next_offset,
                limit=page_size,
                strict=strict,
                yanked=yanked,
            )

    async def host_keys(
        self, roles: Iterable[str] | None = None, *, url: str | None = None
    ) -> KeyRing:
        """The server's public keys (`/bindle-keys`), e.g. to add to a keyring.

        `url` fetches them from another key server's full address instead.
        """
        return documents.keyring((await self._send(calls.host_keys(roles, url))).content)

    # -- parcels ----------------------------------------------------------------------

    async def parcel_exists(
        self, bindle_id: BindleId | str, sha256: str, *, yanked: bool = False
    ) -> bool:
        """Whether the server has the parcel's bytes (HEAD through the invoice)."""
        call = calls.parcel_exists(calls.to_bindle_id(bindle_id), calls.to_sha256(sha256), yanked)
        response = await self._with_retries(lambda: self._http_once(call), True, call.path)
        if response.status_code == 404:
            return False
        calls.raise_for_status(response, call.addressed)
        return True

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

        A path is streamed in chunks (memory stays flat) and retried like an idempotent
        call: a parcel is content-addressed, so a repeat cannot store anything else, and
        a 409 answer to a repeat means an earlier try stored it. A stream is sent once
        (with `size` as its Content-Length if given). `size` (the label's) is checked
        against a file before anything is sent; when the server refuses a file, the file
        itself is checked, so a corrupt local file is reported as DigestMismatch naming it.
        """
        bid, sha = calls.to_bindle_id(bindle_id), calls.to_sha256(sha256)
        path = calls.parcel_path(bid, sha)
        progress = transfer or SILENT_TRANSFER
        headers = {"Content-Type": "application/octet-stream"}
        if isinstance(source, bytes):
            attempts = 0

            async def from_bytes() -> httpx.Response:
                nonlocal attempts
                attempts += 1
                return await self._post_once(path, source, headers)

            response = await self._with_retries(from_bytes, True, path)
            progress.advance(len(source))
            if response.status_code != 409 or attempts == 1:
                # A 409 to a repeat means an earlier try stored it before its answer was lost.
                calls.raise_for_status(response, Addressed.PARCEL)
            return
        if not isinstance(source, Path):
            if size is not None:
                headers["Content-Length"] = str(size)
            body = _counted(source, progress)
            response = await self._with_retries(
                lambda: self._post_once(path, body, headers), False, path
            )
            calls.raise_for_status(response, Addressed.PARCEL)
            return
        actual = (await asyncio.to_thread(source.stat)).st_size
        if size is not None and actual != size:
            raise SizeMismatch(sha, size, actual, str(source))
        headers["Content-Length"] = str(actual)
        tries = 0
        check = ParcelCheck(sha, actual, str(source))

        async def from_file() -> httpx.Response:
            nonlocal tries, check
            tries += 1
            if tries > 1:
                progress.restart()
            check = ParcelCheck(sha, actual, str(source))
            return await self._post_once(path, _file_chunks(source, progress, check), headers)

        response = await self._with_retries(from_file, True, path)
        if response.status_code == 409 and tries > 1:
            return
        if response.status_code in (200, 400):
            refused = response.status_code == 400
            await asyncio.to_thread(verify_sent_file, source, check, refused)
        calls.raise_for_status(response, Addressed.PARCEL)

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

        Without `label`, the invoice is fetched first to learn the parcel's size. A path
        is written to a temporary file beside it and moved into place only once the
        bytes are verified: a mismatch raises DigestMismatch or SizeMismatch and leaves
        nothing behind. A broken connection is retried, resuming with a byte range.
        Returns the parcel's label.
        """
        bid, sha = calls.to_bindle_id(bindle_id), calls.to_sha256(sha256)
        if label is None:
            label = calls.listed_label(await self.get_invoice(bid, yanked=yanked), bid, sha)
        if isinstance(destination, Path):
            with TempBeside(destination) as temp:
                async with aiofiles.open(temp.path, "w+b") as file:

                    async def rewind() -> None:
                        await file.seek(0)
                        await file.truncate()

                    await self._download(bid, label, file.write, rewind, yanked, transfer)
                temp.commit()
        else:
            await self._download(bid, label, destination.write, None, yanked, transfer)
        return label

    # -- plumbing ---------------------------------------------------------------------

    async def _download(
        self,
        bid: BindleId,
        label: Label,
        write: Callable[[bytes], Awaitable[object]],
        rewind: Callable[[], Awaitable[None]] | None,
        yanked: bool,
        transfer: Transfer | None,
    ) -> None:
        sha = label.sha256
        path = calls.parcel_path(bid, sha)
        check = ParcelCheck(sha, label.size, f"parcel {sha} from {self.config.base_url}{path}")
        progress = transfer or SILENT_TRANSFER
        params = {"yanked": "true"} if yanked else {}

        async def attempt() -> None:
            headers = calls.parcel_download_headers(sha, check.count)
            async with self._http.stream("GET", path, params=params, headers=headers) as response:
                if response.status_code >= 400:
                    await response.aread()
                    calls.raise_for_status(response, Addressed.PARCEL)
                start = calls.resumed_at(response)
                if start != check.count:
                    if start != 0 or rewind is None:
                        raise UnexpectedResponse(f"{path}: cannot resume at byte {check.count}")
                    await rewind()
                    check.restart()
                    progress.restart()
                calls.check_declared_length(response, label, check.where)
                async for chunk in response.aiter_bytes(CHUNK):
                    check.update(chunk)
                    await write(chunk)
                    progress.advance(len(chunk))

        await self._with_retries(attempt, True, path)
        check.verify()

    async def _send(self, call: Call) -> httpx.Response:
        response = await self._with_retries(
            lambda: self._http_once(call), call.repeatable, call.path
        )
        calls.raise_for_status(response, call.addressed)
        return response

    async def _http_once(self, call: Call) -> httpx.Response:
        response = await self._http.request(
            call.method, call.path, params=call.params, content=call.content, headers=call.headers
        )
        if retryable_status(response.status_code):
            calls.raise_for_status(response, call.addressed)
        return response

    async def _post_once(
        self, path: str, body: bytes | AsyncIterator[bytes], headers: dict[str, str]
    ) -> httpx.Response:
        response = await self._http.post(path, content=body, headers=headers)
        if retryable_status(response.status_code):
            calls.raise_for_status(response, Addressed.PARCEL)
        return response

    async def _with_retries(
        self, attempt: Callable[[], Awaitable[T]], repeatable: bool, what: str
    ) -> T:
        """Await `attempt`, again after a pause on connection errors and 5xx if repeatable."""
        delays = self.config.retry.delays() if repeatable else iter(())
        tries = 0
        while True:
            tries += 1
            try:
                return await attempt()
            except httpx.TransportError as exc:
                failure: Exception = exc
            except ServerError as exc:
                if not retryable_status(exc.status):
                    raise
                failure = exc
            delay = next(delays, None)
            if delay is None:
                if isinstance(failure, httpx.TransportError):
                    url = self.config.base_url + what
                    raise calls.connection_failed(url, failure, tries) from failure
                raise failure
            await asyncio.sleep(delay)


async def _counted(chunks: AsyncIterable[bytes], transfer: Transfer) -> AsyncIterator[bytes]:
    async for chunk in chunks:
        transfer.advance(len(chunk))
        yield chunk


async def _file_chunks(path: Path, transfer: Transfer, check: ParcelCheck) -> AsyncIterator[bytes]:
    async with aiofiles.open(path, "rb") as file:
        while chunk := await file.read(CHUNK):
            check.update(chunk)
            transfer.advance(len(chunk))
            yield chunk
