"""When an invoice becomes complete: every parcel it lists is stored.

With atomic pushes that is when a pending invoice is committed; without, the invoice was
served from its create, and completion is what the event stream and `bindle watch` wait
for. Either way the index records what each incomplete invoice awaits, and the upload
that stores the last awaited parcel learns it in the transaction that records the arrival.
"""

from __future__ import annotations

import logging

from bindle_server.errors import InvalidInvoice, SizeMismatch
from bindle_server.events import Action, Event, EventSink
from bindle_server.model import Invoice, Label, parse_invoice
from bindle_server.search.index import Index
from bindle_server.storage import InvoiceStore, ParcelStore, RecordKind
from bindle_server.threads import run_sync

log = logging.getLogger(__name__)


class Completion:
    """Commit and report complete invoices; which labels are still missing."""

    _atomic: bool
    _index: Index
    _invoices: InvoiceStore
    _parcels: ParcelStore
    events: EventSink

    async def _check_stored_sizes(self, submitted: Invoice) -> set[str]:
        """Refuse labels that contradict stored parcels; the digests not stored."""
        digests = {label.sha256 for label in submitted.labels}
        stored_sizes = await self._parcels.stored_sizes(list(digests))
        for label in submitted.labels:
            stored = stored_sizes.get(label.sha256)
            if stored is not None and stored != label.size:
                # The invoice could never be fetched whole: its label contradicts bytes
                # that are already stored under that digest.
                raise SizeMismatch(label.sha256, label.size, stored)
        return digests - stored_sizes.keys()

    async def _settle_pending(
        self, key: str, missing: list[Label], awaited: set[str], recorded: bool
    ) -> bool:
        """After a create: commit it (an atomic push), or make sure the index knows all it
        awaits (its entry went in `awaited`), so that the upload of the last parcel commits
        it; True when it is complete now. Its completion is the caller's to report, after
        its creation."""
        if not missing:
            await self._commit(key, report=False)
            return True
        if self._atomic and not recorded:  # all were stored at first, then a collector took some
            await self._invoices.put_record(RecordKind.PENDING, key, b"", replace=False)
        digests = [label.sha256 for label in missing]
        if not awaited.issuperset(digests):  # a collector took some since the first look
            await self._index.await_parcels(key, digests)
        # An upload that stored one of them between our look and the index entry found
        # nothing awaiting it: look once more now that the index knows.
        arrived = set(digests) - await self._parcels.missing(digests)
        arrived -= await self._index.condemned(sorted(arrived))
        return bool(arrived) and key in await self._arrived(sorted(arrived), unreported=key)

    async def _arrived(self, digests: list[str], *, unreported: str = "") -> list[str]:
        """Record parcels as stored; report the invoices this completes (but `unreported`)."""
        complete = await self._index.arrived(digests)
        for key in complete:
            if self._atomic:
                await self._invoices.delete_record(RecordKind.PENDING, key)
            if key != unreported:
                await self._completed(key)
        return complete

    async def _commit(self, key: str, bindle: str | None = None, *, report: bool = True) -> None:
        """Commit an invoice whose parcels are all stored, and report it complete."""
        committed = True  # without atomic pushes: committed at its create
        if self._atomic:
            committed = await self._index.commit(key)
            await self._invoices.delete_record(RecordKind.PENDING, key)
        if committed and report:
            await self._completed(key, bindle)

    async def _completed(self, key: str, bindle: str | None = None) -> None:
        if bindle is None:
            bindle = await self._bindle_of(key)
        log.info("invoice %s has all its parcels%s", bindle, ": committed" if self._atomic else "")
        await self.events.record(Event.now(Action.INVOICE_COMPLETED, bindle=bindle))

    async def _bindle_of(self, key: str) -> str:
        """The bindle id stored under `key` (the key itself when unreadable)."""
        document = await self._invoices.read(key)
        if document is None:
            return key
        try:
            # In a thread: an invoice of thousands of parcels takes a while to parse.
            invoice = await run_sync(parse_invoice, document)
        except InvalidInvoice:
            return key
        return str(invoice.bindle_id)

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
