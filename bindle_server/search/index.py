"""The index: what `_q` searches, and the lifecycle facts garbage collection relies on.

The embedded default is SQLite (standard library) in the data directory (search/sqlite.py),
so start-up does not read every invoice (the reference does) and a query does not scan
the invoice files; several nodes share one on PostgreSQL (search/postgres.py). The stores
stay the source of truth: `bindle-server reindex` rebuilds the index from them, and writes
mark their key as being written first, so that a crash between writing an invoice and
indexing it is repaired at the next start (BindleService.recover).

Lifecycle facts kept here, all rebuilt from the stores too:
- each invoice's state: `committed` (served), `pending` (an atomic push waiting for
  parcels, hidden) or `removing` (being purged or expired);
- `refs`: which parcels each invoice lists, so garbage collection knows what is referenced;
- `awaiting`: which parcels each pending invoice still waits for; the upload of the last
  one commits it in the same transaction that records its arrival;
- `condemned`: parcels a collector has decided to remove. Condemning re-checks `refs` in
  the same transaction, and recording an invoice's refs reads the condemned ones in its
  transaction, serialised with it; so a create either keeps a parcel alive or learns that
  it is going and reports it missing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from bindle_server.search.query import Query, QueryPage


class InvoiceState(StrEnum):
    COMMITTED = "committed"
    """Served, listed by `_q`."""
    PENDING = "pending"
    """An atomic push whose parcels are not all stored yet: hidden."""
    REMOVING = "removing"
    """Claimed by a purge or an expiry that is removing it: hidden."""


@dataclass(frozen=True)
class IndexEntry:
    """What the index keeps of one invoice.

    `document` is the invoice as JSON and `toml_entry` as TOML, each exactly as a query
    page lists it (model/pages.py), so a page is written from stored bytes. `parcels`
    are the digests it lists (None leaves the recorded ones as they are, as a yank does);
    `awaiting` are those a pending invoice still waits for.
    """

    key: str
    name: str
    version: str
    yanked: bool
    document: str
    state: InvoiceState = InvoiceState.COMMITTED
    created: float = 0.0
    yanked_at: float | None = None
    parcels: tuple[str, ...] | None = None
    awaiting: tuple[str, ...] = ()
    toml_entry: str = ""


@dataclass(frozen=True)
class InvoiceStatus:
    """An indexed invoice's state, and how many parcels a pending one waits for."""

    state: InvoiceState
    awaiting: int


@dataclass(frozen=True)
class LifecycleRow:
    """One indexed invoice as retention and expiry see it (times in unix seconds)."""

    key: str
    name: str
    version: str
    state: InvoiceState
    yanked: bool
    created: float
    yanked_at: float | None
    idle: float
    """Seconds since the invoice was last touched by its push (for pending expiry)."""


@dataclass(frozen=True)
class IndexTotals:
    """What the index holds, counted in one cheap query (for the metrics gauges)."""

    invoices: dict[str, int]
    """Invoices by state, with committed yanked ones counted apart as "yanked"."""
    parcels: int
    parcel_bytes: int


class Index(Protocol):
    """Query index over invoices, with crash-recovery marks for writes in flight."""

    is_new: bool
    """True when, at open, no rebuild had filled the invoice entries from the store yet."""

    parcels_unknown: bool
    """True when, at open, no refill had recorded the store's parcels yet."""

    owner: str
    """This process as recorded on write marks, condemnations and leases."""

    async def begin(self, key: str) -> str:
        """Durably mark `key` as being written; return a token for `put` or `end`."""
        ...

    async def begin_many(self, keys: Sequence[str]) -> list[str]:
        """`begin` for several keys in one transaction; their tokens, in order."""
        ...

    async def end(self, token: str) -> None:
        """Drop a pending mark whose write did not happen."""
        ...

    async def put(self, entry: IndexEntry, token: str | None = None) -> set[str]:
        """Insert or update an entry and drop the mark `token`, in one transaction.

        Returns which of the entry's `parcels` a live collector has condemned: they are
        being removed, so the caller must count them as missing.
        """
        ...

    async def settle(self, key: str, entry: IndexEntry | None, tokens: Sequence[str] = ()) -> None:
        """Make the index agree with the store for `key` and drop the pending marks `tokens`.

        `entry` is what the store holds now, or None when it holds no such invoice.
        """
        ...

    async def stale_marks(self) -> dict[str, list[str]]:
        """Pending marks left by writers that died: key -> their tokens.

        Keys that a live process is still writing are left out, so that a process
        starting beside running ones (another worker) never settles their writes.
        """
        ...

    async def query(self, query: Query) -> QueryPage:
        """The page of non-yanked (or all, with `yanked`) matches in NAME/VERSION byte order."""
        ...

    async def clear(self) -> None:
        """Remove every invoice entry, reference and mark (before a rebuild), and the
        "invoices" fill."""
        ...

    async def mark_filled(self, part: str) -> None:
        """Record that a rebuild filled `part` ("invoices" or "parcels") from the store."""
        ...

    async def count(self) -> int:
        """How many invoices are indexed."""
        ...

    async def totals(self) -> IndexTotals:
        """Invoices by state, and the parcels recorded as stored with their bytes."""
        ...

    async def yanked_by_key(self) -> dict[str, bool]:
        """Every indexed invoice's key and whether the index has it as yanked."""
        ...

    async def parcel_sizes(self, digests: Sequence[str]) -> dict[str, int]:
        """The recorded size of each of `digests` that is recorded as stored."""
        ...

    async def add_parcels(self, sizes: Sequence[tuple[str, int]]) -> None:
        """Record parcels as stored, with their sizes (recording one twice changes nothing)."""
        ...

    async def remove_parcel(self, sha256: str) -> None:
        """Record a parcel as no longer stored (quarantined)."""
        ...

    async def status(self, key: str) -> InvoiceStatus | None:
        """The state of an indexed invoice, or None when it is not indexed."""
        ...

    async def await_parcels(self, key: str, digests: Sequence[str]) -> None:
        """Record that the invoice `key` (pending, or committed without atomic pushes)
        waits for `digests`."""
        ...

    async def arrived(self, digests: Sequence[str]) -> list[str]:
        """Parcels are stored now: drop them from what invoices await, in one transaction
        that also commits every pending invoice left awaiting nothing; return the invoices
        left awaiting nothing (complete), pending or not."""
        ...

    async def commit(self, key: str) -> bool:
        """Commit a pending invoice (its parcels are all stored); False if it was not pending."""
        ...

    async def touch(self, key: str) -> None:
        """Note activity on a pending invoice's push (it expires when left untouched)."""
        ...

    async def claim_expired(self, idle: float) -> list[tuple[str, str]]:
        """Mark pending invoices untouched for `idle` seconds as removing, each with a
        write mark; return (key, token) pairs for `remove`."""
        ...

    async def remove(self, removals: Sequence[tuple[str, str | None]]) -> None:
        """Drop invoices' entries, parcel references and awaited parcels, and their write
        marks, given as (key, token) pairs, in one transaction."""
        ...

    async def lifecycle_rows(self) -> list[LifecycleRow]:
        """Every indexed invoice, for retention and expiry."""
        ...

    async def unreferenced(self, digests: Sequence[str]) -> set[str]:
        """Which of `digests` no indexed invoice lists."""
        ...

    async def condemn(self, digests: Sequence[str]) -> list[str]:
        """Condemn those of `digests` that no invoice lists, checked in this transaction."""
        ...

    async def condemned(self, digests: Sequence[str]) -> set[str]:
        """Which of `digests` a live collector has condemned."""
        ...

    async def release(self, digests: Sequence[str]) -> None:
        """Drop condemnations (the parcels are removed, or were spared)."""
        ...

    async def stale_condemned(self) -> list[str]:
        """Condemnations left by collectors that died."""
        ...

    async def acquire_lease(self, name: str) -> str | None:
        """Take the lease `name` (one collector at a time across processes and nodes).

        Returns None when taken, else the owner that holds it. A lease whose holder died
        is taken over.
        """
        ...

    async def renew_lease(self, name: str) -> None:
        """Refresh a lease this process holds (leases of other hosts go stale in time)."""
        ...

    async def release_lease(self, name: str) -> None:
        """Give a lease back."""
        ...

    async def close(self) -> None:
        """Close the index."""
        ...
