"""A stored bindle as a standalone tarball (BINDLE-PROTOCOL.md section 10), streamed.

    <sha256 of "NAME/VERSION">/
      invoice.toml                    the invoice as the API serves it
      parcels/<parcel sha256>.dat     each listed parcel that is stored

The tar bytes depend only on the stored invoice and which of its parcels are stored:
headers carry a fixed owner, mode and mtime (the invoice's host signature time), and
parcels come in digest order. So the same bindle always gives the same bytes and the
same length, which lets a download be resumed by byte range.
"""

from __future__ import annotations

import logging
import tarfile
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass

from bindle_server.errors import StoredParcelDamaged
from bindle_server.model import BindleId, Invoice, Label, dump_invoice
from bindle_server.service.core import BindleService

log = logging.getLogger(__name__)

INVOICE_FILE = "invoice.toml"
PARCELS_DIR = "parcels"
PARCEL_SUFFIX = ".dat"

_BLOCK = tarfile.BLOCKSIZE
# Pad the archive to whole records of 20 blocks, as tar itself writes them.
_RECORD = tarfile.RECORDSIZE
# Bounds one read of a parcel: reading one byte past the label tells "longer" apart.
ParcelReader = Callable[[str, int, int], AsyncIterator[bytes]]


@dataclass(frozen=True)
class _Entry:
    header: bytes
    label: Label | None  # None: the entry's data is `data`
    data: bytes = b""

    @property
    def data_size(self) -> int:
        return self.label.size if self.label is not None else len(self.data)

    @property
    def size(self) -> int:
        return len(self.header) + _padded(self.data_size)


@dataclass(frozen=True)
class StandaloneArchive:
    """The tarball of one bindle: its length, and its bytes as an async stream."""

    top: str
    invoice_bytes: bytes
    parcels: tuple[Label, ...]
    mtime: int
    read_parcel: ParcelReader

    @property
    def filename(self) -> str:
        """What the reference names the tarball: `<sha256 of NAME/VERSION>.tar.gz`."""
        return f"{self.top}.tar.gz"

    @property
    def size(self) -> int:
        """The tar's length in bytes (uncompressed)."""
        return _padded_to_record(sum(entry.size for entry in self._entries()) + 2 * _BLOCK)

    async def stream(self, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """The tar bytes from `start` up to, not including, `end` (default: to the end).

        Raises StoredParcelDamaged, before passing on a wrong byte, when a parcel turns
        out shorter or longer than its label; the stream must then be abandoned.
        """
        stop = self.size if end is None else min(end, self.size)
        position = 0
        for entry in self._entries():
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
        self, entry: _Entry, position: int, start: int, stop: int
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
        padding_end = data_start + _padded(entry.data_size)
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
                    raise _damaged(label, f"more than {label.size}")
                chunk = chunk[: last - got]
            got += len(chunk)
            if chunk:
                yield chunk
        if got < last:
            raise _damaged(label, f"only {got}" if to_end else f"fewer than {last}")

    def _entries(self) -> Iterator[_Entry]:
        top = self.top
        yield _Entry(_header(f"{top}/", 0, self.mtime, directory=True), None)
        invoice = _header(f"{top}/{INVOICE_FILE}", len(self.invoice_bytes), self.mtime)
        yield _Entry(invoice, None, self.invoice_bytes)
        yield _Entry(_header(f"{top}/{PARCELS_DIR}/", 0, self.mtime, directory=True), None)
        for label in self.parcels:
            name = f"{top}/{PARCELS_DIR}/{label.sha256}{PARCEL_SUFFIX}"
            yield _Entry(_header(name, label.size, self.mtime), label)


async def open_archive(
    service: BindleService, bindle_id: BindleId, *, allow_yanked: bool = False
) -> StandaloneArchive:
    """The archive of a readable bindle, with every listed parcel that is stored now.

    The invoice is read as `get_invoice` reads it (InvoiceYanked unless `allow_yanked`);
    parcels a collector is removing count as not stored, as for `missing_parcels`.
    """
    invoice = await service.get_invoice(bindle_id, allow_yanked=allow_yanked)
    stored = dict(await service.stores.parcels.stored_sizes(lab.sha256 for lab in invoice.labels))
    for sha256 in await service.index.condemned(sorted(stored)):
        del stored[sha256]
    return standalone_archive(invoice, stored, service.read_parcel)


def standalone_archive(
    invoice: Invoice, stored: dict[str, int], read_parcel: ParcelReader
) -> StandaloneArchive:
    """The archive of `invoice` with those of its parcels in `stored` (digest -> size).

    A stored size that differs from the label is refused now, before any byte is sent
    (StoredParcelDamaged); `read_parcel(sha256, start, end)` streams a parcel's bytes.
    """
    parcels = []
    for label in sorted(invoice.labels, key=lambda label: label.sha256):
        size = stored.get(label.sha256)
        if size is None:
            continue
        if size != label.size:
            log.error("parcel %s of %s: %d bytes stored", label.sha256, invoice.bindle_id, size)
            raise _damaged(label, str(size))
        parcels.append(label)
    return StandaloneArchive(
        top=invoice.bindle_id.key,
        invoice_bytes=dump_invoice(invoice),
        parcels=tuple(parcels),
        # The time this server accepted the bindle: fixed for it, and meaningful to whoever
        # unpacks it (0 for an invoice without a host signature).
        mtime=invoice.created_at or 0,
        read_parcel=read_parcel,
    )


def _damaged(label: Label, actual: str) -> StoredParcelDamaged:
    return StoredParcelDamaged(label.sha256, label.size, actual)


def _header(name: str, size: int, mtime: int, *, directory: bool = False) -> bytes:
    info = tarfile.TarInfo(name.rstrip("/") if directory else name)
    info.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
    info.mode = 0o755 if directory else 0o644
    info.size = size
    info.mtime = mtime
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    # GNU format, as the reference client writes it: names over 100 bytes (every parcel
    # path is 141) go in a ././@LongLink entry before the header.
    return info.tobuf(format=tarfile.GNU_FORMAT, encoding="utf-8", errors="strict")


def _padded(size: int) -> int:
    return -(-size // _BLOCK) * _BLOCK


def _padded_to_record(size: int) -> int:
    return -(-size // _RECORD) * _RECORD
