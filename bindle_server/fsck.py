"""`bindle-server fsck`: re-hash every parcel, parse every invoice, compare the index.

Reports what is wrong; with `repair`, moves damaged parcels to quarantine (so they count
as missing and the next upload of the right bytes heals them) and makes the index agree
with the invoice files. Invoices are never changed: a damaged invoice is only reported.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field

from bindle_server.errors import InvalidInvoice, ParcelNotFound
from bindle_server.model import parse_invoice
from bindle_server.search.index import Index
from bindle_server.service import stored_entry
from bindle_server.storage import RecordKind, Stores
from bindle_server.threads import run_sync

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Problem:
    """One thing fsck found wrong, and whether it was repaired."""

    subject: str
    detail: str
    repaired: bool = False

    def __str__(self) -> str:
        return f"{self.subject}: {self.detail}{' (repaired)' if self.repaired else ''}"


@dataclass
class Report:
    parcels: int = 0
    invoices: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.problems

    @property
    def unrepaired(self) -> list[Problem]:
        return [problem for problem in self.problems if not problem.repaired]


async def check(stores: Stores, index: Index, *, repair: bool = False) -> Report:
    """Check (and with `repair`, fix) the parcels, the invoices and the index."""
    report = Report()
    await _check_parcels(stores, report, repair)
    await _check_invoices_and_index(stores, index, report, repair)
    for problem in report.problems:
        log.warning("fsck: %s", problem)
    return report


async def _check_parcels(stores: Stores, report: Report, repair: bool) -> None:
    async for sha256 in stores.parcels.digests():
        report.parcels += 1
        digest = hashlib.sha256()
        try:
            async for chunk in stores.parcels.read(sha256):
                await run_sync(digest.update, chunk)
        except ParcelNotFound:
            continue  # an empty parcel directory left by a crash: nothing is visible
        if digest.hexdigest() == sha256:
            continue
        if repair:
            await stores.parcels.quarantine(sha256)
        report.problems.append(
            Problem(
                f"parcel {sha256}",
                f"content hashes to {digest.hexdigest()}; moved to quarantine"
                if repair
                else f"content hashes to {digest.hexdigest()}",
                repaired=repair,
            )
        )


async def _check_invoices_and_index(
    stores: Stores, index: Index, report: Report, repair: bool
) -> None:
    indexed = await index.yanked_by_key()
    seen: set[str] = set()
    async for key, document in stores.invoices.scan():
        report.invoices += 1
        try:
            invoice = parse_invoice(document)
        except InvalidInvoice as exc:
            report.problems.append(Problem(f"invoice {key}", f"unreadable: {exc}"))
            continue
        if invoice.bindle_id.key != key:
            report.problems.append(
                Problem(f"invoice {key}", f"holds {invoice.bindle_id}, stored under the wrong key")
            )
            continue
        seen.add(key)
        if indexed.get(key) == invoice.is_yanked:
            continue
        detail = (
            "missing from the index"
            if key not in indexed
            else f"index says yanked={indexed[key]}, the invoice says yanked={invoice.is_yanked}"
        )
        if repair:
            pending = await stores.invoices.read_record(RecordKind.PENDING, key) is not None
            await index.settle(key, await stored_entry(stores, key, invoice, pending))
        report.problems.append(Problem(f"invoice {invoice.bindle_id}", detail, repaired=repair))
    for key in sorted(set(indexed) - seen):
        if repair:
            await index.settle(key, None)
        report.problems.append(
            Problem(f"index entry {key}", "no readable invoice file", repaired=repair)
        )
