"""A per-instance in-memory backend: the simplest implementation of the storage contract.

Used by tests and throwaway servers; everything is gone when the process ends.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Sequence

from bindle_server.errors import DigestMismatch, ParcelNotFound, SizeMismatch
from bindle_server.storage.base import RecordKind, StoredObject
from bindle_server.storage.changes import ChangeMark


class MemoryParcelStore:
    """Parcels in a dict; implements storage.base.ParcelStore."""

    def __init__(self) -> None:
        self._parcels: dict[str, bytes] = {}
        self._stored_at: dict[str, float] = {}

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
        self._stored_at[sha256] = time.time()
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

    async def inventory(self) -> AsyncIterator[StoredObject]:
        for sha256, data in sorted(self._parcels.items()):
            yield StoredObject(sha256, len(data), self._stored_at[sha256])

    async def delete(self, digests: Sequence[str]) -> None:
        for sha256 in digests:
            self._parcels.pop(sha256, None)


class MemoryInvoiceStore:
    """Invoices in a dict; implements storage.base.InvoiceStore."""

    def __init__(self) -> None:
        self._invoices: dict[str, bytes] = {}
        self._records: dict[tuple[RecordKind, str], tuple[bytes, float]] = {}
        self._mark = ChangeMark.in_process()

    async def create(self, key: str, document: bytes) -> bool:
        if key in self._invoices:
            return False
        self._invoices[key] = document
        return True

    async def read(self, key: str) -> bytes | None:
        return self._invoices.get(key)

    async def replace(self, key: str, document: bytes) -> None:
        self._invoices[key] = document
        self._mark.changed()

    async def scan(self) -> AsyncIterator[tuple[str, bytes]]:
        for key, document in sorted(self._invoices.items()):
            yield key, document

    async def delete(self, key: str) -> None:
        self._invoices.pop(key, None)
        self._mark.changed()

    def change_mark(self) -> int | None:
        return self._mark.current()

    async def put_record(self, kind: RecordKind, key: str, data: bytes, *, replace: bool) -> bool:
        if not replace and (kind, key) in self._records:
            return False
        self._records[(kind, key)] = (data, time.time())
        return True

    async def read_record(self, kind: RecordKind, key: str) -> bytes | None:
        record = self._records.get((kind, key))
        return None if record is None else record[0]

    async def delete_record(self, kind: RecordKind, key: str) -> None:
        self._records.pop((kind, key), None)

    async def records(self, kind: RecordKind) -> AsyncIterator[StoredObject]:
        for (found, key), (data, written) in sorted(self._records.items()):
            if found == kind:
                yield StoredObject(key, len(data), written)


class MemoryStores:
    """Both in-memory stores."""

    def __init__(self) -> None:
        self.parcels = MemoryParcelStore()
        self.invoices = MemoryInvoiceStore()
