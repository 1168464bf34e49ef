"""What the index holds of an invoice, built from the stores: for writes, recovery and rebuilds."""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Generic, TypeVar

from bindle_server.errors import InvalidInvoice
from bindle_server.model import (
    Format,
    Invoice,
    dump_document,
    dump_invoice,
    parse_invoice,
    to_document,
)
from bindle_server.model.pages import toml_entry
from bindle_server.search.index import Index, IndexEntry, InvoiceState
from bindle_server.storage import RecordKind, Stores

log = logging.getLogger(__name__)
K = TypeVar("K")
V = TypeVar("V")


def index_entry(
    key: str,
    invoice: Invoice,
    state: InvoiceState = InvoiceState.COMMITTED,
    awaiting: tuple[str, ...] = (),
    stored: bytes | None = None,
) -> IndexEntry:
    """The index entry of a stored invoice, with the parcels it lists; `stored` is its
    document as model.dump_invoice wrote it, when the caller has it at hand."""
    document = dump_document(to_document(invoice, Format.JSON), Format.JSON).decode()
    standalone = dump_invoice(invoice) if stored is None else stored
    return IndexEntry(
        key=key,
        name=invoice.bindle.name,
        version=invoice.bindle.version,
        yanked=invoice.is_yanked,
        document=document,
        toml_entry=toml_entry(standalone).decode(),
        state=state,
        created=float(invoice.created_at or 0),
        yanked_at=None if invoice.yanked_at is None else float(invoice.yanked_at),
        parcels=tuple(label.sha256 for label in invoice.labels),
        awaiting=awaiting,
    )


async def stored_entry(stores: Stores, key: str, invoice: Invoice, pending: bool) -> IndexEntry:
    """The entry of an invoice found in the store; `pending` when its pending record is.

    A pending record outlives its push by a moment (it goes after the commit), so an
    invoice with one counts as pending only while some of its parcels are missing.
    """
    if pending:
        digests = [label.sha256 for label in invoice.labels]
        absent = await stores.parcels.missing(digests)
        if absent:
            awaiting = tuple(sha256 for sha256 in digests if sha256 in absent)
            return index_entry(key, invoice, InvoiceState.PENDING, awaiting)
    return index_entry(key, invoice)


async def rebuild_index(stores: Stores, index: Index) -> tuple[int, int]:
    """Refill `index` from every stored invoice; return (indexed, skipped unreadable)."""
    await index.clear()
    pending = {record.name async for record in stores.invoices.records(RecordKind.PENDING)}
    indexed = skipped = 0
    async for key, document in stores.invoices.scan():
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
        await index.put(await stored_entry(stores, key, invoice, key in pending))
        indexed += 1
    await index.mark_filled("invoices")
    log.info("reindexed %d invoice(s), skipped %d", indexed, skipped)
    return indexed, skipped


class RecentSet:
    """A bounded set that forgets its least recently added members first."""

    def __init__(self, limit: int) -> None:
        self._members: OrderedDict[bytes, None] = OrderedDict()
        self._limit = limit

    def __contains__(self, member: bytes) -> bool:
        return member in self._members

    def add(self, member: bytes) -> None:
        self._members[member] = None
        if len(self._members) > self._limit:
            self._members.popitem(last=False)


# Parsing is the cost of every invoice and parcel request (0.1 s for 10,000 parcels), so
# large stored invoices are parsed once per process, and off the event loop. Keyed by the
# document's digest, so a yank (a new document) is never answered from the cache.
PARSE_IN_THREAD_BYTES = 256 * 1024
_CACHE_MIN_BYTES = 64 * 1024
_CACHE_MAX_BYTES = 64 * 1024 * 1024


class SizedLru(Generic[K, V]):
    """Values by key; the least recently used go once the values' sizes sum past `limit`."""

    def __init__(self, limit: int) -> None:
        self._entries: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self._size = 0
        self._limit = limit

    def get(self, key: K) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        self._entries.move_to_end(key)
        return entry[0]

    def put(self, key: K, value: V, size: int) -> None:
        self.pop(key)
        self._entries[key] = (value, size)
        self._size += size
        while self._size > self._limit:
            _, (_, dropped) = self._entries.popitem(last=False)
            self._size -= dropped

    def pop(self, key: K) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._size -= entry[1]


class ParsedCache:
    """Recently used large invoices, bounded by the total size of their documents."""

    def __init__(self) -> None:
        self._entries: SizedLru[bytes, Invoice] = SizedLru(_CACHE_MAX_BYTES)

    def get(self, digest: bytes) -> Invoice | None:
        return self._entries.get(digest)

    def put(self, digest: bytes, invoice: Invoice, size: int) -> None:
        if size >= _CACHE_MIN_BYTES:
            self._entries.put(digest, invoice, size)
