"""BindleClient: every Bindle v1 call over a blocking httpx client.

Uploads stream from disk and downloads stream to disk in 1 MiB chunks, so memory does
not grow with parcel size; every download is checked against its label's sha256 and
size. Calls that may be repeated are retried on connection errors and 5xx answers.

Only the blocking I/O is here. What to send and what an answer means (`calls`), when
to retry (`retry`) and how a transfer goes on after each answer (`transfers`) are
decided once, for this client and AsyncBindleClient alike.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Self, TypeVar, Unpack

import httpx

from bindle_server.client import calls, fetch, push, selection
from bindle_server.client.async_client import AsyncBindleClient
from bindle_server.client.calls import Call, PagingOptions, QueryOptions
from bindle_server.client.concurrency import run_to_completion
from bindle_server.client.config import ClientBase
from bindle_server.client.documents import CreatedInvoice, QueryPage
from bindle_server.client.errors import Addressed
from bindle_server.client.fetch import BindleDirectory, FetchOptions, FetchReport, PullOptions
from bindle_server.client.files import TempBeside
from bindle_server.client.integrity import CHUNK, blame_local_file, file_chunks
from bindle_server.client.progress import Progress, Transfer
from bindle_server.client.push import DirectoryOptions, PushOptions, PushReport
from bindle_server.client.retry import RETRIED, RetrySchedule
from bindle_server.client.selection import ArchiveReport, Resolution
from bindle_server.client.transfers import ParcelDownload, ParcelUpload, UploadOutcome
from bindle_server.model import BindleId, Invoice, Label
from bindle_server.signing import KeyRing

T = TypeVar("T")
ParcelSource = Path | bytes | BinaryIO
ParcelTarget = Path | BinaryIO


class BindleClient(ClientBase[httpx.BaseTransport]):
    """A blocking client for one Bindle server; use it as a context manager or `close()` it.

    `server_url` is the API root, e.g. `http://127.0.0.1:8080/v1/`. The keyword
    settings (`auth`, `insecure`, `timeout`, `retry`) are described by ClientSettings;
    `transport` replaces httpx's own (tests inject faults with it). `from_config`
    makes a client with another's settings.
    """

    def _connect(self, transport: httpx.BaseTransport | None) -> None:
        self._http = httpx.Client(transport=transport, **self.config.http_options())

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
        return self._call(calls.create_invoice(invoice))

    def get_invoice(self, bindle_id: BindleId | str, *, yanked: bool = False) -> Invoice:
        """The stored invoice; with `yanked=True` a yanked one too (else BindleYanked)."""
        return self._call(calls.get_invoice(bindle_id, yanked))

    def yank_invoice(self, bindle_id: BindleId | str) -> None:
        """Yank a bindle: it stays readable only to those who ask for yanked bindles."""
        self._call(calls.yank_invoice(bindle_id))

    def missing_parcels(self, bindle_id: BindleId | str) -> list[Label]:
        """Labels of the invoice's parcels whose bytes the server does not have."""
        return self._call(calls.missing_parcels(bindle_id))

    # -- selections of groups and features ----------------------------------------------

    def resolve(
        self,
        bindle_id: BindleId | str,
        *,
        groups: Iterable[str] = (),
        features: Iterable[str] = (),
        yanked: bool = False,
    ) -> Resolution:
        """The labels the server says a selection needs: the global group, required and
        named `groups` with what their parcels require, one member per `oneOf` group,
        filtered by `features` (`NS.KEY=VALUE`). An unsatisfiable selection raises
        BadRequest naming the broken rule."""
        return self._call(selection.resolve(bindle_id, groups, features, yanked))

    def download_archive(
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
        """Save the tar of a selection (every parcel without `groups` and `features`):
        `invoice.toml` plus the parcels by name. Refuses to overwrite `destination`.

        Bytes go to `destination.part` first; a broken connection, or a later call after
        an interrupted one, resumes from there if the server's archive is unchanged.
        Before it gets its name, the archive is verified (`selection.verify_archive`):
        `check` sees its invoice, and every parcel must match its label.
        """
        download = selection.ArchiveDownload(
            bindle_id,
            destination,
            groups=groups,
            features=features,
            yanked=yanked,
            api_root=self.config.base_url,
            progress=progress,
        )
        download.load()

        def attempt() -> None:
            with self._http.stream(
                "GET", download.path, params=download.params, headers=download.headers()
            ) as response:
                if response.status_code >= 400:
                    response.read()
                restart = download.begin(response)
                if restart:
                    download.forget_tag()
                with download.part.open("wb" if restart else "ab") as file:
                    if restart:
                        download.keep_tag()
                    # As they arrive, not gathered into CHUNKs: bytes already received
                    # are kept (and resumed from) when the connection breaks.
                    for chunk in response.iter_bytes():
                        file.write(download.received(chunk))
            download.check_complete()

        schedule = self.config.schedule(True, download.path)
        try:
            try:
                self._with_retries(attempt, schedule)
            except selection.StalePart:
                self._with_retries(attempt, schedule)
        finally:
            download.close()
        download.verify(check)
        return download.save()

    # -- queries and keys -------------------------------------------------------------

    def query(
        self, query: str | None = None, version: str | None = None, **options: Unpack[QueryOptions]
    ) -> QueryPage:
        """One page of invoices whose name matches `query` and whose version `version`.

        Options: `offset` and `limit` (the page), `strict` name matching, `yanked`.
        """
        return self._call(calls.query(query, version, **options))

    def iter_query(
        self, query: str | None = None, version: str | None = None, **options: Unpack[PagingOptions]
    ) -> Iterator[Invoice]:
        """Every matching invoice, fetching page after page until the server has no more.

        Options: `strict` name matching, `yanked`, and `page_size` (50).
        """
        paging = calls.QueryPaging(query, version, **options)
        while (call := paging.next()) is not None:
            yield from paging.took(self._call(call))

    def host_keys(self, roles: Iterable[str] | None = None, *, url: str | None = None) -> KeyRing:
        """The server's public keys (`/bindle-keys`), e.g. to add to a keyring.

        `url` fetches them from another key server's full address instead.
        """
        return self._call(calls.host_keys(roles, url))

    # -- parcels ----------------------------------------------------------------------

    def parcel_exists(
        self, bindle_id: BindleId | str, sha256: str, *, yanked: bool = False
    ) -> bool:
        """Whether the server has the parcel's bytes (HEAD through the invoice)."""
        return self._call(calls.parcel_exists(bindle_id, sha256, yanked))

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

        A path is streamed in chunks (memory stays flat) and, like bytes, retried: a
        parcel is content-addressed, so a repeat cannot store anything else, and a 409
        answer to a repeat means an earlier try stored it. A stream is sent once (with
        `size` as its Content-Length if given). `size` (the label's) is checked against a
        file before anything is sent; when the server refuses a file, the file itself is
        checked, so a corrupt local file is reported as DigestMismatch naming it.
        """
        upload = ParcelUpload(bindle_id, sha256, transfer)
        body = _body(upload, source, size)
        schedule = self.config.schedule(upload.repeatable, upload.path)
        response = self._with_retries(lambda: self._post(upload, body()), schedule)
        if isinstance(source, Path) and upload.outcome(response) is UploadOutcome.BLAME_FILE:
            blame_local_file(source, upload.sha256)
        upload.finish(response, self.config.base_url)

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
        api_root = self.config.base_url
        rewindable = isinstance(destination, Path)
        download = ParcelDownload(
            bid, label, yanked=yanked, api_root=api_root, rewindable=rewindable, transfer=transfer
        )
        if isinstance(destination, Path):
            with TempBeside(destination) as temp:
                with temp.path.open("w+b") as file:
                    self._download(download, file)
                temp.commit()
        else:
            self._download(download, destination)
        return label

    # -- whole bindles (the async implementations, run to completion) -------------------

    def push_standalone(
        self, path: Path, bindle_id: BindleId | str | None = None, **options: Unpack[PushOptions]
    ) -> PushReport:
        """Push a standalone bindle (directory, `.tar.gz`, or a folder holding either).

        Uploads only the parcels the server lacks, `concurrency` at a time; stops with
        InvoiceMismatch if the server holds a different invoice for this bindle id.
        Options as for `push.push_standalone`: `concurrency`, `progress`.
        """
        bid = None if bindle_id is None else calls.to_bindle_id(bindle_id)
        return self._run(lambda client: push.push_standalone(client, path, bid, **options))

    def push_directory(
        self, directory: Path, name: str, version: str, **options: Unpack[DirectoryOptions]
    ) -> PushReport:
        """Build an invoice from a directory tree and push it with its files.

        Parcel names are the files' relative paths, media types are guessed, and with
        `groups` each top-level subdirectory becomes a group (see `tree`). Options as
        for `push.push_directory`: `groups`, `description`, `authors`, `concurrency`,
        `progress`.
        """
        return self._run(
            lambda client: push.push_directory(client, directory, name, version, **options)
        )

    def get_bindle(
        self, bindle_id: BindleId | str, directory: BindleDirectory, **options: Unpack[FetchOptions]
    ) -> FetchReport:
        """Fetch the invoice and all parcels into a local bindle directory, verified.

        Options as for `fetch.get_bindle`: `yanked`, `concurrency`, `progress`, and
        `check`, called with the invoice before any parcel is fetched.
        """
        return self._run(lambda client: fetch.get_bindle(client, bindle_id, directory, **options))

    def pull_bindle(
        self, bindle_id: BindleId | str, directory: Path, **options: Unpack[PullOptions]
    ) -> FetchReport:
        """Write the bindle's parcels into `directory` by name, refusing names that
        would escape it (UnsafeParcelName) before anything is written. Options as for
        `get_bindle`, plus `groups` and `features` to pull only that selection."""
        return self._run(lambda client: fetch.pull_bindle(client, bindle_id, directory, **options))

    def _run(self, operation: Callable[[AsyncBindleClient], Awaitable[T]]) -> T:
        # These run the async implementations on an event loop of their own, in a worker
        # thread when the caller's thread runs a loop already (see run_to_completion).
        async def run() -> T:
            async with AsyncBindleClient.from_config(self.config) as client:
                return await operation(client)

        return run_to_completion(run)

    # -- plumbing: the blocking I/O ----------------------------------------------------

    def _call(self, call: Call[T]) -> T:
        schedule = self.config.schedule(call.repeatable, call.path)
        response = self._with_retries(lambda: self._request(call), schedule)
        return call.outcome(response, self.config.base_url)

    def _request(self, call: Call[T]) -> httpx.Response:
        response = self._http.request(
            call.method, call.path, params=call.params, content=call.content, headers=call.headers
        )
        calls.raise_if_transient(response, call.addressed, self.config.base_url)
        return response

    def _post(self, upload: ParcelUpload, body: bytes | Iterator[bytes]) -> httpx.Response:
        upload.next_try()
        response = self._http.post(upload.path, content=body, headers=upload.headers)
        calls.raise_if_transient(response, Addressed.PARCEL, self.config.base_url)
        return response

    def _download(self, download: ParcelDownload, sink: BinaryIO) -> None:
        def attempt() -> None:
            headers = download.headers()
            with self._http.stream(
                "GET", download.path, params=download.params, headers=headers
            ) as response:
                if response.status_code >= 400:
                    response.read()
                if download.begin(response):
                    sink.seek(0)
                    sink.truncate()
                for chunk in response.iter_bytes(CHUNK):
                    sink.write(download.received(chunk))

        self._with_retries(attempt, self.config.schedule(True, download.path))
        download.finish()

    def _with_retries(self, attempt: Callable[[], T], schedule: RetrySchedule) -> T:
        """Run `attempt` until it succeeds or `schedule` gives up (it raises then)."""
        while True:
            try:
                return attempt()
            except RETRIED as failure:
                time.sleep(schedule.after(failure))


def _body(
    upload: ParcelUpload, source: ParcelSource, size: int | None
) -> Callable[[], bytes | Iterator[bytes]]:
    """What each try sends: a new read of a file, the same bytes, or the one stream."""
    if isinstance(source, Path):
        upload.from_file(str(source), source.stat().st_size, size)
        return lambda: (upload.sent(chunk) for chunk in file_chunks(source))
    if isinstance(source, bytes):
        data = upload.from_bytes(source)
        return lambda: data
    upload.from_stream(size)
    chunks = (upload.sent(chunk) for chunk in _stream_chunks(source))
    return lambda: chunks


def _stream_chunks(stream: BinaryIO) -> Iterator[bytes]:
    while chunk := stream.read(CHUNK):
        yield chunk
