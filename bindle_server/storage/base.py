"""The storage contract: a parcel store and an invoice store, as narrow Protocols.

Backends see bindle-level keys and byte streams only: no file paths and no in-process
locks cross this boundary, so that an object store and a database can implement it and
several server processes can share one backend. The behaviour each method promises is
checked for every backend by `tests/storage/contract.py`.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable
from typing import Protocol


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
