"""The embedded default backend: the reference server's file layout on local disk.

<root>/invoices/<sha256 of "NAME/VERSION">/invoice.toml
<root>/parcels/<sha256>/parcel.dat
<root>/pending/<key>              atomic pushes waiting for parcels (lifecycle records)
<root>/tombstones/<key>           purged bindle ids
<root>/tmp/                       temp files of writes in flight (swept at start-up)
<root>/invoices.changes           changes when an invoice is yanked or removed (changes.py)
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import time
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Sequence
from pathlib import Path
from stat import S_ISREG

import anyio

from bindle_server.durable import fsync_dir
from bindle_server.errors import DigestMismatch, ParcelNotFound, SizeMismatch
from bindle_server.model import is_sha256, layout
from bindle_server.storage.atomic import TempFile, remove_file, sweep, write_file
from bindle_server.storage.base import RecordKind, StoredObject
from bindle_server.storage.cached import read_cached, stat_cached
from bindle_server.storage.changes import ChangeMark
from bindle_server.threads import run_sync

log = logging.getLogger(__name__)

# Uploads are hashed and written in blocks this large, while the event loop keeps
# receiving the next block; so an upload holds at most two blocks in memory. Measured on
# 2 cores: 1 MiB blocks gave ~515 MiB/s, 4 MiB ~640 and 8 MiB ~800, because the stages
# stall each other less often.
WRITE_BLOCK = 8 * 1024 * 1024
# ...or of this many chunks, whichever comes first: one writev takes at most IOV_MAX.
WRITE_BLOCK_CHUNKS = 256
READ_CHUNK = 1024 * 1024
READ_AHEAD = 64 * 1024 * 1024
CHANGE_MARK = "invoices.changes"
# Invoice and record files up to this size are read on the event loop when the kernel
# has them cached (storage/cached.py): copying them takes microseconds.
_CACHED_READ_BYTES = 256 * 1024
# Parcel files looked up on the event loop at most (a few microseconds each, when cached).
_CACHED_LOOKUPS = 64


class LocalParcelStore:
    """Parcels as files; implements storage.base.ParcelStore."""

    def __init__(self, root: Path, staging: Path, quarantine: Path) -> None:
        self._root = root
        self._staging = staging
        self._quarantine_dir = quarantine

    def _path(self, sha256: str) -> Path:
        return self._root / sha256 / layout.PARCEL_FILE

    async def _stats(self, digests: list[str]) -> list[os.stat_result | None]:
        """Each parcel file's status (None: there is none): from the kernel's caches on the
        event loop when it has them all, else in one worker-thread hop."""
        paths = [self._path(sha256) for sha256 in digests]
        stats = _cached_stats(paths)
        if stats is None:
            stats = await run_sync(_stat_paths, paths)
        return stats

    async def exists(self, sha256: str) -> bool:
        (stat,) = await self._stats([sha256])
        return stat is not None and S_ISREG(stat.st_mode)

    async def size(self, sha256: str) -> int | None:
        (stat,) = await self._stats([sha256])
        return None if stat is None else stat.st_size

    async def stored_sizes(self, digests: Iterable[str]) -> dict[str, int]:
        wanted = list(digests)
        stats = await self._stats(wanted)
        return {sha: stat.st_size for sha, stat in zip(wanted, stats, strict=True) if stat}

    async def missing(self, digests: Iterable[str]) -> set[str]:
        wanted = list(digests)
        stats = await self._stats(wanted)
        return {
            sha
            for sha, stat in zip(wanted, stats, strict=True)
            if stat is None or not S_ISREG(stat.st_mode)
        }

    async def write(self, sha256: str, size: int, chunks: AsyncIterable[bytes]) -> bool:
        # Shielded: if the request were cancelled as the thread returns, the new temp file
        # would be left locked and unowned until the next restart.
        with anyio.CancelScope(shield=True):
            temp = await run_sync(TempFile, self._staging)
        pending: asyncio.Task[None] | None = None
        try:
            block: list[bytes | bytearray | memoryview] = []
            block_size = 0
            received = 0
            async for chunk in chunks:
                received += len(chunk)
                if received > size:
                    raise SizeMismatch(sha256, size, received, at_least=True)
                block.append(chunk)
                block_size += len(chunk)
                if block_size >= WRITE_BLOCK or len(block) >= WRITE_BLOCK_CHUNKS:
                    if pending is not None:
                        await pending
                    pending = asyncio.create_task(_write_block(temp, block))
                    block, block_size = [], 0
            if pending is not None:
                await pending
                pending = None
            if block:
                await _write_block(temp, block)
            if received != size:
                raise SizeMismatch(sha256, size, received)
            if temp.hexdigest() != sha256:
                raise DigestMismatch(sha256, temp.hexdigest())
            return await run_sync(lambda: temp.publish(self._path(sha256), replace=False))
        finally:
            # Runs on success too (discard is idempotent), and must finish even when the
            # request is cancelled, or the temp file would stay locked until restart.
            with anyio.CancelScope(shield=True):
                if pending is not None:
                    with contextlib.suppress(Exception):
                        await pending
                await run_sync(temp.discard)

    async def read(
        self, sha256: str, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        try:
            reader = await run_sync(_ParcelReader, self._path(sha256), start)
        except FileNotFoundError:
            raise ParcelNotFound(sha256) from None
        try:
            remaining = None if end is None else end - start
            while remaining is None or remaining > 0:
                want = READ_CHUNK if remaining is None else min(READ_CHUNK, remaining)
                chunk = await run_sync(reader.read, want)
                if not chunk:
                    break
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk
        finally:
            with anyio.CancelScope(shield=True):
                await run_sync(reader.close)

    async def digests(self) -> AsyncIterator[str]:
        names = await run_sync(_subdirectories, self._root)
        for name in names:
            if is_sha256(name):
                yield name

    async def quarantine(self, sha256: str) -> None:
        await run_sync(self._quarantine, sha256)

    async def inventory(self) -> AsyncIterator[StoredObject]:
        names = await run_sync(_subdirectories, self._root)
        for start in range(0, len(names), _STAT_BATCH):
            batch = [name for name in names[start : start + _STAT_BATCH] if is_sha256(name)]
            named = [(name, self._path(name)) for name in batch]
            entries = await run_sync(functools.partial(_stat_all, named, empty_parents=True))
            for entry in entries:
                yield entry

    async def delete(self, digests: Sequence[str]) -> None:
        # Not made durable: a removal a crash undoes leaves an unreferenced parcel, which
        # the next collection removes again; one fsync per parcel would double its cost.
        paths = [self._path(sha256) for sha256 in digests]

        def remove_all() -> None:
            for path in paths:
                remove_file(path, remove_parent=True, durable=False)

        await run_sync(remove_all)

    def _quarantine(self, sha256: str) -> None:
        # Kept, not deleted, so an operator can look at what went wrong.
        self._quarantine_dir.mkdir(exist_ok=True)
        target = self._quarantine_dir / f"{sha256}.{time.strftime('%Y%m%dT%H%M%S')}.dat"
        os.replace(self._path(sha256), target)
        fsync_dir(self._path(sha256).parent)
        fsync_dir(self._quarantine_dir)


def _stat_paths(paths: list[Path]) -> list[os.stat_result | None]:
    found: list[os.stat_result | None] = []
    for path in paths:
        try:
            found.append(os.stat(path))
        except FileNotFoundError:
            found.append(None)
    return found


def _cached_stats(paths: list[Path]) -> list[os.stat_result | None] | None:
    """_stat_paths from the kernel's caches alone; None when any path would need IO."""
    if len(paths) > _CACHED_LOOKUPS:
        return None
    found: list[os.stat_result | None] = []
    for path in paths:
        try:
            stat = stat_cached(path)
        except FileNotFoundError:
            found.append(None)
            continue
        if stat is None:
            return None
        found.append(stat)
    return found


# Parcels stat'ed per worker-thread hop when listing the store.
_STAT_BATCH = 1000


def _stat_all(named: list[tuple[str, Path]], *, empty_parents: bool = False) -> list[StoredObject]:
    """Size and time of each path; with `empty_parents`, a path that is missing from a
    directory that exists (a removal killed between its unlink and its rmdir, or a writer
    about to publish) is listed with size 0 and the directory's time, so that garbage
    collection can finish the removal once the directory is old enough."""
    found = []
    for name, path in named:
        try:
            stat = os.stat(path)
        except FileNotFoundError:
            if not empty_parents:
                continue
            try:
                stat = os.stat(path.parent)
            except FileNotFoundError:
                continue  # removed meanwhile
            found.append(StoredObject(name, 0, stat.st_mtime))
            continue
        found.append(StoredObject(name, stat.st_size, stat.st_mtime))
    return found


def _subdirectories(root: Path) -> list[str]:
    with os.scandir(root) as entries:
        return sorted(entry.name for entry in entries if entry.is_dir())


def _record_entries(directory: Path) -> list[StoredObject]:
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return []
    return _stat_all([(name, directory / name) for name in names])


class _ParcelReader:
    """Sequential reads that ask the kernel to read ahead of them.

    While one chunk is being sent, the next ones are already on their way from disk, so
    a download that is not in the page cache streams at disk speed rather than at the
    speed of one synchronous read after another.
    """

    def __init__(self, path: Path, start: int) -> None:
        self._fd = os.open(path, os.O_RDONLY)
        self._position = start
        self._advised = start
        os.posix_fadvise(self._fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)

    def read(self, size: int) -> bytes:
        if self._position + size > self._advised:
            os.posix_fadvise(self._fd, self._position, READ_AHEAD, os.POSIX_FADV_WILLNEED)
            self._advised = self._position + READ_AHEAD // 2
        data = os.pread(self._fd, size, self._position)
        self._position += len(data)
        return data

    def close(self) -> None:
        os.close(self._fd)


class LocalInvoiceStore:
    """Invoices as files; implements storage.base.InvoiceStore."""

    def __init__(
        self, root: Path, staging: Path, records: Path, mark: ChangeMark | None = None
    ) -> None:
        self._root = root
        self._staging = staging
        self._records = records
        self._mark = mark

    def _path(self, key: str) -> Path:
        return self._root / key / layout.INVOICE_FILE

    def _record_path(self, kind: RecordKind, key: str) -> Path:
        return self._records / kind.value / key

    async def create(self, key: str, document: bytes) -> bool:
        return await run_sync(
            lambda: write_file(self._staging, self._path(key), document, replace=False)
        )

    async def read(self, key: str) -> bytes | None:
        return await _read_small(self._path(key))

    async def replace(self, key: str, document: bytes) -> None:
        try:
            await run_sync(
                lambda: write_file(self._staging, self._path(key), document, replace=True)
            )
        finally:  # even a failed fsync may leave the new file in place
            self._changed()

    async def scan(self) -> AsyncIterator[tuple[str, bytes]]:
        keys = await run_sync(self._keys)
        for key in keys:
            document = await self.read(key)
            if document is not None:
                yield key, document

    def _keys(self) -> list[str]:
        return _subdirectories(self._root)

    async def delete(self, key: str) -> None:
        try:
            await run_sync(lambda: remove_file(self._path(key), remove_parent=True))
        finally:
            self._changed()

    def change_mark(self) -> int | None:
        return None if self._mark is None else self._mark.current()

    def _changed(self) -> None:
        if self._mark is not None:
            self._mark.changed()

    async def put_record(self, kind: RecordKind, key: str, data: bytes, *, replace: bool) -> bool:
        path = self._record_path(kind, key)
        return await run_sync(lambda: write_file(self._staging, path, data, replace=replace))

    async def read_record(self, kind: RecordKind, key: str) -> bytes | None:
        return await _read_small(self._record_path(kind, key))

    async def delete_record(self, kind: RecordKind, key: str) -> None:
        path = self._record_path(kind, key)
        await run_sync(lambda: remove_file(path, remove_parent=False))

    async def records(self, kind: RecordKind) -> AsyncIterator[StoredObject]:
        directory = self._records / kind.value
        entries = await run_sync(_record_entries, directory)
        for entry in entries:
            yield entry


class LocalStores:
    """Both local stores under one data directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        staging = root / "tmp"
        for directory in (root / layout.INVOICES, root / layout.PARCELS, staging):
            directory.mkdir(parents=True, exist_ok=True)
        sweep(staging)
        self.parcels = LocalParcelStore(root / layout.PARCELS, staging, root / "quarantine")
        self.invoices = LocalInvoiceStore(
            root / layout.INVOICES, staging, root, ChangeMark.open(root / CHANGE_MARK)
        )


async def _read_small(path: Path) -> bytes | None:
    """An invoice or record file's bytes (None if there is none): from the kernel's caches
    on the event loop when it has them, else in one worker-thread hop (aiofiles takes three:
    open, read, close)."""
    try:
        cached = read_cached(path, _CACHED_READ_BYTES)
        if cached is not None:
            return cached
        return await run_sync(path.read_bytes)
    except FileNotFoundError:
        return None


async def _write_block(temp: TempFile, block: list[bytes | bytearray | memoryview]) -> None:
    """Hash `block` and append it to `temp` at once, in two worker threads: hashing alone
    took as long as the network, and one thread doing both held an upload to ~550 MiB/s.
    Returns only when both are done, so that nothing writes to a discarded temp file."""
    outcomes = await asyncio.gather(
        run_sync(temp.hash_chunks, block),
        run_sync(temp.append_chunks, block),
        return_exceptions=True,
    )
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
