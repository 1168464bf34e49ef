"""The storage contract: a parcel store and an invoice store, as narrow Protocols.

Backends see bindle-level keys and byte streams only: no file paths and no in-process
locks cross this boundary, so that an object store and a database can implement it and
several server processes can share one backend. The behaviour each method promises is
checked for every backend by `tests/storage/contract.py`.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


class RecordKind(StrEnum):
    """Lifecycle records an invoice store keeps beside the invoices, by key."""

    PENDING = "pending"
    """An atomic push whose parcels are not all stored yet (written before the invoice)."""
    TOMBSTONE = "tombstones"
    """A purged bindle id: what it held, so it is never reused with other content."""


@dataclass(frozen=True)
class StoredObject:
    """One stored thing in a listing: its name (digest or key), size and write time."""

    name: str
    size: int
    modified: float
    """Unix seconds of the last write."""


class ParcelStore(Protocol):
    """Content-addressed parcel bytes, keyed by their lowercase hex sha256."""

    async def exists(self, sha256: str) -> bool:
        """Whether the parcel's verified bytes are stored."""
        ...

    async def size(self, sha256: str) -> int | None:
        """How many bytes are stored for the parcel, or None when it is not stored."""
        ...

    async def stored_sizes(self, digests: Iterable[str]) -> dict[str, int]:
        """The stored size of each of `digests` that is stored (absent ones are left out)."""
        ...

    async def missing(self, digests: Iterable[str]) -> set[str]:
        """The subset of `digests` whose bytes are not stored."""
        ...

    async def write(self, sha256: str, size: int, chunks: AsyncIterable[bytes]) -> bool:
        """Store a parcel from a stream, verifying it before it becomes visible.

        The stream is cut off with SizeMismatch as soon as it passes `size` bytes; a short
        stream raises SizeMismatch and a wrong digest DigestMismatch once it ends. Nothing
        is visible, and nothing is left behind, unless every check passed. Returns True
        when this call stored the bytes and False when identical, verified bytes were
        stored by a concurrent writer first. A full disk raises InsufficientStorage.
        """
        ...

    def read(self, sha256: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """Stream the stored bytes from `start` up to, not including, `end`.

        Raises ParcelNotFound, before the first chunk, when the parcel is not stored.
        """
        ...

    def digests(self) -> AsyncIterator[str]:
        """The digest of every stored parcel (for checking the store)."""
        ...

    async def quarantine(self, sha256: str) -> None:
        """Move a damaged parcel out of service: afterwards it counts as not stored."""
        ...

    def inventory(self) -> AsyncIterator[StoredObject]:
        """Every stored parcel with its size and when it was stored (for garbage collection)."""
        ...

    async def delete(self, digests: Sequence[str]) -> None:
        """Remove parcels for good (garbage collection); removing absent ones is a no-op.

        The caller has made sure nothing lists them any more; a concurrent upload of one
        of them either completes after its removal (and is stored) or before it. Many at a
        time, because a collection removes thousands (S3 deletes a thousand per request).
        """
        ...


class InvoiceStore(Protocol):
    """Invoice documents (TOML bytes), keyed by the sha256 of "NAME/VERSION"."""

    async def create(self, key: str, document: bytes) -> bool:
        """Store a new invoice durably; return False, changing nothing, if `key` exists.

        Exactly one of any number of concurrent creates of one key returns True.
        """
        ...

    async def read(self, key: str) -> bytes | None:
        """The stored document, or None."""
        ...

    async def replace(self, key: str, document: bytes) -> None:
        """Atomically replace an existing invoice (used only to yank it)."""
        ...

    def scan(self) -> AsyncIterator[tuple[str, bytes]]:
        """Every stored invoice as (key, document); for rebuilding the index."""
        ...

    async def delete(self, key: str) -> None:
        """Remove an invoice for good (purge); removing an absent one is a no-op."""
        ...

    def change_mark(self) -> int | None:
        """A value that changes whenever any process replaces or deletes a stored invoice,
        read without IO; None when the store cannot offer one (nothing is then kept in
        memory on its behalf)."""
        ...

    async def put_record(self, kind: RecordKind, key: str, data: bytes, *, replace: bool) -> bool:
        """Durably store a small lifecycle record of an invoice key, beside the invoices.

        With `replace=False` an existing record is left alone and False is returned; of
        concurrent writers exactly one returns True. Records outlive their invoice (a
        tombstone is the record of a purged one).
        """
        ...

    async def read_record(self, kind: RecordKind, key: str) -> bytes | None:
        """The record of `kind` for `key`, or None."""
        ...

    async def delete_record(self, kind: RecordKind, key: str) -> None:
        """Remove a record; removing an absent one is a no-op."""
        ...

    def records(self, kind: RecordKind) -> AsyncIterator[StoredObject]:
        """Every record of `kind`: its invoice key, size and when it was written."""
        ...
