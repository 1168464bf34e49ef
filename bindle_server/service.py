"""BindleService: the spec's verbs over the stores and the index.

Rules that need stored state live here (an invoice exists or is yanked, a parcel is listed
by the invoice it is reached through); rules about a document alone live in `model`.
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass

import anyio

from bindle_server.errors import (
    InvalidInvoice,
    InvoiceExists,
    InvoiceNotFound,
    InvoiceYanked,
    ParcelExists,
    ParcelNotFound,
    ParcelNotInInvoice,
    PayloadTooLarge,
    SizeMismatch,
    StoredInvoiceDamaged,
    YankedOnCreate,
)
from bindle_server.model import (
    BindleId,
    Format,
    Invoice,
    Label,
    SignatureRole,
    check_sha256,
    dump_document,
    dump_invoice,
    parse_invoice,
    to_document,
)
from bindle_server.search.index import Index, IndexEntry
from bindle_server.search.query import Query
from bindle_server.signing import HostSigning, KeyRing
from bindle_server.storage import InvoiceStore, Stores

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CreatedInvoice:
    """The stored invoice and the labels of its parcels that are not stored yet."""

    invoice: Invoice
    missing: list[Label]


@dataclass(frozen=True)
class StoredParcel:
    """A parcel's label and how many bytes are stored for it."""

    label: Label
    size: int


@dataclass(frozen=True)
class QueryResult:
    query: Query
    total: int
    invoices: list[Invoice]

    @property
    def more(self) -> bool:
        return self.query.offset + len(self.invoices) < self.total


class BindleService:
    """Create, fetch and yank invoices; accept and serve parcels; answer queries."""

    def __init__(
        self, stores: Stores, index: Index, signing: HostSigning, *, max_parcels: int = 50_000
    ) -> None:
        self._max_parcels = max_parcels
        self._parsed = _ParsedCache()
        self._parcels = stores.parcels
        self._invoices = stores.invoices
        self._index = index
        self._signing = signing

    async def recover(self) -> int:
        """Make the index agree with the store after a crash or a lost index.

        A newly created index is rebuilt from the invoice store; otherwise only the
        invoices whose writes were interrupted are looked at. Returns how many invoices
        were (re)indexed.
        """
        if self._index.is_new:
            indexed, _ = await self.reindex()
            return indexed
        return await self.settle_interrupted()

    async def settle_interrupted(self) -> int:
        """Settle the index entries of writes whose writer died (on any node); how many.

        Run at start-up and then periodically: on a shared index, a node that was killed
        between storing an invoice and indexing it is settled by the nodes that live on.
        """
        marks = await self._index.stale_marks()
        for key, tokens in marks.items():
            document = await self._invoices.read(key)
            entry = None
            if document is not None:
                try:
                    entry = index_entry(key, parse_invoice(document))
                except InvalidInvoice as exc:
                    log.warning("invoice %s is unreadable and stays out of the index: %s", key, exc)
            await self._index.settle(key, entry, tokens)
        if marks:
            log.info("recovered %d interrupted invoice write(s) into the index", len(marks))
        return len(marks)

    async def create_invoice(
        self,
        body: bytes,
        fmt: Format = Format.TOML,
        *,
        authorize: Callable[[BindleId], None] | None = None,
    ) -> CreatedInvoice:
        """Validate and store a new invoice; report which of its parcels are missing.

        `authorize` sees the invoice's bindle id once it is parsed and raises to refuse it
        (the caller's permission to create under that name).
        """
        invoice = parse_invoice(body, fmt)
        if authorize is not None:
            authorize(invoice.bindle_id)
        if invoice.is_yanked:
            raise YankedOnCreate()
        if len(invoice.parcels) > self._max_parcels:
            raise PayloadTooLarge(
                f"invoice lists {len(invoice.parcels)} parcels; the limit is {self._max_parcels}"
            )
        stored_sizes = await self._parcels.stored_sizes(label.sha256 for label in invoice.labels)
        for label in invoice.labels:
            stored = stored_sizes.get(label.sha256)
            if stored is not None and stored != label.size:
                # The invoice could never be fetched whole: its label contradicts bytes
                # that are already stored under that digest.
                raise SizeMismatch(label.sha256, label.size, stored)
        invoice = self._signing.accept(invoice)
        bindle_id = invoice.bindle_id
        document = dump_invoice(invoice)
        key = bindle_id.key
        token = await self._index.begin(key)
        try:
            created = await self._invoices.create(key, document)
        except BaseException:
            await self._index.end(token)
            raise
        if not created:
            await self._index.end(token)
            raise InvoiceExists(str(bindle_id))
        await self._index.put(index_entry(key, invoice), token)
        missing = [label for label in invoice.labels if label.sha256 not in stored_sizes]
        log.info(
            "stored invoice %s (%d parcel(s), %d missing)",
            bindle_id,
            len(invoice.parcels),
            len(missing),
        )
        return CreatedInvoice(invoice, missing)

    async def get_invoice(self, bindle_id: BindleId, *, allow_yanked: bool = False) -> Invoice:
        """The stored invoice; InvoiceYanked unless `allow_yanked` when it is yanked."""
        document = await self._invoices.read(bindle_id.key)
        if document is None:
            raise InvoiceNotFound(str(bindle_id))
        invoice = await self._parse_stored(bindle_id, document)
        if invoice.is_yanked and not allow_yanked:
            raise InvoiceYanked(str(bindle_id))
        return invoice

    async def yank_invoice(self, bindle_id: BindleId) -> None:
        """Mark an invoice yanked; yanking a yanked invoice changes nothing."""
        invoice = await self.get_invoice(bindle_id, allow_yanked=True)
        if invoice.is_yanked:
            return
        yanked = self._signing.yank(invoice)
        key = bindle_id.key
        token = await self._index.begin(key)
        try:
            await self._invoices.replace(key, dump_invoice(yanked))
        except BaseException:
            await self._index.end(token)
            raise
        await self._index.put(index_entry(key, yanked), token)
        log.info("yanked invoice %s", bindle_id)

    def published_keys(self, roles: list[SignatureRole] | None = None) -> KeyRing:
        """The server's public keys (with signed labels), optionally only those with `roles`."""
        return self._signing.published_keys(roles)

    async def missing_parcels(self, bindle_id: BindleId) -> list[Label]:
        """Labels of the invoice's parcels whose bytes are not stored, in invoice order."""
        return await self._missing_labels(await self.get_invoice(bindle_id))

    async def upload_parcel(
        self,
        bindle_id: BindleId,
        sha256: str,
        chunks: AsyncIterable[bytes],
        content_length: int | None = None,
    ) -> None:
        """Store a parcel listed by a live invoice, verifying its size and digest."""
        check_sha256(sha256)
        label = await self._listed_label(bindle_id, sha256, allow_yanked=False)
        if await self._parcels.exists(sha256):
            raise ParcelExists(sha256)
        if content_length is not None and content_length != label.size:
            raise SizeMismatch(sha256, label.size, content_length)
        stored = await self._parcels.write(sha256, label.size, chunks)
        log.info(
            "stored parcel %s (%d bytes) for %s%s",
            sha256,
            label.size,
            bindle_id,
            "" if stored else ", already stored by a concurrent upload",
        )

    async def stored_parcel(
        self, bindle_id: BindleId, sha256: str, *, allow_yanked: bool = False
    ) -> StoredParcel:
        """A stored parcel reached through an invoice that lists it: its label and size."""
        check_sha256(sha256)
        label = await self._listed_label(bindle_id, sha256, allow_yanked=allow_yanked)
        size = await self._parcels.size(sha256)
        if size is None:
            raise ParcelNotFound(sha256)
        if size != label.size:
            # Damage on disk (or a wrong label in this invoice): serve what is stored, with
            # its true length, and let the client's digest check and fsck tell the rest.
            log.error(
                "parcel %s has %d bytes stored but %d in the label of %s; run bindle-server fsck",
                sha256,
                size,
                label.size,
                bindle_id,
            )
        return StoredParcel(label, size)

    def read_parcel(
        self, sha256: str, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        """Stream a stored parcel's bytes (after `stored_parcel` said it is there)."""
        return self._parcels.read(sha256, start, end)

    async def query(self, query: Query) -> QueryResult:
        """Invoices whose name holds every term (and whose version passes the filter)."""
        page = await self._index.query(query)
        invoices = [Invoice.model_validate_json(document) for document in page.documents]
        return QueryResult(query, page.total, invoices)

    async def reindex(self) -> tuple[int, int]:
        """Rebuild the index from the invoice store; return (indexed, skipped)."""
        return await rebuild_index(self._invoices, self._index)

    async def _listed_label(self, bindle_id: BindleId, sha256: str, *, allow_yanked: bool) -> Label:
        invoice = await self.get_invoice(bindle_id, allow_yanked=allow_yanked)
        label = invoice.label_for(sha256)
        if label is None:
            raise ParcelNotInInvoice(str(bindle_id), sha256)
        return label

    async def _parse_stored(self, bindle_id: BindleId, document: bytes) -> Invoice:
        """A stored invoice; large ones are parsed once per process (see _ParsedCache)."""
        digest = hashlib.blake2b(document, digest_size=16).digest()
        cached = self._parsed.get(digest)
        if cached is not None:
            return cached
        try:
            if len(document) < _PARSE_IN_THREAD_BYTES:
                invoice = parse_invoice(document)
            else:
                invoice = await anyio.to_thread.run_sync(parse_invoice, document)
        except InvalidInvoice as exc:
            log.error("stored invoice %s does not parse: %s", bindle_id, exc)
            raise StoredInvoiceDamaged(str(bindle_id)) from None
        self._parsed.put(digest, invoice, len(document))
        return invoice

    async def _missing_labels(self, invoice: Invoice) -> list[Label]:
        absent = await self._parcels.missing(label.sha256 for label in invoice.labels)
        return [label for label in invoice.labels if label.sha256 in absent]


async def rebuild_index(invoices: InvoiceStore, index: Index) -> tuple[int, int]:
    """Refill `index` from every stored invoice; return (indexed, skipped unreadable)."""
    await index.clear()
    indexed = skipped = 0
    async for key, document in invoices.scan():
        try:
            invoice = parse_invoice(document)
        except InvalidInvoice as exc:  # an unreadable file must not stop the rebuild
            log.warning("skipping unreadable invoice %s: %s", key, exc)
            skipped += 1
            continue
        if invoice.bindle_id.key != key:
            log.warning("skipping invoice %s: it is stored under the wrong key", key)
            skipped += 1
            continue
        await index.put(index_entry(key, invoice))
        indexed += 1
    await index.mark_filled("invoices")
    log.info("reindexed %d invoice(s), skipped %d", indexed, skipped)
    return indexed, skipped


# Parsing is the cost of every invoice and parcel request (0.1 s for 10,000 parcels), so
# large stored invoices are parsed once per process, and off the event loop. Keyed by the
# document's digest, so a yank (a new document) is never answered from the cache.
_PARSE_IN_THREAD_BYTES = 256 * 1024
_CACHE_MIN_BYTES = 64 * 1024
_CACHE_MAX_BYTES = 64 * 1024 * 1024


class _ParsedCache:
    """Recently used large invoices, bounded by the total size of their documents."""

    def __init__(self) -> None:
        self._entries: OrderedDict[bytes, tuple[Invoice, int]] = OrderedDict()
        self._bytes = 0

    def get(self, digest: bytes) -> Invoice | None:
        entry = self._entries.get(digest)
        if entry is None:
            return None
        self._entries.move_to_end(digest)
        return entry[0]

    def put(self, digest: bytes, invoice: Invoice, size: int) -> None:
        if size < _CACHE_MIN_BYTES or digest in self._entries:
            return
        self._entries[digest] = (invoice, size)
        self._bytes += size
        while self._bytes > _CACHE_MAX_BYTES:
            _, (_, dropped) = self._entries.popitem(last=False)
            self._bytes -= dropped


def index_entry(key: str, invoice: Invoice) -> IndexEntry:
    document = dump_document(to_document(invoice, Format.TOML), Format.JSON).decode()
    return IndexEntry(
        key=key,
        name=invoice.bindle.name,
        version=invoice.bindle.version,
        yanked=invoice.is_yanked,
        document=document,
    )
