"""Invoices as served (TOML or JSON bytes and their digest), kept in memory while unchanged.

Reading an invoice costs a worker-thread hop to read its file, a parse and a render: most
of an invoice GET. A committed invoice changes only by a yank or a removal, and the store
offers a mark that changes whenever either happens (storage.base.InvoiceStore.change_mark),
so a worker keeps the bytes it served and hands them out again for as long as the mark it
read before reading the document is still the store's mark.

A base class of BindleService, kept apart so that each module holds one purpose.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from bindle_server.errors import InvoiceYanked
from bindle_server.model import BindleId, Invoice
from bindle_server.model.codec import Format, dump_document, to_document
from bindle_server.model.pages import invoice_entry
from bindle_server.search.index import Index
from bindle_server.search.query import Query
from bindle_server.service.indexing import SizedLru
from bindle_server.storage import InvoiceStore
from bindle_server.threads import run_sync

# Per worker. An invoice of a few parcels renders to about 1 KiB, so this keeps thousands;
# larger ones are left to ParsedCache, which spares them the parse.
CACHE_BYTES = 8 * 1024 * 1024
_LARGEST_CACHED = 256 * 1024
# Rendered bodies larger than this are hashed in a worker thread.
_INLINE_HASH_BYTES = 256 * 1024


@dataclass(frozen=True, slots=True)
class RenderedInvoice:
    """An invoice's bytes in one format, their SHA-256 (hex) and whether it is yanked."""

    body: bytes
    sha256: str
    yanked: bool


class RenderedCache:
    """Recently served invoices by (key, format), bounded by the bytes of their bodies."""

    def __init__(self, limit: int = CACHE_BYTES) -> None:
        self._entries: SizedLru[tuple[str, Format], tuple[int, RenderedInvoice]] = SizedLru(limit)

    def get(self, key: str, fmt: Format, mark: int) -> RenderedInvoice | None:
        entry = self._entries.get((key, fmt))
        if entry is None:
            return None
        if entry[0] != mark:
            # Some invoice changed since: this one may be it.
            self._entries.pop((key, fmt))
            return None
        return entry[1]

    def put(self, key: str, fmt: Format, mark: int, rendered: RenderedInvoice) -> None:
        if len(rendered.body) <= _LARGEST_CACHED:  # larger ones are left to ParsedCache
            self._entries.put((key, fmt), (mark, rendered), len(rendered.body))


async def sha256_hex(data: bytes) -> str:
    """The SHA-256 of `data` in hex; computed in a worker thread when `data` is large."""
    if len(data) <= _INLINE_HASH_BYTES:
        return hashlib.sha256(data).hexdigest()
    return await run_sync(lambda: hashlib.sha256(data).hexdigest())


class Rendering:
    """`rendered_invoice`, over the invoice store and BindleService.get_invoice."""

    _index: Index
    _invoices: InvoiceStore
    _rendered: RenderedCache

    async def get_invoice(self, bindle_id: BindleId, *, allow_yanked: bool = False) -> Invoice:
        raise NotImplementedError

    def _change_mark(self) -> int | None:
        """The store's change mark; a service that learns of changes otherwise (a mirror
        rechecks its upstream) answers None, and every read then goes to the store."""
        return self._invoices.change_mark()

    def _remember_created(self, key: str, mark: int | None, document: bytes) -> None:
        """Keep a new committed invoice as a TOML GET serves it, so that reading it back
        from the worker that stored it costs nothing. `document` is dump_invoice of the
        stored invoice, the rendering a GET makes of it (tests/caching/test_rendered.py);
        `mark` was read before the document was written."""
        if mark is not None and len(document) <= _LARGEST_CACHED:
            digest = hashlib.sha256(document).hexdigest()
            self._rendered.put(key, Format.TOML, mark, RenderedInvoice(document, digest, False))

    async def query_entries(self, query: Query, fmt: Format) -> tuple[int, list[bytes]]:
        """The number of matches, and this page's invoices rendered as page entries
        (model/pages.py): what `query` gives, written from what the index holds."""
        page = await self._index.query(query)
        entries = zip(page.documents, page.toml_entries, strict=True)
        return page.total, [_page_entry(document, toml, fmt) for document, toml in entries]

    async def rendered_invoice(
        self, bindle_id: BindleId, fmt: Format, *, allow_yanked: bool = False
    ) -> RenderedInvoice:
        """The committed invoice as served in `fmt`, with the errors of get_invoice."""
        # Read before the document: a change after this makes what is stored under it stale.
        mark = self._change_mark()
        if mark is not None:
            cached = self._rendered.get(bindle_id.key, fmt, mark)
            if cached is not None:
                if cached.yanked and not allow_yanked:
                    raise InvoiceYanked(str(bindle_id))
                return cached
        invoice = await self.get_invoice(bindle_id, allow_yanked=allow_yanked)
        body = dump_document(to_document(invoice, fmt), fmt)
        rendered = RenderedInvoice(body, await sha256_hex(body), invoice.is_yanked)
        if mark is not None:
            self._rendered.put(bindle_id.key, fmt, mark, rendered)
        return rendered


def _page_entry(document: str, toml_entry: str, fmt: Format) -> bytes:
    """An indexed invoice as a page lists it in `fmt`, from the forms the index keeps."""
    if not toml_entry:  # a row indexed before the index kept them (see QueryPage)
        return invoice_entry(Invoice.model_validate_json(document), fmt)
    return (toml_entry if fmt is Format.TOML else document).encode()
