"""The protocol's requests and what their answers mean, described once for both clients.

A `Call` says what to send (method, path, parameters, headers, body), whether it may be
repeated after a failure, and how to read the answer; the sync and the async client
only send it and hand the answer back (BINDLE-PROTOCOL.md sections 4 and 5).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Generic, TypedDict, TypeVar, Unpack
from urllib.parse import quote

import httpx

from bindle_server.client import documents
from bindle_server.client.config import TOML
from bindle_server.client.documents import CreatedInvoice, QueryPage
from bindle_server.client.errors import Addressed, NotABindleServer, error_for_status
from bindle_server.client.retry import retryable_status
from bindle_server.errors import BindleError, InvalidInput
from bindle_server.model import BindleId, Invoice, Label, check_sha256, dump_invoice
from bindle_server.signing import KeyRing

T = TypeVar("T")


class QueryOptions(TypedDict, total=False):
    """The optional parameters of a query (`_q`) besides the name and the version."""

    offset: int | None
    limit: int | None
    strict: bool | None
    yanked: bool | None


class PagingOptions(TypedDict, total=False):
    """The options of a query walked page by page: `strict`, `yanked`, `page_size` (50)."""

    strict: bool | None
    yanked: bool | None
    page_size: int


@dataclass(frozen=True)
class Call(Generic[T]):
    """One protocol request and the reading of its answer.

    `repeatable` calls are retried on connection errors and 5xx; `absent` (if set) is
    the result of a 404 instead of an error.
    """

    method: str
    path: str
    addressed: Addressed
    parse: Callable[[bytes], T]
    params: dict[str, str] = field(default_factory=dict)
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    repeatable: bool = True
    absent: T | None = None

    def outcome(self, response: httpx.Response, api_root: str) -> T:
        """The typed result of an answer whose body has been read, or the error it reports."""
        if response.status_code == 404 and self.absent is not None:
            return self.absent
        raise_for_status(response, self.addressed, api_root)
        return self.parse(response.content)


def to_bindle_id(value: BindleId | str) -> BindleId:
    if isinstance(value, BindleId):
        return value
    try:
        return BindleId.parse(value)
    except BindleError as exc:
        raise InvalidInput(exc.message) from None


def to_sha256(value: str) -> str:
    try:
        return check_sha256(value)
    except BindleError as exc:
        raise InvalidInput(exc.message) from None


def invoice_path(bindle_id: BindleId) -> str:
    # A literal `+` (SemVer build metadata) stays, as the reference server expects it.
    return f"_i/{quote(bindle_id.name, safe='/')}/{quote(bindle_id.version, safe='+')}"


def parcel_path(bindle_id: BindleId, sha256: str) -> str:
    return f"{invoice_path(bindle_id)}@{sha256}"


def yanked_params(yanked: bool) -> dict[str, str]:
    return {"yanked": "true"} if yanked else {}


def create_invoice(invoice: Invoice | bytes) -> Call[CreatedInvoice]:
    # Not repeatable: if the first try stored the invoice, a repeat would answer 409.
    document = dump_invoice(invoice) if isinstance(invoice, Invoice) else invoice
    return Call(
        "POST",
        "_i",
        Addressed.INVOICE,
        documents.created_invoice,
        content=document,
        headers={"Content-Type": TOML},
        repeatable=False,
    )


def get_invoice(bindle_id: BindleId | str, yanked: bool) -> Call[Invoice]:
    path = invoice_path(to_bindle_id(bindle_id))
    return Call("GET", path, Addressed.INVOICE, documents.answered_invoice, yanked_params(yanked))


def yank_invoice(bindle_id: BindleId | str) -> Call[None]:
    # Repeatable: yanking a yanked invoice is a successful no-op (section 6).
    return Call("DELETE", invoice_path(to_bindle_id(bindle_id)), Addressed.INVOICE, _nothing)


def missing_parcels(bindle_id: BindleId | str) -> Call[list[Label]]:
    path = invoice_path(to_bindle_id(bindle_id)).removeprefix("_i/")
    return Call("GET", f"_r/missing/{path}", Addressed.INVOICE, documents.missing_labels)


def parcel_exists(bindle_id: BindleId | str, sha256: str, yanked: bool) -> Call[bool]:
    path = parcel_path(to_bindle_id(bindle_id), to_sha256(sha256))
    params = yanked_params(yanked)
    return Call("HEAD", path, Addressed.PARCEL, _present, params, absent=False)


def query(
    query: str | None = None, version: str | None = None, **options: Unpack[QueryOptions]
) -> Call[QueryPage]:
    params: dict[str, str] = {}
    if query is not None:
        params["q"] = query
    if version is not None:
        params["v"] = version
    offset, limit = options.get("offset"), options.get("limit")
    if offset is not None:
        params["o"] = str(offset)
    if limit is not None:
        params["l"] = str(limit)
    strict, yanked = options.get("strict"), options.get("yanked")
    if strict is not None:
        params["strict"] = "true" if strict else "false"
    if yanked is not None:
        params["yanked"] = "true" if yanked else "false"
    return Call("GET", "_q", Addressed.OTHER, documents.query_page, params)


class QueryPaging:
    """The pages of a query, one call after another, until the server has no more.

    Bounded by the first page's `total`, so a server that always claims `more` cannot
    keep a caller paging forever.
    """

    def __init__(
        self, query: str | None, version: str | None, **options: Unpack[PagingOptions]
    ) -> None:
        self._query, self._version = query, version
        self._strict, self._yanked = options.get("strict"), options.get("yanked")
        self._page_size = options.get("page_size", 50)
        self._offset: int | None = 0  # None once the last page was taken
        self._pages_left: int | None = None

    def next(self) -> Call[QueryPage] | None:
        """The call for the next page; None once the last page was taken."""
        if self._offset is None:
            return None
        return query(
            self._query,
            self._version,
            offset=self._offset,
            limit=self._page_size,
            strict=self._strict,
            yanked=self._yanked,
        )

    def took(self, page: QueryPage) -> list[Invoice]:
        """Note the page the last call fetched, and return its invoices."""
        if self._pages_left is None:
            self._pages_left = page.total // max(self._page_size, 1) + 2
        self._pages_left -= 1
        more = self._pages_left > 0 and page.more and page.invoices
        self._offset = page.next_offset if more else None
        return page.invoices


def host_keys(roles: Iterable[str] | None = None, url: str | None = None) -> Call[KeyRing]:
    # An absolute `url` (another key server) replaces the path under the API root.
    params = {"roles": ",".join(roles)} if roles else {}
    return Call("GET", url or "bindle-keys", Addressed.OTHER, documents.keyring, params)


def raise_for_status(response: httpx.Response, addressed: Addressed, api_root: str) -> None:
    """Turn an error status into the matching ResponseError (the body must be read).

    A 404 that is not a Bindle error document comes from outside the Bindle API (most
    often a server URL without `/v1`): NotABindleServer says so instead of claiming a
    missing invoice.
    """
    if response.status_code < 400:
        return
    request = response.request
    if response.status_code == 404 and request.method != "HEAD":
        message = documents.bindle_error(response.content)
        # A router's own 404 (ours answers `error = "Not Found"`) is not the API's.
        if message is None or message.strip().lower() == "not found":
            raise NotABindleServer(_not_a_server(str(request.url), api_root))
    message = documents.error_message(response.content, response.reason_phrase or "error")
    raise error_for_status(
        response.status_code, message, request.method, str(request.url), addressed
    )


def raise_if_transient(response: httpx.Response, addressed: Addressed, api_root: str) -> None:
    """Raise ServerError for a status that says "try again later", so it is retried."""
    if retryable_status(response.status_code):
        raise_for_status(response, addressed, api_root)


def listed_label(invoice: Invoice, bindle_id: BindleId, sha256: str) -> Label:
    """The label the invoice gives the parcel; InvalidInput when it does not list it."""
    label = invoice.label_for(sha256)
    if label is None:
        raise InvalidInput(f"parcel {sha256} is not listed in invoice {bindle_id}")
    return label


def _not_a_server(url: str, api_root: str) -> str:
    advice = "check the server URL"
    if not api_root.rstrip("/").endswith("/v1"):
        advice = f"did you mean {api_root}v1/ ? Bindle servers serve their API under /v1"
    return (
        f"{url} answered 404 without a Bindle error: {api_root} does not look like a "
        f"Bindle server's API root; {advice}"
    )


def _nothing(data: bytes) -> None:
    return None


def _present(data: bytes) -> bool:
    return True
