"""What BindleService does with invoices as stored: parse them once, purge them, tombstones.

A base class of BindleService, kept apart so that each module holds one purpose; it works
on the stores and index that BindleService opens.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

import anyio

from bindle_server.errors import InvalidInvoice, InvoiceNotFound, StoredInvoiceDamaged
from bindle_server.events import Action, Event, EventSink
from bindle_server.model import BindleId, Invoice, parse_invoice
from bindle_server.model.tombstone import Tombstone, content_digest
from bindle_server.search.index import Index
from bindle_server.service.indexing import PARSE_IN_THREAD_BYTES, ParsedCache
from bindle_server.storage import InvoiceStore, RecordKind
from bindle_server.threads import run_sync

log = logging.getLogger(__name__)
T = TypeVar("T")

# Store operations a purge of many bindles keeps in flight.
STORE_CONCURRENCY = 16


class StoredInvoices:
    """Parsing, purging and tombstones over an invoice store and the index."""

    _invoices: InvoiceStore
    _index: Index
    _parsed: ParsedCache
    events: EventSink

    async def purge(self, bindle_id: BindleId, *, reason: str = "purge") -> Invoice | None:
        """Remove an invoice for good, leaving a tombstone; the purged invoice (None if its
        document was unreadable). Its parcels become garbage unless others list them."""
        purged = await self.purge_many([(bindle_id, reason)])
        if not purged:
            raise await self._not_found(bindle_id)
        return purged[0][1]

    async def purge_many(
        self, purges: list[tuple[BindleId, str]]
    ) -> list[tuple[BindleId, Invoice | None]]:
        """Purge several invoices, each (bindle id, reason), with one index transaction
        for all (retention purges thousands); those not found are left out of the result."""
        found: list[tuple[BindleId, Invoice | None]] = []
        reasons = dict(purges)
        await self.events.ready()

        async def entomb(bindle_id: BindleId) -> None:
            document = await self._invoices.read(bindle_id.key)
            if document is None:
                return
            try:
                invoice: Invoice | None = await self._parse_stored(bindle_id, document)
            except StoredInvoiceDamaged:
                invoice = None  # purging is how a damaged invoice goes away, too
            tombstone = Tombstone(
                bindle_id=str(bindle_id),
                purged_at=datetime.now(UTC).isoformat(timespec="seconds"),
                content="" if invoice is None else content_digest(invoice),
                reason=reasons[bindle_id],
            )
            # The tombstone first: from then on no other content can take the id, even
            # if the removal below is interrupted (the next purge or gc finishes it).
            await self._invoices.put_record(
                RecordKind.TOMBSTONE, bindle_id.key, tombstone.dump(), replace=True
            )
            found.append((bindle_id, invoice))

        await concurrently(entomb, list(reasons))
        keys = [bindle_id.key for bindle_id, _ in found]
        await self.remove(list(zip(keys, await self._index.begin_many(keys), strict=True)))
        for bindle_id, _ in found:
            log.info("purged invoice %s (%s)", bindle_id, reasons[bindle_id])
            await self.events.record(
                Event.now(Action.INVOICE_PURGED, bindle=str(bindle_id), reason=reasons[bindle_id])
            )
        return found

    async def forget(self, bindle_id: BindleId) -> bool:
        """Lift the tombstone of a purged id; False when there was none."""
        key = bindle_id.key
        if await self._invoices.read_record(RecordKind.TOMBSTONE, key) is None:
            return False
        await self._invoices.delete_record(RecordKind.TOMBSTONE, key)
        log.info("forgot the purge of %s: the id may be pushed again", bindle_id)
        return True

    async def remove(self, removals: list[tuple[str, str]]) -> None:
        """Remove invoice documents, their pending records and their index entries, given
        as (key, write-mark token) pairs.

        The store goes first and the index last: until an entry goes, its references
        keep the parcels alive, and a crash in between is settled by the mark.
        """

        async def delete(key: str) -> None:
            await self._invoices.delete(key)
            await self._invoices.delete_record(RecordKind.PENDING, key)

        await concurrently(delete, [key for key, _ in removals])
        await self._index.remove(removals)

    async def _not_found(self, bindle_id: BindleId) -> InvoiceNotFound:
        tombstone = await self._tombstone(bindle_id.key)
        return InvoiceNotFound(str(bindle_id), tombstone.purged_at if tombstone else None)

    async def _tombstone(self, key: str) -> Tombstone | None:
        data = await self._invoices.read_record(RecordKind.TOMBSTONE, key)
        return None if data is None else Tombstone.parse(data)

    async def _parse_stored(
        self, bindle_id: BindleId, document: bytes, digest: bytes | None = None
    ) -> Invoice:
        """A stored invoice; large ones are parsed once per process (see ParsedCache)."""
        digest = digest or hashlib.blake2b(document, digest_size=16).digest()
        cached = self._parsed.get(digest)
        if cached is not None:
            return cached
        try:
            if len(document) < PARSE_IN_THREAD_BYTES:
                invoice = parse_invoice(document)
            else:
                invoice = await run_sync(parse_invoice, document)
        except InvalidInvoice as exc:
            log.error("stored invoice %s does not parse: %s", bindle_id, exc)
            raise StoredInvoiceDamaged(str(bindle_id)) from None
        self._parsed.put(digest, invoice, len(document))
        return invoice


async def concurrently(work: Callable[[T], Awaitable[None]], items: list[T]) -> None:
    """`work` on every item, `STORE_CONCURRENCY` at a time: a store's writes each wait
    for their own fsync (or request), and concurrent ones share the filesystem's journal
    commits (or the connection pool)."""
    limiter = anyio.CapacityLimiter(STORE_CONCURRENCY)

    async def one(item: T) -> None:
        async with limiter:
            await work(item)

    async with anyio.create_task_group() as group:
        for item in items:
            group.start_soon(one, item)
