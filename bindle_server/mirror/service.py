"""MirrorService: BindleService that fetches what it does not store from its upstreams.

A read of an invoice that is not stored here fetches it from the first upstream that has
it, checks it (see `upstream`), stores it as it came and serves it. A parcel that is not
stored is streamed from the upstream to the caller and into the store at once
(`tee.tee_to_store`); only verified bytes become visible. Once stored, both are served
without the upstream. Yanks made upstream are picked up on reads, at most once per
`refresh` seconds per invoice, while the upstream can be reached.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterable, AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import anyio

from bindle_server.errors import (
    AccessDenied,
    BindleError,
    InvoiceNotFound,
    InvoiceYanked,
    ParcelNotFound,
)
from bindle_server.events import Action, Event, EventSink
from bindle_server.mirror.merge import merge_pages
from bindle_server.mirror.tee import tee_to_store
from bindle_server.mirror.upstream import Upstream
from bindle_server.model import BindleId, Format, Invoice, dump_invoice, parse_invoice
from bindle_server.search.index import Index
from bindle_server.search.query import Query
from bindle_server.service import BindleService, CreatedInvoice, QueryResult, StoredParcel
from bindle_server.service.indexing import index_entry
from bindle_server.signing import HostSigning
from bindle_server.storage import Stores

log = logging.getLogger(__name__)

# Remembered per process: where a parcel about to be served is fetched from, and when an
# invoice's yank status was last asked upstream. Bounded; forgetting only costs a request.
_REMEMBERED = 65_536


class MirroredName(AccessDenied):
    """A local push to a bindle name that an upstream serves (403)."""

    def __init__(self, name: str, origin: str) -> None:
        BindleError.__init__(
            self,
            f"bindle {name} is served by the upstream {origin}: this mirror refuses local "
            "pushes to it (push to the upstream, or start the mirror with "
            "--upstream-allow-local)",
        )
        self.subject = "anyone"
        self.verb = "create"
        self.name = name


@dataclass(frozen=True)
class _Source:
    origin: str
    bindle_id: BindleId
    size: int


def _remember(table: OrderedDict[str, Any], key: str, value: Any) -> None:
    table[key] = value
    table.move_to_end(key)
    if len(table) > _REMEMBERED:
        table.popitem(last=False)


class MirrorService(BindleService):
    """A BindleService that reads through to upstream Bindle servers on a local miss."""

    def __init__(
        self,
        stores: Stores,
        index: Index,
        signing: HostSigning | None,
        *,
        upstream: Upstream,
        refresh: float | None = 300.0,
        allow_local: bool = False,
        max_parcels: int = 50_000,
        max_parcel_bytes: int | None = None,
        atomic_push: bool = False,
        events: EventSink | None = None,
    ) -> None:
        """`refresh`: seconds between rechecks of an invoice's yank status (None: never);
        `allow_local`: accept local pushes of names an upstream serves."""
        super().__init__(
            stores,
            index,
            signing,
            max_parcels=max_parcels,
            max_parcel_bytes=max_parcel_bytes,
            atomic_push=atomic_push,
            events=events,
        )
        self.upstream = upstream
        self._refresh = refresh
        self._allow_local = allow_local
        self._sources: OrderedDict[str, _Source] = OrderedDict()
        self._checked: OrderedDict[str, float] = OrderedDict()
        # An invoice this process has not checked counts as checked when it started: each
        # worker process keeps its own times, and a restart must not ask about every one.
        self._started = time.monotonic()

    async def create_invoice(
        self,
        body: bytes,
        fmt: Format = Format.TOML,
        *,
        authorize: Callable[[BindleId], None] | None = None,
    ) -> CreatedInvoice:
        """Like BindleService.create_invoice; refuses names an upstream serves unless
        local pushes are allowed."""
        if not self._allow_local:
            bindle_id = parse_invoice(body, fmt).bindle_id
            if authorize is not None:  # a caller who may not push here learns nothing more
                authorize(bindle_id)
            name = bindle_id.name
            origin = await self.upstream.serves_name(name)
            if origin is not None:
                raise MirroredName(name, origin)
        return await super().create_invoice(body, fmt, authorize=authorize)

    async def stored_parcel(
        self, bindle_id: BindleId, sha256: str, *, allow_yanked: bool = False
    ) -> StoredParcel:
        """The stored parcel, or, when only an upstream has it, its label and size (the
        bytes are then fetched through by `read_parcel`)."""
        try:
            return await super().stored_parcel(bindle_id, sha256, allow_yanked=allow_yanked)
        except ParcelNotFound:
            invoice = await self.get_invoice(bindle_id, allow_yanked=allow_yanked)
            label = invoice.label_for(sha256)
            assert label is not None  # the parent checked that the invoice lists it
            origin = await self.upstream.locate_parcel(bindle_id, sha256)
            _remember(self._sources, sha256, _Source(origin, bindle_id, label.size))
            return StoredParcel(label, label.size)

    def read_parcel(
        self, sha256: str, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        """Stream a stored parcel; one `stored_parcel` found only upstream is fetched
        through: streamed to the caller while it is stored."""
        source = self._sources.get(sha256)
        if source is None:
            return super().read_parcel(sha256, start, end)
        return self._read_through(sha256, source, start, end)

    async def _read_through(
        self, sha256: str, source: _Source, start: int, end: int | None
    ) -> AsyncIterator[bytes]:
        if await self._parcels.exists(sha256):  # stored by another request meanwhile
            async for chunk in super().read_parcel(sha256, start, end):
                yield chunk
            return

        await self.events.ready()

        async def store(chunks: AsyncIterable[bytes]) -> bool:
            return await self._parcels.write(sha256, source.size, chunks)

        async with self.upstream.parcel(source.origin, source.bindle_id, sha256) as chunks:
            async for piece in tee_to_store(chunks, store, start, end):
                yield piece
        self._sources.pop(sha256, None)
        log.info("mirrored parcel %s (%d bytes) from %s", sha256, source.size, source.origin)
        await self.events.record(
            Event.now(
                Action.PARCEL_STORED,
                bindle=str(source.bindle_id),
                digest=sha256,
                size=source.size,
                upstream=source.origin,
            )
        )
        await self._arrived([sha256])

    async def query_with_upstream(
        self, query: Query, params: Sequence[tuple[str, str]]
    ) -> QueryResult:
        """Local and upstream matches together, de-duplicated by bindle id (local first).

        `params` are the request's `_q` parameters, passed on to each upstream. Each
        source is asked for its first 255 matches at most (the largest page), so pages
        past that many merged matches come out short.
        """
        window = query.offset + query.limit
        local = await self.query(dataclasses.replace(query, offset=0, limit=min(window, 255)))
        passed = [(k, v) for k, v in params if k not in ("o", "l", "offset", "limit")]
        pages = await self.upstream.query([*passed, ("o", "0"), ("l", str(min(window, 255)))])
        return merge_pages(query, local, pages)

    def _change_mark(self) -> int | None:
        # Every read may have to recheck the upstream's yank, so none is answered from memory.
        return None

    async def _read(
        self, bindle_id: BindleId, *, allow_yanked: bool = False, allow_pending: bool = False
    ) -> tuple[Invoice, bool]:
        try:
            invoice, pending = await super()._read(
                bindle_id, allow_yanked=True, allow_pending=allow_pending
            )
        except InvoiceNotFound:
            if not await self._mirror_invoice(bindle_id):
                raise
            invoice, pending = await super()._read(
                bindle_id, allow_yanked=True, allow_pending=allow_pending
            )
        else:
            if not invoice.is_yanked and await self._yanked_upstream(bindle_id):
                await super().yank_invoice(bindle_id)
                invoice, pending = await super()._read(
                    bindle_id, allow_yanked=True, allow_pending=allow_pending
                )
        if invoice.is_yanked and not allow_yanked:
            raise InvoiceYanked(str(bindle_id))
        return invoice, pending

    async def _mirror_invoice(self, bindle_id: BindleId) -> bool:
        """Fetch, check and store an invoice an upstream has; False when it was purged here
        (a purge is the operator's word: the mirror does not bring it back)."""
        key = bindle_id.key
        if await self._tombstone(key) is not None:
            return False
        found = await self.upstream.invoice(bindle_id)  # InvoiceNotFound when none has it
        await self.events.ready()
        document = dump_invoice(found.invoice)
        token = await self._index.begin(key)
        try:
            created = await self._invoices.create(key, document)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self._index.end(token)
            raise
        if not created:  # a concurrent read stored it first
            await self._index.end(token)
            return True
        await self._index.put(index_entry(key, found.invoice, stored=document), token)
        _remember(self._checked, key, time.monotonic())
        log.info("mirrored invoice %s from %s", bindle_id, found.origin)
        # A change like a push: audited, and announced to webhooks and watchers.
        await self.events.record(
            Event.now(
                Action.INVOICE_CREATED,
                bindle=str(bindle_id),
                upstream=found.origin,
            )
        )
        return True

    async def _yanked_upstream(self, bindle_id: BindleId) -> bool:
        """Whether the upstream has yanked an invoice that is live here; asked at most once
        per `refresh` seconds per invoice (and server process)."""
        if self._refresh is None:
            return False
        key = bindle_id.key
        now = time.monotonic()
        if now - self._checked.get(key, self._started) < self._refresh:
            return False
        _remember(self._checked, key, now)
        yanked = await self.upstream.is_yanked(bindle_id)
        if yanked:
            log.info("invoice %s was yanked upstream: yanking it here", bindle_id)
        return bool(yanked)
