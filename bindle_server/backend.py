"""Open the configured stores and index together, and release both: one way for every command.

On an object store, asking whether each of an invoice's parcels is stored costs one
request per parcel (a 20,000-parcel invoice: 20,000 HEADs, twice: at create and for
`missing`). There the index also records which parcels are stored, and `IndexedParcels`
answers those questions with one query. The store stays the truth: a parcel is recorded
only after the store committed it, and one found in the store but not recorded (a node
died in between) is recorded when next asked about directly, which is what a client's
re-upload does; `bindle-server reindex` refills the record from a listing of the store.

On local disk a stat answers those questions cheaply, but the index records the parcels
there too (`RecordedParcels`), so that the stored parcels and bytes metrics are one query
rather than a walk of the disk.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from bindle_server.search.index import Index
from bindle_server.search.registry import open_index
from bindle_server.storage import ParcelStore, StoredObject, Stores, open_stores

log = logging.getLogger(__name__)

# Parcels recorded per index statement when refilling from a store listing.
_REFILL_BATCH = 1000
# Digests known to be recorded, so that serving a parcel does not ask the index each time.
_KNOWN_RECORDED = 65_536


@dataclass(frozen=True)
class Backend:
    stores: Stores
    index: Index

    @property
    def directory(self) -> Path | None:
        """The local data directory, or None for stores that have none (S3, memory)."""
        location = self.stores.index_location
        return None if location == ":memory:" else Path(location).parent

    async def refill_parcels(self) -> int:
        """Record every parcel the store holds (after a lost or new index); how many."""
        if not isinstance(self.stores.parcels, RecordedParcels):
            return 0
        return await self.stores.parcels.refill()


@asynccontextmanager
async def open_backend(
    storage_url: str, index_url: str | None, *, start_stores: bool = True
) -> AsyncIterator[Backend]:
    """The stores `storage_url` names and the index `index_url` names (or the embedded one).

    `start_stores=False` skips the stores' start-up checks and clean-up, for a process
    that has just run them (serve checks the backend once before the app starts).
    """
    stores = open_stores(storage_url)
    try:
        if start_stores:
            await stores.start()
        if stores.shared and not index_url:
            log.warning(
                "%s keeps its query index in memory and rebuilds it at every start; "
                "several nodes sharing it need a shared index (--index postgresql://...)",
                stores.description,
            )
        index = await open_index(index_url, stores.index_location)
        try:
            recorded = (
                IndexedParcels(stores.parcels, index, stores.parcel_listing)
                if stores.parcel_listing is not None
                else RecordedParcels(stores.parcels, index, _inventory_listing(stores.parcels))
            )
            stores = replace(stores, parcels=recorded)
            if index.parcels_unknown:
                await recorded.refill()
            yield Backend(stores, index)
        finally:
            await index.close()
    finally:
        await stores.close()


def _inventory_listing(store: ParcelStore) -> Callable[[], AsyncIterator[tuple[str, int]]]:
    async def listing() -> AsyncIterator[tuple[str, int]]:
        async for stored in store.inventory():
            yield stored.name, stored.size

    return listing


class RecordedParcels:
    """A ParcelStore that records in the index which parcels it holds, with their sizes.

    The store answers every question; the record only has to be right in total (stored
    parcels and bytes), and `bindle-server reindex` refills it from the store.
    """

    def __init__(
        self,
        store: ParcelStore,
        index: Index,
        listing: Callable[[], AsyncIterator[tuple[str, int]]],
    ) -> None:
        self._store = store
        self._index = index
        self._listing = listing

    async def exists(self, sha256: str) -> bool:
        return await self._store.exists(sha256)

    async def size(self, sha256: str) -> int | None:
        return await self._store.size(sha256)

    async def stored_sizes(self, digests: Iterable[str]) -> dict[str, int]:
        return await self._store.stored_sizes(digests)

    async def missing(self, digests: Iterable[str]) -> set[str]:
        return await self._store.missing(digests)

    async def write(self, sha256: str, size: int, chunks: AsyncIterable[bytes]) -> bool:
        stored = await self._store.write(sha256, size, chunks)
        await self._index.add_parcels([(sha256, size)])
        self._remember(sha256)
        return stored

    def _remember(self, sha256: str) -> None:
        return None

    def _forget(self, sha256: str) -> None:
        return None

    def read(self, sha256: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        return self._store.read(sha256, start, end)

    def digests(self) -> AsyncIterator[str]:
        return self._store.digests()

    async def quarantine(self, sha256: str) -> None:
        await self._store.quarantine(sha256)
        await self._index.remove_parcel(sha256)
        self._forget(sha256)

    def inventory(self) -> AsyncIterator[StoredObject]:
        return self._store.inventory()

    async def delete(self, digests: Sequence[str]) -> None:
        # The records go first: a parcel recorded but gone would be reported stored.
        for sha256 in digests:
            await self._index.remove_parcel(sha256)
            self._forget(sha256)
        await self._store.delete(digests)

    async def refill(self) -> int:
        batch: list[tuple[str, int]] = []
        count = 0
        async for entry in self._listing():
            batch.append(entry)
            if len(batch) >= _REFILL_BATCH:
                await self._index.add_parcels(batch)
                count += len(batch)
                batch = []
        if batch:
            await self._index.add_parcels(batch)
            count += len(batch)
        await self._index.mark_filled("parcels")
        log.info("recorded %d stored parcel(s) in the index", count)
        return count


class IndexedParcels(RecordedParcels):
    """A ParcelStore whose "which are stored" answers come from the index."""

    def __init__(
        self,
        store: ParcelStore,
        index: Index,
        listing: Callable[[], AsyncIterator[tuple[str, int]]],
    ) -> None:
        super().__init__(store, index, listing)
        self._recorded: OrderedDict[str, None] = OrderedDict()

    async def exists(self, sha256: str) -> bool:
        return await self.size(sha256) is not None

    async def size(self, sha256: str) -> int | None:
        # Asked of the store itself: the caller is about to read or write this parcel.
        size = await self._store.size(sha256)
        if size is None or sha256 in self._recorded:
            return size
        if not await self._index.parcel_sizes([sha256]):
            log.info("recording parcel %s, stored but not yet recorded in the index", sha256)
            await self._index.add_parcels([(sha256, size)])
        self._remember(sha256)
        return size

    def _remember(self, sha256: str) -> None:
        self._recorded[sha256] = None
        if len(self._recorded) > _KNOWN_RECORDED:
            self._recorded.popitem(last=False)

    def _forget(self, sha256: str) -> None:
        self._recorded.pop(sha256, None)

    async def stored_sizes(self, digests: Iterable[str]) -> dict[str, int]:
        return await self._index.parcel_sizes(list(digests))

    async def missing(self, digests: Iterable[str]) -> set[str]:
        wanted = list(digests)
        stored = await self._index.parcel_sizes(wanted)
        return {sha256 for sha256 in wanted if sha256 not in stored}
