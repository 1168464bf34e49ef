"""Deterministic tar archives streamed from stored parcels, any byte range of them.

An archive is a fixed list of entries: a header, then data that is either bytes held
here (an invoice) or a stored parcel read on demand. Headers carry a fixed owner, mode
and mtime, so the same entries always give the same bytes and the same length; that is
what lets a download be validated by an ETag and resumed by byte range. Memory stays
flat: parcels are streamed from storage in the chunks the store yields.
"""

from __future__ import annotations

import tarfile
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass

from bindle_server.errors import StoredParcelDamaged
from bindle_server.model import Label

BLOCK = tarfile.BLOCKSIZE
# Pad the archive to whole records of 20 blocks, as tar itself writes them.
RECORD = tarfile.RECORDSIZE
# `read_parcel(sha256, start, end)`: a stored parcel's bytes in [start, end).
ParcelReader = Callable[[str, int, int], AsyncIterator[bytes]]


@dataclass(frozen=True)
class TarEntry:
    """One member: its header, and its data (`label`'s parcel, or `data` when None)."""

    header: bytes
    label: Label | None
    data: bytes = b""

    @property
    def data_size(self) -> int:
        return self.label.size if self.label is not None else len(self.data)

    @property
    def size(self) -> int:
        return len(self.header) + padded(self.data_size)


def directory_entry(name: str, mtime: int) -> TarEntry:
    """A directory member."""
    return TarEntry(_header(name, 0, mtime, directory=True), None)


def bytes_entry(name: str, data: bytes, mtime: int) -> TarEntry:
    """A regular file whose bytes are held here."""
    return TarEntry(_header(name, len(data), mtime), None, data)


def parcel_entry(name: str, label: Label, mtime: int) -> TarEntry:
    """A regular file holding a stored parcel, read only when streamed."""
    return TarEntry(_header(name, label.size, mtime), label)


class TarStream:
    """A tar archive of `entries`: its length, and any byte range of it as a stream."""

    def __init__(self, entries: Iterable[TarEntry], read_parcel: ParcelReader) -> None:
        self.entries = tuple(entries)
        self.read_parcel = read_parcel
        self.size = padded_to_record(sum(entry.size for entry in self.entries) + 2 * BLOCK)

    async def stream(self, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """The tar bytes from `start` up to, not including, `end` (default: to the end).

        Raises StoredParcelDamaged, before passing on a wrong byte, when a parcel turns
        out shorter or longer than its label; the stream must then be abandoned.
        """
        stop = self.size if end is None else min(end, self.size)
        position = 0
        for entry in self.entries:
            if position >= stop:
                return
            following = position + entry.size
            if following > start:
                async for chunk in self._entry_bytes(entry, position, start, stop):
                    yield chunk
            position = following
        if stop > max(position, start):
            yield bytes(stop - max(position, start))  # end-of-archive blocks and padding

    async def _entry_bytes(
        self, entry: TarEntry, position: int, start: int, stop: int
    ) -> AsyncIterator[bytes]:
        """The part of one entry (header, data, padding at `position`) in [start, stop)."""
        header_end = position + len(entry.header)
        if start < header_end:
            yield entry.header[max(start - position, 0) : stop - position]
        data_start = header_end
        data_end = data_start + entry.data_size
        first, last = max(start, data_start), min(stop, data_end)
        if first < last:
            if entry.label is None:
                yield entry.data[first - data_start : last - data_start]
            else:
                async for chunk in self._parcel_bytes(
                    entry.label, first - data_start, last - data_start
                ):
                    yield chunk
        padding_end = data_start + padded(entry.data_size)
        first, last = max(start, data_end), min(stop, padding_end)
        if first < last:
            yield bytes(last - first)

    async def _parcel_bytes(self, label: Label, first: int, last: int) -> AsyncIterator[bytes]:
        # Up to the label's end, one byte more is asked for, so that a parcel grown on
        # disk is noticed rather than cut silently to fit its header.
        to_end = last == label.size
        got = first
        async for chunk in self.read_parcel(label.sha256, first, last + 1 if to_end else last):
            if got + len(chunk) > last:
                if to_end:
                    raise damaged(label, f"more than {label.size}")
                chunk = chunk[: last - got]
            got += len(chunk)
            if chunk:
                yield chunk
        if got < last:
            raise damaged(label, f"only {got}" if to_end else f"fewer than {last}")


def damaged(label: Label, actual: str) -> StoredParcelDamaged:
    """The error for a stored parcel whose length is not its label's size."""
    return StoredParcelDamaged(label.sha256, label.size, actual)


def _header(name: str, size: int, mtime: int, *, directory: bool = False) -> bytes:
    info = tarfile.TarInfo(name.rstrip("/") if directory else name)
    info.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
    info.mode = 0o755 if directory else 0o644
    info.size = size
    info.mtime = mtime
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    # GNU format, as the reference client writes it: names over 100 bytes go in a
    # ././@LongLink entry before the header.
    return info.tobuf(format=tarfile.GNU_FORMAT, encoding="utf-8", errors="strict")


def padded(size: int) -> int:
    """`size` rounded up to whole tar blocks."""
    return -(-size // BLOCK) * BLOCK


def padded_to_record(size: int) -> int:
    """`size` rounded up to whole tar records."""
    return -(-size // RECORD) * RECORD
