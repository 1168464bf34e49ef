"""BindleService: the spec's verbs over the stores and the index.

Rules that need stored state live here (an invoice exists, is yanked or pending, a parcel
is listed by the invoice it is reached through); rules about a document alone live in
`model`.

Atomic pushes (`atomic_push`): an invoice created while parcels are missing is *pending*.
Its pending record is written before the invoice (so a rebuilt index knows it), the index
records which parcels it awaits, and the upload that stores the last one commits it in
the same index transaction. Readers decide visibility from the index, so every node sees
the commit at the same moment. Without atomic pushes invoices are committed at once, as
in the reference.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass, replace
from typing import TypeVar

import anyio

from bindle_server.errors import (
    DigestMismatch,
    InsufficientStorage,
    InvalidInvoice,
    InvoiceConflict,
    InvoiceExists,
    InvoiceNotFound,
    InvoicePending,
    InvoicePurged,
    InvoiceYanked,
    ParcelExists,
    ParcelNotFound,
    ParcelNotInInvoice,
    PayloadTooLarge,
    SizeMismatch,
    StorageUnavailable,
    YankedOnCreate,
)
from bindle_server.events import Action, Event, EventSink, NullSink
from bindle_server.model import (
    BindleId,
    Format,
    Invoice,
    Label,
    SignatureRole,
    check_sha256,
    dump_invoice,
    parse_invoice,
)
from bindle_server.search.index import Index, InvoiceState
from bindle_server.search.query import Query
from bindle_server.service.completion import Completion
from bindle_server.service.indexing import (
    ParsedCache,
    RecentSet,
    index_entry,
    rebuild_index,
    stored_entry,
)
from bindle_server.service.purging import StoredInvoices
from bindle_server.service.rendered import RenderedCache, Rendering
from bindle_server.signing import HostSigning, KeyRing
from bindle_server.storage import RecordKind, Stores

log = logging.getLogger(__name__)
T = TypeVar("T")

# How long an upload waits for a collector that is removing the same parcel right now.
_CONDEMNED_WAIT = 30.0
# Committed documents this process has seen, so reading them again needs no index query.
_KNOWN_VISIBLE = 65_536


@dataclass(frozen=True)
class CreatedInvoice:
    """The stored invoice and the labels of its parcels that are not stored yet; `stored`
    is its TOML as written (model.dump_invoice), when this call wrote it."""

    invoice: Invoice
    missing: list[Label]
    stored: bytes | None = None


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


class BindleService(Completion, StoredInvoices, Rendering):
    """Create, fetch, yank and purge invoices; accept and serve parcels; answer queries."""

    def __init__(
        self,
        stores: Stores,
        index: Index,
        signing: HostSigning | None,
        *,
        max_parcels: int = 50_000,
        max_parcel_bytes: int | None = None,
        atomic_push: bool = False,
        events: EventSink | None = None,
    ) -> None:
        self.events: EventSink = events if events is not None else NullSink()
        self._max_parcels = max_parcels
        self._max_parcel_bytes = max_parcel_bytes
        self._atomic = atomic_push
        self._parsed = ParsedCache()
        self._rendered = RenderedCache()
        self._visible = RecentSet(_KNOWN_VISIBLE)
        self._stores = stores
        self._parcels = stores.parcels
        self._invoices = stores.invoices
        self._index = index
        self._signing = signing

    @property
    def signing(self) -> HostSigning:
        """The host's keys, the keyring it trusts and its verification settings."""
        if self._signing is None:  # maintenance commands (purge, gc) open no keys
            raise RuntimeError("this service was opened without signing keys")
        return self._signing

    @property
    def index(self) -> Index:
        return self._index

    @property
    def stores(self) -> Stores:
        return self._stores

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
                    invoice = parse_invoice(document)
                except InvalidInvoice as exc:
                    log.warning("invoice %s is unreadable and stays out of the index: %s", key, exc)
                else:
                    pending = await self._invoices.read_record(RecordKind.PENDING, key)
                    entry = await stored_entry(self._stores, key, invoice, pending is not None)
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
        submitted = parse_invoice(body, fmt)
        if authorize is not None:
            authorize(submitted.bindle_id)
        self._check_limits(submitted)
        bindle_id = submitted.bindle_id
        key = bindle_id.key
        tombstone = await self._tombstone(key)
        if tombstone is not None and not tombstone.allows(submitted):
            raise InvoicePurged(str(bindle_id), tombstone.purged_at)
        absent = await self._check_stored_sizes(submitted)
        await self.events.ready()
        invoice = self.signing.accept(submitted)
        document = dump_invoice(invoice)
        mark = self._change_mark()  # before the write: see Rendering.remember_created
        token = await self._index.begin(key)
        recorded = False
        try:
            if self._atomic and absent:
                # Before the invoice: an index rebuilt from the store must find it pending.
                recorded = await self._invoices.put_record(
                    RecordKind.PENDING, key, b"", replace=False
                )
            created = await self._invoices.create(key, document)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self._index.end(token)
                if recorded:
                    await self._invoices.delete_record(RecordKind.PENDING, key)
            raise
        if not created:
            await self._index.end(token)
            if recorded:
                await self._invoices.delete_record(RecordKind.PENDING, key)
            return await self._resume(bindle_id, submitted)
        state = InvoiceState.PENDING if self._atomic else InvoiceState.COMMITTED
        # What it awaits goes in with it: one index transaction, not two, for a push.
        entry = index_entry(key, invoice, state, tuple(sorted(absent)), stored=document)
        condemned = await self._index.put(entry, token)
        # Asked again after the references are recorded: a collector that removed one of
        # these parcels since the first look has either finished (the parcel is absent
        # now) or is still at it (condemned); from here on it can remove none of them.
        missing = await self._missing_labels(invoice, condemned)
        # Settled before it is reported: a report that fails then leaves a stored invoice
        # whose completion the index still tracks.
        complete = await self._settle_pending(key, missing, absent, recorded)
        await self.events.record(
            Event.now(Action.INVOICE_CREATED, bindle=str(bindle_id), missing=len(missing))
        )
        if complete:
            await self._completed(key, str(bindle_id))
        if complete or not self._atomic:
            self._remember_created(key, mark, document)
        log.info(
            "stored invoice %s (%d parcel(s), %d missing%s)",
            bindle_id,
            len(invoice.parcels),
            len(missing),
            ", pending" if self._atomic and missing else "",
        )
        return CreatedInvoice(invoice, missing, document)

    def _check_limits(self, invoice: Invoice) -> None:
        if invoice.is_yanked:
            raise YankedOnCreate()
        if len(invoice.parcels) > self._max_parcels:
            raise PayloadTooLarge(
                f"invoice lists {len(invoice.parcels)} parcels; the limit is {self._max_parcels}"
            )
        limit = self._max_parcel_bytes
        if limit is not None:
            for label in invoice.labels:
                if label.size > limit:
                    raise PayloadTooLarge(
                        f"parcel {label.sha256} ({label.name or 'unnamed'}) is {label.size} "
                        f"bytes; this server takes parcels of at most {limit} bytes"
                    )

    async def _resume(self, bindle_id: BindleId, submitted: Invoice) -> CreatedInvoice:
        """A create of an id that exists: resume a pending push of the same invoice."""
        try:
            existing, pending = await self._read(bindle_id, allow_yanked=True, allow_pending=True)
        except InvoiceNotFound:
            raise InvoiceExists(str(bindle_id)) from None  # removed meanwhile; let them retry
        if not pending:
            raise InvoiceExists(str(bindle_id))
        differences = existing.differences(submitted)
        if differences:
            raise InvoiceConflict(str(bindle_id), "; ".join(differences))
        key = bindle_id.key
        missing = await self._missing_labels(existing)
        if missing:
            await self._index.touch(key)
        else:
            await self._commit(key)
        log.info("resumed pending invoice %s (%d missing)", bindle_id, len(missing))
        return CreatedInvoice(existing, missing)

    async def get_invoice(self, bindle_id: BindleId, *, allow_yanked: bool = False) -> Invoice:
        """The stored, committed invoice; InvoiceYanked unless `allow_yanked` when yanked."""
        invoice, _ = await self._read(bindle_id, allow_yanked=allow_yanked)
        return invoice

    async def yank_invoice(self, bindle_id: BindleId) -> None:
        """Mark an invoice yanked; yanking a yanked invoice changes nothing."""
        invoice = await self.get_invoice(bindle_id, allow_yanked=True)
        if invoice.is_yanked:
            return
        await self.events.ready()
        yanked = self.signing.yank(invoice)
        key = bindle_id.key
        token = await self._index.begin(key)
        document = dump_invoice(yanked)
        try:
            await self._invoices.replace(key, document)
        except BaseException:
            await self._index.end(token)
            raise
        # The parcels it lists are the same: their references stay as they are.
        entry = index_entry(key, yanked, stored=document)
        await self._index.put(replace(entry, parcels=None), token)
        log.info("yanked invoice %s", bindle_id)
        await self.events.record(Event.now(Action.INVOICE_YANKED, bindle=str(bindle_id)))

    def published_keys(self, roles: list[SignatureRole] | None = None) -> KeyRing:
        """The server's public keys (with signed labels), optionally only those with `roles`."""
        return self.signing.published_keys(roles)

    async def missing_parcels(self, bindle_id: BindleId) -> list[Label]:
        """Labels of the invoice's parcels whose bytes are not stored, in invoice order.

        Answered for pending invoices too (that is how a push resumes); a pending one
        whose parcels are all stored is committed here.
        """
        invoice, pending = await self._read(bindle_id, allow_pending=True)
        missing = await self._missing_labels(invoice)
        if pending:
            if missing:
                await self._index.touch(bindle_id.key)
            else:
                await self._commit(bindle_id.key)
        return missing

    async def upload_parcel(
        self,
        bindle_id: BindleId,
        sha256: str,
        chunks: AsyncIterable[bytes],
        content_length: int | None = None,
    ) -> None:
        """Store a parcel listed by a live (or pending) invoice, verifying size and digest."""
        check_sha256(sha256)
        invoice, pending = await self._read(bindle_id, allow_pending=True)
        try:
            await self._store_parcel(bindle_id, invoice, pending, sha256, chunks, content_length)
        except (ParcelNotInInvoice, SizeMismatch, DigestMismatch, InsufficientStorage) as exc:
            refusal = next(why for kind, why in _REFUSALS.items() if isinstance(exc, kind))
            try:
                await self.events.record(
                    Event.now(
                        Action.PARCEL_REFUSED, bindle=str(bindle_id), digest=sha256, result=refusal
                    )
                )
            except Exception:  # a full disk fails the audit line too: the 507 is the answer
                log.exception("could not record the refused upload of %s", sha256)
            raise

    async def _store_parcel(
        self,
        bindle_id: BindleId,
        invoice: Invoice,
        pending: bool,
        sha256: str,
        chunks: AsyncIterable[bytes],
        content_length: int | None,
    ) -> None:
        label = _listed_label(invoice, bindle_id, sha256)
        if pending:
            await self._index.touch(bindle_id.key)
        if await self._parcels.exists(sha256) and not await self._removed_meanwhile(sha256):
            await self._arrived([sha256])
            raise ParcelExists(sha256)
        if content_length is not None and content_length != label.size:
            raise SizeMismatch(sha256, label.size, content_length)
        await self.events.ready()
        stored = await self._parcels.write(sha256, label.size, chunks)
        log.info(
            "stored parcel %s (%d bytes) for %s%s",
            sha256,
            label.size,
            bindle_id,
            "" if stored else ", already stored by a concurrent upload",
        )
        if stored:
            await self.events.record(
                Event.now(
                    Action.PARCEL_STORED, bindle=str(bindle_id), digest=sha256, size=label.size
                )
            )
        await self._arrived([sha256])

    async def _removed_meanwhile(self, sha256: str) -> bool:
        """Whether a stored parcel is being collected: wait for the collector, then True
        if the parcel is gone (so the upload stores it again)."""
        deadline = time.monotonic() + _CONDEMNED_WAIT
        while await self._index.condemned([sha256]):
            if time.monotonic() > deadline:
                raise StorageUnavailable(
                    f"parcel {sha256} is being removed by garbage collection; retry shortly"
                )
            await anyio.sleep(0.05)
        return not await self._parcels.exists(sha256)

    async def stored_parcel(
        self, bindle_id: BindleId, sha256: str, *, allow_yanked: bool = False
    ) -> StoredParcel:
        """A stored parcel reached through an invoice that lists it: its label and size."""
        check_sha256(sha256)
        invoice, _ = await self._read(bindle_id, allow_yanked=allow_yanked)
        label = _listed_label(invoice, bindle_id, sha256)
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
        """Rebuild the index from the stores; return (indexed, skipped)."""
        return await rebuild_index(self._stores, self._index)

    async def _read(
        self, bindle_id: BindleId, *, allow_yanked: bool = False, allow_pending: bool = False
    ) -> tuple[Invoice, bool]:
        """The stored invoice and whether it is pending; errors for what may not be read."""
        key = bindle_id.key
        document = await self._invoices.read(key)
        if document is None:
            raise await self._not_found(bindle_id)
        digest = hashlib.blake2b(document, digest_size=16).digest()
        invoice = await self._parse_stored(bindle_id, document, digest)
        pending = False
        if digest not in self._visible:
            status = await self._index.status(key)
            if status is None:
                # Not indexed (yet): a write in flight, or one a crash interrupted. Its
                # pending record says whether it waits for parcels.
                pending = await self._invoices.read_record(RecordKind.PENDING, key) is not None
            elif status.state is InvoiceState.REMOVING:
                raise InvoiceNotFound(str(bindle_id))
            elif status.state is InvoiceState.PENDING:
                pending = True
            else:
                self._visible.add(digest)
            if pending and not allow_pending:
                awaiting = status.awaiting if status is not None else 0
                if not awaiting:
                    awaiting = len(await self._missing_labels(invoice))
                raise InvoicePending(str(bindle_id), awaiting)
        if invoice.is_yanked and not allow_yanked:
            raise InvoiceYanked(str(bindle_id))
        return invoice, pending


# How metrics and the audit log name each reason an upload is refused for.
_REFUSALS: dict[type[Exception], str] = {
    ParcelNotInInvoice: "not listed",
    SizeMismatch: "size",
    DigestMismatch: "digest",
    InsufficientStorage: "disk full",
}


def _listed_label(invoice: Invoice, bindle_id: BindleId, sha256: str) -> Label:
    label = invoice.label_for(sha256)
    if label is None:
        raise ParcelNotInInvoice(str(bindle_id), sha256)
    return label
