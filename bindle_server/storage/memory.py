"""A per-instance in-memory backend: the simplest implementation of the storage contract.

Used by tests and throwaway servers; everything is gone when the process ends.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterable, AsyncIterator, Iterable

from bindle_server.errors import DigestMismatch, ParcelNotFound, SizeMismatch


class MemoryParcelStore:
    """Parcels in a dict; implements storage.base.ParcelStore."""

    def __init__(self) -> None:
        self._parcels: dict[str, bytes] = {}

    async def exists(self, sha256: str) -> bool:
        return sha256 in self._parcels

    async def size(self, sha256: str) -> int | None:
        data = self._parcels.get(sha256)
        return None if data is None else len(data)

    async def stored_sizes(self, digests: Iterable[str]) -> dict[str, int]:
        return {sha: len(self._parcels[sha]) for sha in digests if sha in self._parcels}

    async def missing(self, digests: Iterable[str]) -> set[str]:
        return {sha for sha in digests if sha not in self._parcels}

    async def write(self, sha256: str, size: int, chunks: AsyncIterable[bytes]) -> bool:
        data = bytearray()
        async for chunk in chunks:
            data += chunk
            if len(data) > size:
                raise SizeMismatch(sha256, size, len(data), at_least=True)
        if len(data) != size:
            raise SizeMismatch(sha256, size, len(data))
        digest = hashlib.sha256(data).hexdigest()
        if digest != sha256:
            raise DigestMismatch(sha256, digest)
        if sha256 in self._parcels:
            return False
        self._parcels[sha256] = bytes(data)
        return True

    async def read(
        self, sha256: str, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        data = self._parcels.get(sha256)
        if data is None:
            raise ParcelNotFound(sha256)
        yield data[start:end]

    async def digests(self) -> AsyncIterator[str]:
        for sha256 in sorted(self._parcels):
            yield sha256

    async def quarantine(self, sha256: str) -> None:
        self._parcels.pop(sha256, None)


class MemoryInvoiceStore:
    """Invoices in a dict; implements storage.base.InvoiceStore."""

    def __init__(self) -> None:
        self._invoices: dict[str, bytes] = {}

    async def create(self, key: str, document: bytes) -> bool:
        if key in self._invoices:
            return False
        self._invoices[key] = document
        return True

    async def read(self, key: str) -> bytes | None:
        return self._invoices.get(key)

    async def replace(self, key: str, document: bytes) -> None:
        self._invoices[key] = document

    async def scan(self) -> AsyncIterator[tuple[str, bytes]]:
        for key, document in sorted(self._invoices.items()):
            yield key, document


class MemoryStores:
    """Both in-memory stores."""

    def __init__(self) -> None:
        self.parcels = MemoryParcelStore()
        self.invoices = MemoryInvoiceStore()
