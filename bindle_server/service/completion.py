"""When an invoice becomes complete: every parcel it lists is stored.

With atomic pushes that is when a pending invoice is committed; without, the invoice was
served from its create, and completion is what the event stream and `bindle watch` wait
for. Either way the index records what each incomplete invoice awaits, and the upload
that stores the last awaited parcel learns it in the transaction that records the arrival.
"""

from __future__ import annotations

import logging

from bindle_server.events import Action, Event, EventSink
from bindle_server.model import Invoice, Label, parse_invoice
from bindle_server.search.index import Index
from bindle_server.storage import InvoiceStore, ParcelStore, RecordKind

log = logging.getLogger(__name__)


class Completion:
    """Commit and report complete invoices; which labels are still missing."""

    _atomic: bool
    _index: Index
    _invoices: InvoiceStore
    _parcels: ParcelStore
    events: EventSink

    async def _settle_pending(
        self, key: str, bindle: str, missing: list[Label], recorded: bool
    ) -> None:
        """After a create: commit it (an atomic push) and report it complete, or record
        what it awaits, so that the upload of the last parcel does both."""
        if not missing:
            await self._commit(key, bindle)
            return
        if self._atomic and not recorded:  # all were stored at first, then a collector took some
            await self._invoices.put_record(RecordKind.PENDING, key, b"", replace=False)
        awaited = [label.sha256 for label in missing]
        await self._index.await_parcels(key, awaited)
        # An upload that stored one of them between our look and the line above found
        # nothing awaiting it: look once more now that the index knows.
        arrived = set(awaited) - await self._parcels.missing(awaited)
        arrived -= await self._index.condemned(sorted(arrived))
        if arrived:
            await self._arrived(sorted(arrived))

    async def _arrived(self, digests: list[str]) -> None:
        for key in await self._index.arrived(digests):
            if self._atomic:
                await self._invoices.delete_record(RecordKind.PENDING, key)
            await self._completed(key)

    async def _commit(self, key: str, bindle: str | None = None) -> None:
        """Commit an invoice whose parcels are all stored, and report it complete."""
        if not self._atomic:  # committed at its create
            await self._completed(key, bindle)
            return
        committed = await self._index.commit(key)
        await self._invoices.delete_record(RecordKind.PENDING, key)
        if committed:
            await self._completed(key, bindle)

    async def _completed(self, key: str, bindle: str | None = None) -> None:
        if bindle is None:
            document = await self._invoices.read(key)
            bindle = str(parse_invoice(document).bindle_id) if document is not None else key
        log.info("invoice %s has all its parcels%s", bindle, ": committed" if self._atomic else "")
        await self.events.record(Event.now(Action.INVOICE_COMPLETED, bindle=bindle))

    async def _missing_labels(
        self, invoice: Invoice, condemned: set[str] | None = None
    ) -> list[Label]:
        """Labels whose parcels are absent, or condemned by a collector removing them."""
        digests = [label.sha256 for label in invoice.labels]
        absent = await self._parcels.missing(digests)
        if condemned is None:
            condemned = await self._index.condemned(digests)
        gone = absent | condemned
        return [label for label in invoice.labels if label.sha256 in gone]
