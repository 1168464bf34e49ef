"""The upstream Bindle servers a pull-through mirror reads from, tried in order, over httpx.

Every answer is checked before the mirror uses it: an invoice must parse and carry the
bindle id it was asked for (and, with host verification, a host signature by a key the
upstream publishes); a parcel's bytes are checked by the store they are written to.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import quote

import httpx
from pydantic import ValidationError

from bindle_server.errors import (
    InvalidInvoice,
    InvoiceNotFound,
    ParcelNotFound,
    StorageUnavailable,
)
from bindle_server.model import BindleId, Invoice, SignatureRole, parse_invoice
from bindle_server.signing import KeyFileError, KeyRing, signature_verifies

log = logging.getLogger(__name__)

# Long enough for a slow upstream's first byte; a dead one is found by the connect timeout.
_TIMEOUT = httpx.Timeout(60.0, connect=5.0)
_TOML = "application/toml"
# httpx's base Auth changes nothing: the bearer token (a default header) is sent as is.
_NO_AUTH = httpx.Auth()


class UpstreamUnavailable(StorageUnavailable):
    """No upstream could be asked, or the one that answered sent something unusable (503)."""


@dataclass(frozen=True)
class Found:
    """An invoice an upstream holds, and which upstream (its API root) that is."""

    origin: str
    invoice: Invoice


@dataclass(frozen=True)
class UpstreamPage:
    """One upstream's answer to a query: its matches and how many it has in all."""

    origin: str
    total: int
    invoices: list[Invoice]


class Upstream:
    """A client of the upstream servers, in the order they are tried.

    `urls` are API roots as clients take them (`http://registry:8080/v1`); `token` is
    sent as a bearer token to each.
    """

    def __init__(
        self,
        urls: Sequence[str],
        *,
        token: str | None = None,
        max_invoice_bytes: int = 32 * 1024 * 1024,
        verify_hosts: bool = False,
    ) -> None:
        if not urls:
            raise ValueError("a mirror needs at least one upstream URL")
        # Credentials written into a URL (`http://user:password@host/v1`) are sent as HTTP
        # Basic authentication and kept out of every message, which names the bare URL.
        self.urls: list[str] = []
        self._basic: dict[str, httpx.BasicAuth] = {}
        for url in urls:
            parsed = httpx.URL(url.rstrip("/"))
            bare = str(parsed.copy_with(username=None, password=None))
            if parsed.username or parsed.password:
                self._basic[bare] = httpx.BasicAuth(parsed.username, parsed.password)
            self.urls.append(bare)
        self.verify_hosts = verify_hosts
        self._max_invoice_bytes = max_invoice_bytes
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._client = httpx.AsyncClient(headers=headers, timeout=_TIMEOUT)
        self._keys: dict[str, KeyRing] = {}

    def _auth(self, origin: str) -> httpx.Auth:
        return self._basic.get(origin) or _NO_AUTH

    async def aclose(self) -> None:
        await self._client.aclose()

    def describe(self) -> str:
        verify = ", host signatures verified" if self.verify_hosts else ""
        return ", ".join(self.urls) + verify

    async def invoice(self, bindle_id: BindleId) -> Found:
        """The first upstream's copy of an invoice (yanked or not), checked.

        InvoiceNotFound when every upstream answered and none has it; UpstreamUnavailable
        when none has it but some could not be asked or answered nonsense.
        """
        problems: list[str] = []
        for origin in self.urls:
            try:
                invoice = await self._fetch_invoice(origin, bindle_id)
            except (httpx.HTTPError, UpstreamUnavailable) as exc:
                problems.append(_problem(origin, exc))
                continue
            if invoice is None:
                continue
            found = Found(origin, invoice)
            if self.verify_hosts:
                try:
                    await self._check_host_signature(found)
                except (httpx.HTTPError, UpstreamUnavailable) as exc:
                    problems.append(_problem(origin, exc))
                    continue
            return found
        if problems:
            raise UpstreamUnavailable(
                f"invoice {bindle_id} is not stored here, and the upstream could not "
                f"provide it: {'; '.join(problems)}"
            )
        raise InvoiceNotFound(str(bindle_id))

    async def is_yanked(self, bindle_id: BindleId) -> bool | None:
        """Whether the first upstream that has the invoice has it yanked; None when no
        upstream has it or none could be asked."""
        for origin in self.urls:
            try:
                invoice = await self._fetch_invoice(origin, bindle_id)
            except (httpx.HTTPError, UpstreamUnavailable) as exc:
                log.info("yank status of %s not rechecked: %s", bindle_id, _problem(origin, exc))
                continue
            if invoice is not None:
                return invoice.is_yanked
        return None

    async def locate_parcel(self, bindle_id: BindleId, sha256: str) -> str:
        """The first upstream that serves the parcel through this invoice (by HEAD)."""
        problems: list[str] = []
        for origin in self.urls:
            try:
                response = await self._client.head(
                    _parcel_url(origin, bindle_id, sha256), auth=self._auth(origin)
                )
            except httpx.HTTPError as exc:
                problems.append(_problem(origin, exc))
                continue
            if response.status_code == 200:
                return origin
            if response.status_code != 404:
                problems.append(f"{origin}: answered {response.status_code}")
        if not problems:
            raise ParcelNotFound(sha256)
        raise UpstreamUnavailable(
            f"parcel {sha256} is not stored here and no upstream could serve it: "
            + "; ".join(problems)
        )

    @asynccontextmanager
    async def parcel(
        self, origin: str, bindle_id: BindleId, sha256: str
    ) -> AsyncIterator[AsyncIterator[bytes]]:
        """The parcel's bytes from `origin` as they arrive; the connection closes on exit."""
        url = _parcel_url(origin, bindle_id, sha256)
        async with self._client.stream("GET", url, auth=self._auth(origin)) as response:
            if response.status_code != 200:
                raise UpstreamUnavailable(
                    f"{origin} answered {response.status_code} for parcel {sha256}"
                )
            yield response.aiter_bytes()

    async def query(self, params: Sequence[tuple[str, str]]) -> list[UpstreamPage]:
        """Each reachable upstream's answer to a `_q` with `params` (unreachable ones are
        logged and left out: a merged search answers with what it can get)."""
        pages = []
        for origin in self.urls:
            try:
                pages.append(await self._query(origin, params))
            except UpstreamUnavailable as exc:
                log.warning("upstream query left out: %s", exc)
        return pages

    async def matches(self, params: Sequence[tuple[str, str]]) -> AsyncIterator[Invoice]:
        """Every invoice the first upstream answers a `_q` with `params` with, page by page
        (UpstreamUnavailable when it cannot be asked)."""
        async with contextlib.aclosing(self._pages(self.urls[0], params)) as pages:
            async for page in pages:
                for invoice in page.invoices:
                    yield invoice

    async def serves_name(self, name: str) -> str | None:
        """The first upstream holding any version of bindle `name` (yanked too), or None.

        UpstreamUnavailable when an upstream cannot be asked: a push must not be let
        through because the upstream happened to be down.
        """
        for origin in self.urls:
            try:
                async with contextlib.aclosing(
                    self._pages(origin, [("q", name), ("yanked", "true")])
                ) as pages:
                    async for page in pages:
                        if any(invoice.bindle.name == name for invoice in page.invoices):
                            return origin
            except UpstreamUnavailable as exc:
                raise UpstreamUnavailable(
                    f"cannot tell whether the upstream serves {name}: {exc}"
                ) from None
        return None

    async def _pages(
        self, origin: str, params: Sequence[tuple[str, str]]
    ) -> AsyncGenerator[UpstreamPage, None]:
        """Every page of `origin`'s answer to a `_q` with `params`, the largest there are."""
        offset = 0
        while True:
            page = await self._query(origin, [*params, ("o", str(offset)), ("l", "255")])
            yield page
            offset += len(page.invoices)
            if not page.invoices or offset >= page.total:
                return

    async def _query(self, origin: str, params: Sequence[tuple[str, str]]) -> UpstreamPage:
        """One page of `origin`'s answer to a `_q`; UpstreamUnavailable when it fails."""
        sent: list[tuple[str, str | int | float | bool | None]] = list(params)
        try:
            response = await self._client.get(
                f"{origin}/_q",
                params=sent,
                headers={"Accept": "application/json"},
                auth=self._auth(origin),
            )
            return _query_page(origin, response)
        except (httpx.HTTPError, ValueError, UpstreamUnavailable) as exc:
            raise UpstreamUnavailable(f"query failed: {_problem(origin, exc)}") from None

    async def _fetch_invoice(self, origin: str, bindle_id: BindleId) -> Invoice | None:
        """`origin`'s invoice (None on 404), parsed and checked to be the one asked for."""
        url = f"{origin}/_i/{_quoted(bindle_id)}"
        request = self._client.build_request(
            "GET", url, params={"yanked": "true"}, headers={"Accept": _TOML}
        )
        response = await self._client.send(request, stream=True, auth=self._auth(origin))
        try:
            if response.status_code == 404:
                return None
            if response.status_code != 200:
                raise UpstreamUnavailable(f"answered {response.status_code} for {bindle_id}")
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > self._max_invoice_bytes:
                    raise UpstreamUnavailable(
                        f"its invoice {bindle_id} is larger than {self._max_invoice_bytes} bytes"
                    )
        finally:
            await response.aclose()
        try:
            invoice = parse_invoice(bytes(body))
        except InvalidInvoice as exc:
            raise UpstreamUnavailable(f"its invoice {bindle_id} is not valid: {exc}") from None
        if invoice.bindle_id != bindle_id:
            raise UpstreamUnavailable(
                f"asked for {bindle_id}, it answered with invoice {invoice.bindle_id}"
            )
        return invoice

    async def _check_host_signature(self, found: Found) -> None:
        """Refuse an invoice without a valid host signature by a key `found.origin` lists."""
        keys = await self._host_keys(found.origin)
        for signature in found.invoice.signature or ():
            if (
                signature.role is SignatureRole.HOST
                and keys.trusts(signature.key, SignatureRole.HOST)
                and signature_verifies(found.invoice, signature)
            ):
                return
        raise UpstreamUnavailable(
            f"invoice {found.invoice.bindle_id} has no valid host signature by a key its "
            "/bindle-keys lists"
        )

    async def _host_keys(self, origin: str) -> KeyRing:
        cached = self._keys.get(origin)
        if cached is not None:
            return cached
        response = await self._client.get(
            f"{origin}/bindle-keys",
            params={"roles": "host"},
            headers={"Accept": _TOML},
            auth=self._auth(origin),
        )
        if response.status_code != 200:
            raise UpstreamUnavailable(f"answered {response.status_code} for /bindle-keys")
        try:
            keys = KeyRing.loads(response.text, f"{origin}/bindle-keys")
        except KeyFileError as exc:
            raise UpstreamUnavailable(str(exc)) from None
        self._keys[origin] = keys
        return keys


def _quoted(bindle_id: BindleId) -> str:
    return quote(str(bindle_id), safe="/")


def _parcel_url(origin: str, bindle_id: BindleId, sha256: str) -> str:
    # yanked=true: a client that may read a yanked invoice here may read its parcels too,
    # and whether it may is decided here, before the upstream is asked.
    return f"{origin}/_i/{_quoted(bindle_id)}@{sha256}?yanked=true"


def _query_page(origin: str, response: httpx.Response) -> UpstreamPage:
    if response.status_code != 200:
        raise UpstreamUnavailable(f"answered {response.status_code} to a query")
    document = response.json()
    try:
        invoices = [Invoice.model_validate(item) for item in document.get("invoices", [])]
        total = int(document.get("total", len(invoices)))
    except (ValidationError, AttributeError, TypeError) as exc:
        raise UpstreamUnavailable(f"answered a query with an unusable document: {exc}") from None
    return UpstreamPage(origin, total, invoices)


def _problem(origin: str, exc: Exception) -> str:
    return f"{origin}: {str(exc) or type(exc).__name__}"
