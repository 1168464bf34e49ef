"""Copy one store into another (disk into a bucket, or back), verifying everything copied.

Parcels go first, so that no invoice reaches the destination before its parcels. Each
parcel is written through the destination's own `write`, which refuses bytes that do
not hash to the parcel's digest; afterwards it is read back from the destination and
hashed again, so what the destination serves is what was checked. Invoices are created
once and read back byte for byte. A second run skips what is already there (after
checking it), so an interrupted migration is finished by running it again; an invoice
yanked at the source since the last run is yanked at the destination too.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol

import anyio

from bindle_server.errors import BindleError, InvalidInput, InvalidInvoice
from bindle_server.model import parse_invoice
from bindle_server.storage import Stores
from bindle_server.threads import run_sync

log = logging.getLogger(__name__)

# Parcels copied at once: enough to overlap one transfer's latency with another's bytes.
DEFAULT_JOBS = 4


@dataclass
class CopyReport:
    parcels_copied: int = 0
    parcels_present: int = 0
    bytes_copied: int = 0
    invoices_copied: int = 0
    invoices_present: int = 0
    invoices_yanked: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        return (
            f"parcels: {self.parcels_copied} copied ({self.bytes_copied} bytes), "
            f"{self.parcels_present} already there; invoices: {self.invoices_copied} copied, "
            f"{self.invoices_present} already there, {self.invoices_yanked} yank(s) carried "
            f"over; {len(self.problems)} problem(s)"
        )


class Progress(Protocol):
    """Told how many bytes are coming (copy plus read-back), and each chunk as it passes."""

    def expect(self, size: int) -> None: ...

    def advance(self, size: int) -> None: ...


class _Silent:
    def expect(self, size: int) -> None:
        return None

    def advance(self, size: int) -> None:
        return None


async def copy_store(
    source: Stores,
    target: Stores,
    *,
    jobs: int = DEFAULT_JOBS,
    verify: bool = True,
    progress: Progress | None = None,
) -> CopyReport:
    """Copy every parcel, then every invoice, of `source` into `target`."""
    report = CopyReport()
    shown = progress or _Silent()
    # Taken before a task starts and given back when it ends, so that at most `jobs`
    # copies exist at once: a store of millions of parcels never becomes millions of
    # waiting tasks.
    slots = anyio.Semaphore(jobs)

    async def one_parcel(sha256: str) -> None:
        try:
            await _copy_parcel(source, target, sha256, report, verify, shown)
        except BindleError as exc:
            report.problems.append(f"parcel {sha256}: {exc}")
        finally:
            slots.release()

    async with anyio.create_task_group() as group:
        async for sha256 in source.parcels.digests():
            await slots.acquire()
            group.start_soon(one_parcel, sha256)

    async for key, document in source.invoices.scan():
        try:
            await _copy_invoice(target, key, document, report)
        except BindleError as exc:
            report.problems.append(f"invoice {key}: {exc}")
    log.info("storage copied: %s", report.summary())
    return report


async def _copy_parcel(
    source: Stores,
    target: Stores,
    sha256: str,
    report: CopyReport,
    verify: bool,
    progress: Progress,
) -> None:
    size = await source.parcels.size(sha256)
    if size is None:  # quarantined at the source while we were listing
        return
    stored = await target.parcels.size(sha256)
    if stored is not None and stored != size:
        report.problems.append(
            f"parcel {sha256}: the destination holds {stored} bytes, the source {size}; "
            "run bindle-server fsck on both"
        )
        return
    progress.expect(size * ((stored is None) + verify))
    if stored is None:
        try:
            await target.parcels.write(
                sha256, size, _counted(source.parcels.read(sha256), progress)
            )
        except InvalidInput as exc:  # DigestMismatch, SizeMismatch
            report.problems.append(
                f"parcel {sha256}: the source's bytes do not match it ({exc}); "
                "run bindle-server fsck on the source"
            )
            return
        report.parcels_copied += 1
        report.bytes_copied += size
    else:
        report.parcels_present += 1
    if verify:
        digest = hashlib.sha256()
        length = 0
        async for chunk in _counted(target.parcels.read(sha256), progress):
            await run_sync(digest.update, chunk)
            length += len(chunk)
        if digest.hexdigest() != sha256 or length != size:
            report.problems.append(
                f"parcel {sha256}: reading it back from the destination gave {length} bytes "
                f"hashing to {digest.hexdigest()}"
            )


async def _counted(chunks: AsyncIterator[bytes], progress: Progress) -> AsyncIterator[bytes]:
    async for chunk in chunks:
        progress.advance(len(chunk))
        yield chunk


async def _copy_invoice(target: Stores, key: str, document: bytes, report: CopyReport) -> None:
    if await target.invoices.create(key, document):
        report.invoices_copied += 1
    else:
        existing = await target.invoices.read(key)
        if existing == document:
            report.invoices_present += 1
        elif existing is not None and _yanked_since(existing, document):
            await target.invoices.replace(key, document)
            report.invoices_yanked += 1
        else:
            report.problems.append(
                f"invoice {key}: the destination holds a different document; left as it is"
            )
            return
    if await target.invoices.read(key) != document:
        report.problems.append(f"invoice {key}: reading it back gave a different document")


def _yanked_since(existing: bytes, document: bytes) -> bool:
    """Whether `document` is `existing` yanked at the source after an earlier copy."""
    try:
        before, after = parse_invoice(existing), parse_invoice(document)
    except InvalidInvoice:
        return False
    return (
        after.is_yanked
        and not before.is_yanked
        and before.bindle_id == after.bindle_id
        and [label.sha256 for label in before.labels] == [label.sha256 for label in after.labels]
    )
