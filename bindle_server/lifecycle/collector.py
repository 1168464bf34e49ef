"""Online garbage collection: retention, pending expiry, then parcels that nothing lists.

A run happens while servers serve, on every node, and can be killed at any point:

1. Writes a dead process left half-done are settled (a purge interrupted between the
   store and the index is finished from its write mark), and condemnations a dead
   collector left are dropped, so their parcels are judged afresh.
2. Retention selects bindles; each is purged (tombstone, invoice, index entry).
3. Pending invoices untouched for the pending TTL are removed.
4. Stored parcels older than the grace period that no invoice lists (committed or
   pending) are condemned in one index transaction that re-checks the references, removed
   from the store, then released. A create racing this either recorded its references
   first (the parcel is not condemned) or reads the condemnation in its own transaction
   and reports the parcel missing (see search/index.py).

One collector runs at a time (an index lease), across processes and nodes.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from bindle_server.errors import BindleError
from bindle_server.events import Action, Event
from bindle_server.lifecycle.retention import Release, RetentionPolicy
from bindle_server.model import BindleId
from bindle_server.model.units import format_size
from bindle_server.search.index import InvoiceState, LifecycleRow
from bindle_server.service import BindleService
from bindle_server.storage import RecordKind

log = logging.getLogger(__name__)

LEASE = "gc"
# Parcels judged per index transaction while sweeping, and bindles purged per transaction.
_SWEEP_BATCH = 1000
_PURGE_BATCH = 200


class CollectorBusy(BindleError):
    """Another garbage collection holds the lease."""


@dataclass(frozen=True)
class CollectorSettings:
    pending_ttl: float = 24 * 3600.0
    grace: float = 3600.0
    retention: RetentionPolicy | None = None


@dataclass
class CollectionReport:
    """What a run removed (or, dry, would remove)."""

    dry_run: bool
    purged: list[dict[str, str]] = field(default_factory=list)
    expired: list[str] = field(default_factory=list)
    parcels_removed: int = 0
    bytes_freed: int = 0
    parcels_kept: int = 0
    seconds: float = 0.0

    @property
    def bindles_removed(self) -> int:
        return len(self.purged) + len(self.expired)

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "bindles_removed": self.bindles_removed}, indent=2)

    def table(self) -> list[str]:
        verb = "would remove" if self.dry_run else "removed"
        lines = [f"{item['bindle']}\t{verb}\t{item['reason']}" for item in self.purged]
        lines += [f"{bindle}\t{verb}\tpending push expired" for bindle in self.expired]
        lines.append(
            f"{'dry run: ' if self.dry_run else ''}{self.bindles_removed} bindle(s) and "
            f"{self.parcels_removed} parcel(s) {verb}, {format_size(self.bytes_freed)} "
            f"{'to free' if self.dry_run else 'freed'}, {self.parcels_kept} parcel(s) kept, "
            f"in {self.seconds:.1f} s"
        )
        return lines


Progress = Callable[[str, int], None]
"""Told the phase and how many items it has handled so far."""


async def collect(
    service: BindleService,
    settings: CollectorSettings,
    *,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> CollectionReport:
    """Run one garbage collection over the service's stores and index."""
    index = service.index
    started = time.monotonic()
    report = CollectionReport(dry_run)
    if not dry_run:
        holder = await index.acquire_lease(LEASE)
        if holder is not None:
            raise CollectorBusy(f"another garbage collection is running ({holder})")
    try:
        if not dry_run:
            await service.settle_interrupted()
            stale = await index.stale_condemned()
            if stale:
                log.info("dropping %d condemnation(s) a dead collector left", len(stale))
                await index.release(stale)
        rows = await index.lifecycle_rows()
        await _apply_retention(service, settings.retention, rows, report)
        await _expire_pending(service, settings.pending_ttl, rows, report)
        if not dry_run:
            await _drop_stale_pending_records(service, settings.grace)
        await _sweep_parcels(service, settings.grace, report, progress)
    finally:
        if not dry_run:
            await index.release_lease(LEASE)
    report.seconds = time.monotonic() - started
    log.info("garbage collection: %s", report.table()[-1])
    if not dry_run:
        await service.events.record(
            Event.now(
                Action.GC_RUN,
                bindles=report.bindles_removed,
                parcels=report.parcels_removed,
                bytes=report.bytes_freed,
            )
        )
    return report


async def expire_pending(service: BindleService, pending_ttl: float) -> list[str]:
    """Remove pending invoices untouched for `pending_ttl` seconds; their bindle ids."""
    report = CollectionReport(dry_run=False)
    await _expire_pending(service, pending_ttl, await service.index.lifecycle_rows(), report)
    return report.expired


async def _apply_retention(
    service: BindleService,
    policy: RetentionPolicy | None,
    rows: list[LifecycleRow],
    report: CollectionReport,
) -> None:
    if policy is None:
        return
    releases = [
        Release(row.key, row.name, row.version, row.yanked, row.created, row.yanked_at)
        for row in rows
        if row.state is InvoiceState.COMMITTED
    ]
    removals = policy.select(releases, time.time())
    for start in range(0, len(removals), _PURGE_BATCH):
        batch = [
            (BindleId(r.release.name, r.release.version), f"retention: {r.reason}")
            for r in removals[start : start + _PURGE_BATCH]
        ]
        if not report.dry_run:
            done = {bindle_id for bindle_id, _ in await service.purge_many(batch)}
            batch = [item for item in batch if item[0] in done]  # others: purged meanwhile
            await service.index.renew_lease(LEASE)
        report.purged += [{"bindle": str(b), "reason": reason} for b, reason in batch]


async def _expire_pending(
    service: BindleService, ttl: float, rows: list[LifecycleRow], report: CollectionReport
) -> None:
    names = {row.key: f"{row.name}/{row.version}" for row in rows}
    if report.dry_run:
        report.expired += sorted(
            names[row.key] for row in rows if row.state is InvoiceState.PENDING and row.idle > ttl
        )
        return
    await service.events.ready()
    claimed = await service.index.claim_expired(ttl)
    await service.remove(claimed)
    for key, _ in claimed:
        bindle = names.get(key, key)
        log.info("pending invoice %s expired: untouched for over %.0f s", bindle, ttl)
        report.expired.append(bindle)
        await service.events.record(Event.now(Action.PENDING_EXPIRED, bindle=bindle))


async def _drop_stale_pending_records(service: BindleService, grace: float) -> None:
    """Pending records left behind by a push that died before its invoice was written, or
    by a commit that died before removing the record."""
    invoices, index = service.stores.invoices, service.index
    cutoff = time.time() - grace
    async for record in invoices.records(RecordKind.PENDING):
        if record.modified > cutoff:
            continue
        status = await index.status(record.name)
        if status is not None and status.state is not InvoiceState.COMMITTED:
            continue
        if status is None and await invoices.read(record.name) is not None:
            continue  # an invoice the index does not know yet: recovery settles it
        await invoices.delete_record(RecordKind.PENDING, record.name)


async def _sweep_parcels(
    service: BindleService, grace: float, report: CollectionReport, progress: Progress | None
) -> None:
    parcels, index = service.stores.parcels, service.index
    cutoff = time.time() - grace
    seen = 0
    batch: dict[str, int] = {}

    async def judge() -> None:
        unreferenced = await index.unreferenced(list(batch))
        if report.dry_run:
            doomed = sorted(unreferenced)
        else:
            await service.events.ready()
            doomed = await index.condemn(sorted(unreferenced))
            try:
                await parcels.delete(doomed)
            finally:
                await index.release(doomed)
            for sha256 in doomed:
                await service.events.record(
                    Event.now(Action.GC_REMOVED, digest=sha256, size=batch[sha256])
                )
            await index.renew_lease(LEASE)
        report.parcels_removed += len(doomed)
        report.bytes_freed += sum(batch[sha256] for sha256 in doomed)
        report.parcels_kept += len(batch) - len(doomed)
        batch.clear()

    async for stored in parcels.inventory():
        seen += 1
        if stored.modified > cutoff:
            report.parcels_kept += 1  # too young: its push may still be under way
            continue
        batch[stored.name] = stored.size
        if len(batch) >= _SWEEP_BATCH:
            await judge()
            if progress is not None:
                progress("parcels", seen)
    if batch:
        await judge()
    if progress is not None:
        progress("parcels", seen)
