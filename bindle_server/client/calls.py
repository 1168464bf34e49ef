"""The protocol's requests, described once for the sync and the async client.

A `Call` says what to send and whether it may be repeated after a failure; both
clients turn it into an httpx request, retry it by the same rules and map error
statuses to the same exceptions (BINDLE-PROTOCOL.md sections 4 and 5).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import quote

import httpx

from bindle_server import __version__
from bindle_server.client.documents import QueryPage, error_message
from bindle_server.client.errors import (
    Addressed,
    ConnectionFailed,
    InvalidInput,
    SizeMismatch,
    error_for_status,
)
from bindle_server.client.retry import RetryPolicy
from bindle_server.errors import BindleError
from bindle_server.model import BindleId, Invoice, Label, check_sha256

DEFAULT_SERVER_URL = "http://localhost:8080/v1/"
TOML = "application/toml"


@dataclass(frozen=True)
class ClientConfig:
    """Where the server is and how to talk to it; shared by the sync and async clients."""

    server_url: str = DEFAULT_SERVER_URL
    auth: httpx.Auth | None = None
    insecure: bool = False
    timeout: float = 60.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    @property
    def base_url(self) -> str:
        # With the trailing slash, relative paths land under the API root (`.../v1/_i`).
        return self.server_url.rstrip("/") + "/"

    @property
    def headers(self) -> dict[str, str]:
        return {"Accept": TOML, "User-Agent": f"bindle-server-client/{__version__}"}


@dataclass(frozen=True)
class Call:
    """One protocol request; `repeatable` calls are retried on connection errors and 5xx."""

    method: str
    path: str
    addressed: Addressed
    params: dict[str, str] = field(default_factory=dict)
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    repeatable: bool = True


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


def _yanked(yanked: bool) -> dict[str, str]:
    return {"yanked": "true"} if yanked else {}


def create_invoice(document: bytes) -> Call:
    # Not repeatable: if the first try stored the invoice, a repeat would answer 409.
    return Call(
        "POST",
        "_i",
        Addressed.INVOICE,
        content=document,
        headers={"Content-Type": TOML},
        repeatable=False,
    )


def get_invoice(bindle_id: BindleId, yanked: bool) -> Call:
    return Call("GET", invoice_path(bindle_id), Addressed.INVOICE, _yanked(yanked))


def yank_invoice(bindle_id: BindleId) -> Call:
    # Repeatable: yanking a yanked invoice is a successful no-op (section 6).
    return Call("DELETE", invoice_path(bindle_id), Addressed.INVOICE)


def missing_parcels(bindle_id: BindleId) -> Call:
    path = invoice_path(bindle_id).removeprefix("_i/")
    return Call("GET", f"_r/missing/{path}", Addressed.INVOICE)


def parcel_exists(bindle_id: BindleId, sha256: str, yanked: bool) -> Call:
    return Call("HEAD", parcel_path(bindle_id, sha256), Addressed.PARCEL, _yanked(yanked))


def query(
    query: str | None = None,
    version: str | None = None,
    offset: int | None = None,
    limit: int | None = None,
    strict: bool | None = None,
    yanked: bool | None = None,
) -> Call:
    params: dict[str, str] = {}
    if query is not None:
        params["q"] = query
    if version is not None:
        params["v"] = version
    if offset is not None:
        params["o"] = str(offset)
    if limit is not None:
        params["l"] = str(limit)
    if strict is not None:
        params["strict"] = "true" if strict else "false"
    if yanked is not None:
        params["yanked"] = "true" if yanked else "false"
    return Call("GET", "_q", Addressed.OTHER, params)


def host_keys(roles: Iterable[str] | None = None, url: str | None = None) -> Call:
    # An absolute `url` (another key server) replaces the path under the API root.
    params = {"roles": ",".join(roles)} if roles else {}
    return Call("GET", url or "bindle-keys", Addressed.OTHER, params)


def parcel_download_headers(sha256: str, offset: int) -> dict[str, str]:
    """Resume at `offset` if the bytes are still the same parcel (they always are: the
    digest is the parcel's strong ETag, section 14 item 15); a server without ranges
    answers 200 with the whole parcel instead."""
    if not offset:
        return {}
    return {"Range": f"bytes={offset}-", "If-Range": f'"{sha256}"'}


def resumed_at(response: httpx.Response) -> int:
    """Where a 206 answer starts; 0 for a whole-parcel 200."""
    if response.status_code != 206:
        return 0
    content_range = response.headers.get("content-range", "")
    unit, _, spec = content_range.partition(" ")
    start = spec.partition("-")[0]
    if unit != "bytes" or not start.isdigit():
        return -1
    return int(start)


def raise_for_status(response: httpx.Response, addressed: Addressed) -> None:
    """Turn an error status into the matching ResponseError (body must be read)."""
    if response.status_code < 400:
        return
    message = error_message(response.content, response.reason_phrase or "error")
    raise error_for_status(
        response.status_code,
        message,
        response.request.method,
        str(response.request.url),
        addressed,
    )


def check_declared_length(response: httpx.Response, label: Label, where: str) -> None:
    """Refuse a whole-parcel answer that announces another size, before reading it."""
    declared = response.headers.get("content-length")
    encoded = response.headers.get("content-encoding", "identity") != "identity"
    whole = response.status_code == 200 and not encoded
    if whole and declared and declared.isdigit() and int(declared) != label.size:
        raise SizeMismatch(label.sha256, label.size, int(declared), where)


def listed_label(invoice: Invoice, bindle_id: BindleId, sha256: str) -> Label:
    """The label the invoice gives the parcel; InvalidInput when it does not list it."""
    label = invoice.label_for(sha256)
    if label is None:
        raise InvalidInput(f"parcel {sha256} is not listed in invoice {bindle_id}")
    return label


def page_bound(first: QueryPage, page_size: int) -> int:
    """An upper bound on the pages a paged query can take (the paging loop's bound)."""
    return first.total // max(page_size, 1) + 2


def connection_failed(url: str, exc: httpx.TransportError, tries: int) -> ConnectionFailed:
    """The ConnectionFailed for a request that failed on the wire `tries` times."""
    # The exact address (absolute ones included); RuntimeError if httpx attached none.
    with contextlib.suppress(RuntimeError):
        url = str(exc.request.url)
    detail = str(exc) or "the connection broke"
    plural = "try" if tries == 1 else "tries"
    return ConnectionFailed(f"{url}: {type(exc).__name__}: {detail} (after {tries} {plural})")
