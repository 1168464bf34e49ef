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
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

from bindle_server.model import BindleId, Invoice, Label, dump_invoice
from bindle_server.service.core import BindleService
from bindle_server.service.tarstream import (
    ParcelReader,
    TarEntry,
    TarStream,
    bytes_entry,
    damaged,
    directory_entry,
    parcel_entry,
)

log = logging.getLogger(__name__)

INVOICE_FILE = "invoice.toml"
PARCELS_DIR = "parcels"
PARCEL_SUFFIX = ".dat"


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
        return self._tar().size

    def stream(self, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """The tar bytes from `start` up to, not including, `end` (see TarStream.stream)."""
        return self._tar().stream(start, end)

    def _tar(self) -> TarStream:
        return TarStream(self._entries(), self.read_parcel)

    def _entries(self) -> Iterator[TarEntry]:
        top = self.top
        yield directory_entry(f"{top}/", self.mtime)
        yield bytes_entry(f"{top}/{INVOICE_FILE}", self.invoice_bytes, self.mtime)
        yield directory_entry(f"{top}/{PARCELS_DIR}/", self.mtime)
        for label in self.parcels:
            name = f"{top}/{PARCELS_DIR}/{label.sha256}{PARCEL_SUFFIX}"
            yield parcel_entry(name, label, self.mtime)


async def open_archive(
    service: BindleService, bindle_id: BindleId, *, allow_yanked: bool = False
) -> StandaloneArchive:
    """The archive of a readable bindle, with every listed parcel that is stored now.

    The invoice is read as `get_invoice` reads it (InvoiceYanked unless `allow_yanked`);
    parcels a collector is removing count as not stored, as for `missing_parcels`.
    """
    invoice = await service.get_invoice(bindle_id, allow_yanked=allow_yanked)
    stored = await stored_now(service, invoice.labels)
    return standalone_archive(invoice, stored, service.read_parcel)


async def stored_now(service: BindleService, labels: list[Label]) -> dict[str, int]:
    """The stored size of each of `labels` whose parcel is stored and not being removed.

    Parcels a collector is removing count as not stored, as for `missing_parcels`.
    """
    stored = dict(await service.stores.parcels.stored_sizes(label.sha256 for label in labels))
    for sha256 in await service.index.condemned(sorted(stored)):
        del stored[sha256]
    return stored


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
            raise damaged(label, str(size))
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
