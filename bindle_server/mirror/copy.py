"""`bindle-server mirror`: copy a set of bindles from an upstream ahead of time.

For an air-gapped machine, or a CI runner that must not depend on the network later.
Everything goes through the same fetch-through path as a mirror's reads (so it is
verified the same way), and what is already stored is skipped, so an interrupted copy
is finished by running it again.
"""

from __future__ import annotations

from collections.abc import Sequence

import httpx

from bindle_server.errors import BindleError
from bindle_server.migrate import CopyReport, Progress
from bindle_server.mirror.service import MirrorService
from bindle_server.model import Invoice


async def copy_matching(
    service: MirrorService, params: Sequence[tuple[str, str]], progress: Progress
) -> CopyReport:
    """Copy every invoice the upstream's `_q` answers `params` with, and its parcels.

    A bindle that fails (its upstream breaks off, or its bytes do not verify) is
    reported and the copy goes on with the next; nothing unverified is stored.
    """
    report = CopyReport()
    async for invoice in service.upstream.matches(params):
        try:
            await _copy_bindle(service, invoice, progress, report)
        except (BindleError, httpx.HTTPError) as exc:
            report.problems.append(f"{invoice.bindle_id}: {str(exc) or type(exc).__name__}")
    return report


async def _copy_bindle(
    service: MirrorService, listed: Invoice, progress: Progress, report: CopyReport
) -> None:
    bindle_id = listed.bindle_id
    present = await service.stores.invoices.read(bindle_id.key) is not None
    invoice = await service.get_invoice(bindle_id, allow_yanked=True)  # fetched if absent
    if present:
        report.invoices_present += 1
    else:
        report.invoices_copied += 1
        report.invoices_yanked += invoice.is_yanked
    labels = {label.sha256: label for label in invoice.labels}
    missing = await service.stores.parcels.missing(labels)
    report.parcels_present += len(labels) - len(missing)
    wanted = [label for sha256, label in labels.items() if sha256 in missing]
    progress.expect(sum(label.size for label in wanted))
    for label in wanted:
        await service.stored_parcel(bindle_id, label.sha256, allow_yanked=True)
        async for chunk in service.read_parcel(label.sha256):
            progress.advance(len(chunk))
            report.bytes_copied += len(chunk)
        report.parcels_copied += 1
