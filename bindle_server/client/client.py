"""BindleClient: every Bindle v1 call over a blocking httpx client.

Uploads stream from disk and downloads stream to disk in 1 MiB chunks, so memory does
not grow with parcel size; every download is checked against its label's sha256 and
size. Calls that may be repeated are retried on connection errors and 5xx answers.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Self, TypeVar

import httpx

from bindle_server.client import calls, documents, fetch, push
from bindle_server.client.async_client import AsyncBindleClient
from bindle_server.client.calls import Call, ClientConfig
from bindle_server.client.concurrency import DEFAULT_CONCURRENCY
from bindle_server.client.documents import CreatedInvoice, QueryPage
from bindle_server.client.errors import (
    Addressed,
    ServerError,
    SizeMismatch,
    UnexpectedResponse,
)
from bindle_server.client.fetch import BindleDirectory, FetchReport, InvoiceCheck
from bindle_server.client.files import TempBeside
from bindle_server.client.integrity import CHUNK, ParcelCheck, file_chunks, verify_sent_file
from bindle_server.client.progress import SILENT_TRANSFER, Progress, Transfer
from bindle_server.client.push import PushReport
from bindle_server.client.retry import RetryPolicy, retryable_status
from bindle_server.model import BindleId, Invoice, Label, dump_invoice
from bindle_server.signing import KeyRing

T = TypeVar("T")
ParcelSource = Path | bytes | BinaryIO
ParcelTarget = Path | BinaryIO


class BindleClient:
    """A blocking client for one Bindle server; use it as a context manager or `close()` it.

    `server_url` is the API root, e.g. `http://127.0.0.1:8080/v1/`. `auth` is any httpx
    auth (`httpx.BasicAuth(user, password)`, `BearerToken(token)`); `insecure` skips TLS
    certificate checks.
    """

    def __init__(
        self,
        server_url: str = calls.DEFAULT_SERVER_URL,
        *,
        auth: httpx.Auth | None = None,
        insecure: bool = False,
        timeout: float = 60.0,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.config = ClientConfig(server_url, auth, insecure, timeout, retry or RetryPolicy())
        self._http = httpx.Client(
            base_url=self.config.base_url,
            auth=auth,
            verify=not insecure,
            timeout=timeout,
            headers=self.config.headers,
            follow_redirects=True,
            transport=transport,
        )

    @classmethod
    def from_config(
        cls, config: ClientConfig, transport: httpx.BaseTransport | None = None
    ) -> BindleClient:
        """A client with the settings of `config` (e.g. an AsyncBindleClient's)."""
        return cls(
            config.server_url,
            auth=config.auth,
            insecure=config.insecure,
            timeout=config.timeout,
            retry=config.retry,
            transport=transport,
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections."""
        self._http.close()

    # -- invoices ---------------------------------------------------------------------

    def create_invoice(self, invoice: Invoice | bytes) -> CreatedInvoice:
        """Store a new invoice; the answer lists the parcels the server does not have yet.

        Raises InvoiceExists when the bindle id is taken (invoices are immutable).
        Not retried: a repeat after a lost answer would meet the invoice it stored.
        """
        document = dump_invoice(invoice) if isinstance(invoice, Invoice) else invoice
        return documents.created_invoice(self._send(calls.create_invoice(document)).content)

    def get_invoice(self, bindle_id: BindleId | str, *, yanked: bool = False) -> Invoice:
        """The stored invoice; with `yanked=True` a yanked one too (else BindleYanked)."""
        call = calls.get_invoice(calls.to_bindle_id(bindle_id), yanked)
        return documents.answered_invoice(self._send(call).content)

    def yank_invoice(self, bindle_id: BindleId | str) -> None:
        """Yank a bindle: it stays readable only to those who ask for yanked bindles."""
        self._send(calls.yank_invoice(calls.to_bindle_id(bindle_id)))

    def missing_parcels(self, bindle_id: BindleId | str) -> list[Label]:
        """Labels of the invoice's parcels whose bytes the server does not have."""
        response = self._send(calls.missing_parcels(calls.to_bindle_id(bindle_id)))
        return documents.missing_labels(response.content)

    # -- queries and keys -------------------------------------------------------------

    def query(
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
        return documents.query_page(self._send(call).content)

    def iter_query(
        self,
        query: str | None = None,
        version: str | None = None,
        *,
        strict: bool | None = None,
        yanked: bool | None = None,
        page_size: int = 50,
    ) -> Iterator[Invoice]:
        """Every matching invoice, fetching page after page until the server has no more."""
        page = self.query(query, version, offset=0, limit=page_size, strict=strict, yanked=yanked)
        for _ in range(calls.page_bound(page, page_size)):
            yield from page.invoices
            if not page.more or not page.invoices:
                return
            page = self.query(
                query,
                version,
                offset=page.next_offset,
                limit=page_size,
                strict=strict,
                yanked=yanked,
            )

    def host_keys(self, roles: Iterable[str] | None = None, *, url: str | None = None) -> KeyRing:
        """The server's public keys (`/bindle-keys`), e.g. to add to a keyring.

        `url` fetches them from another key server's full address instead.
        """
        return documents.keyring(self._send(calls.host_keys(roles, url)).content)

    # -- parcels ----------------------------------------------------------------------

    def parcel_exists(
        self, bindle_id: BindleId | str, sha256: str, *, yanked: bool = False
    ) -> bool:
        """Whether the server has the parcel's bytes (HEAD through the invoice)."""
        call = calls.parcel_exists(calls.to_bindle_id(bindle_id), calls.to_sha256(sha256), yanked)
        response = self._with_retries(lambda: self._http_once(call), call.repeatable, call.path)
        if response.status_code == 404:
            return False
        calls.raise_for_status(response, call.addressed)
        return True

    def upload_parcel(
        self,
        bindle_id: BindleId | str,
        sha256: str,
        source: ParcelSource,
        *,
        size: int | None = None,
        transfer: Transfer | None = None,
    ) -> None:
        """Upload a parcel's bytes from a file path, bytes or a binary stream.

        A path is streamed in chunks (memory stays flat) and retried like an idempotent
        call: a parcel is content-addressed, so a repeat cannot store anything else, and
        a 409 answer to a repeat means an earlier try stored it. A stream is sent once.
        `size` (the label's) is checked against a file before anything is sent; when the
        server refuses a file, the file itself is checked, so a corrupt local file is
        reported as DigestMismatch naming it.
        """
        bid, sha = calls.to_bindle_id(bindle_id), calls.to_sha256(sha256)
        path = calls.parcel_path(bid, sha)
        progress = transfer or SILENT_TRANSFER
        headers = {"Content-Type": "application/octet-stream"}
        tries = 0
        if isinstance(source, Path):
            actual = source.stat().st_size
            if size is not None and actual != size:
                raise SizeMismatch(sha, size, actual, str(source))
            headers["Content-Length"] = str(actual)
            check = ParcelCheck(sha, actual, str(source))

            def from_file() -> httpx.Response:
                nonlocal tries, check
                tries += 1
                if tries > 1:
                    progress.restart()
                check = ParcelCheck(sha, actual, str(source))
                body = _counted(file_chunks(source, check), progress)
                return self._post_once(path, body, headers)

            response = self._with_retries(from_file, True, path)
            if response.status_code == 409 and tries > 1:
                return
            if response.status_code in (200, 400):
                verify_sent_file(source, check, refused=response.status_code == 400)
        elif isinstance(source, bytes):

            def from_bytes() -> httpx.Response:
                nonlocal tries
                tries += 1
                return self._post_once(path, source, headers)

            response = self._with_retries(from_bytes, True, path)
            progress.advance(len(source))
            if response.status_code == 409 and tries > 1:
                return  # an earlier try stored it before its answer was lost
        else:
            if size is not None:
                headers["Content-Length"] = str(size)
            body = _counted(_stream_chunks(source), progress)
            response = self._with_retries(lambda: self._post_once(path, body, headers), False, path)
        calls.raise_for_status(response, Addressed.PARCEL)

    def download_parcel(
        self,
        bindle_id: BindleId | str,
        sha256: str,
        destination: ParcelTarget,
        *,
        label: Label | None = None,
        yanked: bool = False,
        transfer: Transfer | None = None,
    ) -> Label:
        """Download a parcel to a path or a binary stream, verifying its sha256 and size.

        Without `label`, the invoice is fetched first to learn the parcel's size. A path
        is written to a temporary file beside it and moved into place only once the
        bytes are verified: a mismatch raises DigestMismatch or SizeMismatch and leaves
        nothing behind. A broken connection is retried, resuming with a byte range.
        Returns the parcel's label.
        """
        bid, sha = calls.to_bindle_id(bindle_id), calls.to_sha256(sha256)
        if label is None:
            label = calls.listed_label(self.get_invoice(bid, yanked=yanked), bid, sha)
        if isinstance(destination, Path):
            with TempBeside(destination) as temp:
                with temp.path.open("w+b") as file:
                    self._download(bid, label, file, True, yanked, transfer)
                temp.commit()
        else:
            self._download(bid, label, destination, False, yanked, transfer)
        return label

    # -- whole bindles (the async implementations, run to completion) -------------------

    def push_standalone(
        self,
        path: Path,
        bindle_id: BindleId | str | None = None,
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        progress: Progress | None = None,
    ) -> PushReport:
        """Push a standalone bindle (directory, `.tar.gz`, or a folder holding either).

        Uploads only the parcels the server lacks, `concurrency` at a time; stops with
        InvoiceMismatch if the server holds a different invoice for this bindle id.
        Runs an event loop: from async code use `push.push_standalone` instead.
        """
        bid = None if bindle_id is None else calls.to_bindle_id(bindle_id)
        return self._run(
            lambda c: push.push_standalone(c, path, bid, concurrency=concurrency, progress=progress)
        )

    def push_directory(
        self,
        directory: Path,
        name: str,
        version: str,
        *,
        groups: bool = False,
        description: str | None = None,
        authors: list[str] | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
        progress: Progress | None = None,
    ) -> PushReport:
        """Build an invoice from a directory tree and push it with its files.

        Parcel names are the files' relative paths, media types are guessed, and with
        `groups` each top-level subdirectory becomes a group (see `tree`).
        """
        return self._run(
            lambda c: push.push_directory(
                c,
                directory,
                name,
                version,
                groups=groups,
                description=description,
                authors=authors,
                concurrency=concurrency,
                progress=progress,
            )
        )

    def get_bindle(
        self,
        bindle_id: BindleId | str,
        directory: BindleDirectory,
        *,
        yanked: bool = False,
        concurrency: int = DEFAULT_CONCURRENCY,
        progress: Progress | None = None,
        check: InvoiceCheck | None = None,
    ) -> FetchReport:
        """Fetch the invoice and all parcels into a local bindle directory, verified.

        `check` is called with the invoice before any parcel is fetched.
        """
        return self._run(
            lambda c: fetch.get_bindle(
                c,
                bindle_id,
                directory,
                yanked=yanked,
                concurrency=concurrency,
                progress=progress,
                check=check,
            )
        )

    def pull_bindle(
        self,
        bindle_id: BindleId | str,
        directory: Path,
        *,
        yanked: bool = False,
        concurrency: int = DEFAULT_CONCURRENCY,
        progress: Progress | None = None,
        check: InvoiceCheck | None = None,
    ) -> FetchReport:
        """Write the bindle's parcels into `directory` by name, refusing names that
        would escape it (UnsafeParcelName) before anything is written."""
        return self._run(
            lambda c: fetch.pull_bindle(
                c,
                bindle_id,
                directory,
                yanked=yanked,
                concurrency=concurrency,
                progress=progress,
                check=check,
            )
        )

    def _run(self, operation: Callable[[AsyncBindleClient], Awaitable[T]]) -> T:
        async def run() -> T:
            async with AsyncBindleClient.from_config(self.config) as client:
                return await operation(client)

        return asyncio.run(run())

    # -- plumbing ---------------------------------------------------------------------

    def _download(
        self,
        bid: BindleId,
        label: Label,
        sink: BinaryIO,
        rewindable: bool,
        yanked: bool,
        transfer: Transfer | None,
    ) -> None:
        sha = label.sha256
        path = calls.parcel_path(bid, sha)
        check = ParcelCheck(sha, label.size, f"parcel {sha} from {self.config.base_url}{path}")
        progress = transfer or SILENT_TRANSFER
        params = {"yanked": "true"} if yanked else {}

        def attempt() -> None:
            headers = calls.parcel_download_headers(sha, check.count)
            with self._http.stream("GET", path, params=params, headers=headers) as response:
                if response.status_code >= 400:
                    response.read()
                    calls.raise_for_status(response, Addressed.PARCEL)
                start = calls.resumed_at(response)
                if start != check.count:
                    if start != 0 or not rewindable:
                        raise UnexpectedResponse(f"{path}: cannot resume at byte {check.count}")
                    sink.seek(0)
                    sink.truncate()
                    check.restart()
                    progress.restart()
                calls.check_declared_length(response, label, check.where)
                for chunk in response.iter_bytes(CHUNK):
                    check.update(chunk)
                    sink.write(chunk)
                    progress.advance(len(chunk))

        self._with_retries(attempt, True, path)
        check.verify()

    def _send(self, call: Call) -> httpx.Response:
        response = self._with_retries(lambda: self._http_once(call), call.repeatable, call.path)
        calls.raise_for_status(response, call.addressed)
        return response

    def _http_once(self, call: Call) -> httpx.Response:
        response = self._http.request(
            call.method, call.path, params=call.params, content=call.content, headers=call.headers
        )
        if retryable_status(response.status_code):
            calls.raise_for_status(response, call.addressed)
        return response

    def _post_once(
        self, path: str, body: bytes | Iterator[bytes], headers: dict[str, str]
    ) -> httpx.Response:
        response = self._http.post(path, content=body, headers=headers)
        if retryable_status(response.status_code):
            calls.raise_for_status(response, Addressed.PARCEL)
        return response

    def _with_retries(self, attempt: Callable[[], T], repeatable: bool, what: str) -> T:
        """Run `attempt`, again after a pause on connection errors and 5xx if repeatable."""
        delays = self.config.retry.delays() if repeatable else iter(())
        tries = 0
        while True:
            tries += 1
            try:
                return attempt()
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
            time.sleep(delay)


def _counted(chunks: Iterator[bytes], transfer: Transfer) -> Iterator[bytes]:
    for chunk in chunks:
        transfer.advance(len(chunk))
        yield chunk


def _stream_chunks(stream: BinaryIO) -> Iterator[bytes]:
    while chunk := stream.read(CHUNK):
        yield chunk
