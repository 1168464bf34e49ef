"""Pushing a bindle: create its invoice, then upload only the parcels the server lacks.

The flow of the reference client (BINDLE-PROTOCOL.md section 10) with two changes: when
the invoice exists already, it is compared with the local one and the push stops if
they differ (deislabs/bindle#335), and the portable invoice is sent (no host signature
of another server, no yank fields; see `invoices`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict

from bindle_server.client.async_client import AsyncBindleClient
from bindle_server.client.concurrency import DEFAULT_CONCURRENCY, run_bounded
from bindle_server.client.errors import BindleYanked, InvoiceMismatch
from bindle_server.client.invoices import invoice_differences, portable_invoice
from bindle_server.client.progress import Progress, Silent
from bindle_server.client.standalone import open_standalone
from bindle_server.client.tree import invoice_from_directory
from bindle_server.errors import InvoiceExists, ParcelExists
from bindle_server.model import BindleId, Invoice, Label


class PushOptions(TypedDict, total=False):
    """The keyword options every push takes."""

    concurrency: int
    progress: Progress | None


class DirectoryOptions(PushOptions, total=False):
    """The keyword options of `push_directory`: how the tree becomes an invoice (see
    `tree.invoice_from_directory`), and those of every push."""

    groups: bool
    description: str | None
    authors: list[str] | None


@dataclass
class PushReport:
    """What a push did. `unavailable` parcels are missing on the server and were not in
    the local bindle either (a partial push): a later push with them completes it."""

    bindle_id: BindleId
    created: bool
    uploaded: list[Label] = field(default_factory=list)
    already_stored: list[Label] = field(default_factory=list)
    unavailable: list[Label] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.unavailable


async def push_invoice_and_parcels(
    client: AsyncBindleClient,
    invoice: Invoice,
    files: Mapping[str, Path],
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    progress: Progress | None = None,
) -> PushReport:
    """Create the invoice (or check the stored one), then upload the missing parcels.

    `files` maps parcel digests to local files; parcels the server lacks and `files`
    does not have are reported as `unavailable`. At most `concurrency` uploads run at
    once. Raises InvoiceMismatch, without uploading anything, when the server already
    stores a different invoice under this bindle id.
    """
    report_to = progress or Silent()
    submitted = portable_invoice(invoice)
    dropped = len(invoice.signature or []) - len(submitted.signature or [])
    if dropped:
        report_to.note(f"leaving out {dropped} host signature(s): the server adds its own")
    bid = submitted.bindle_id
    try:
        created = await client.create_invoice(submitted)
        missing = created.missing
        report = PushReport(bid, created=True)
        report_to.note(f"created invoice {bid}; {len(missing)} parcel(s) to upload")
    except InvoiceExists:
        missing = await _missing_from_stored(client, submitted)
        report = PushReport(bid, created=False)
        report_to.note(
            f"invoice {bid} already exists and matches; {len(missing)} parcel(s) missing"
        )
    missing_digests = {label.sha256 for label in missing}
    report.already_stored = [
        label for label in submitted.labels if label.sha256 not in missing_digests
    ]
    to_upload = [label for label in missing if label.sha256 in files]
    report.unavailable = [label for label in missing if label.sha256 not in files]

    async def upload(label: Label) -> None:
        transfer = report_to.transfer(f"push {label.name or label.sha256}", label.size)
        try:
            await client.upload_parcel(
                bid, label.sha256, files[label.sha256], size=label.size, transfer=transfer
            )
        except ParcelExists:
            pass  # stored meanwhile by another upload: what we wanted
        finally:
            transfer.close()
        report.uploaded.append(label)

    await run_bounded(to_upload, upload, concurrency)
    for label in report.unavailable:
        report_to.note(f"parcel {label.name or label.sha256} is missing on the server and here")
    return report


async def _missing_from_stored(client: AsyncBindleClient, submitted: Invoice) -> list[Label]:
    """The parcels an invoice the server already stores still lacks, once it is sure the
    stored invoice is the one being pushed (InvoiceMismatch otherwise)."""
    bid = submitted.bindle_id
    try:
        stored = await client.get_invoice(bid)
    except BindleYanked as exc:
        raise exc.reworded(
            f"{bid} already exists on the server and is yanked; it takes no more parcels"
        ) from None
    differences = invoice_differences(submitted, stored)
    if differences:
        raise InvoiceMismatch(str(bid), differences) from None
    return await client.missing_parcels(bid)


async def push_standalone(
    client: AsyncBindleClient,
    path: Path,
    bindle_id: BindleId | None = None,
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    progress: Progress | None = None,
) -> PushReport:
    """Push a standalone bindle: a directory, a `.tar.gz`, or a folder holding either.

    A standalone bindle may be partial: parcels it lacks are reported, not an error.
    """
    standalone_context = open_standalone(path, bindle_id)
    standalone = await asyncio.to_thread(standalone_context.__enter__)
    try:
        for unlisted in standalone.unlisted:
            if progress is not None:
                progress.note(f"ignoring {unlisted.name}: not a parcel this invoice lists")
        return await push_invoice_and_parcels(
            client,
            standalone.invoice,
            standalone.parcels,
            concurrency=concurrency,
            progress=progress,
        )
    finally:
        await asyncio.to_thread(standalone_context.__exit__, None, None, None)


async def push_directory(
    client: AsyncBindleClient,
    directory: Path,
    name: str,
    version: str,
    *,
    groups: bool = False,
    description: str | None = None,
    authors: list[str] | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    progress: Progress | None = None,
) -> PushReport:
    """Build an invoice from a directory tree (see `tree`) and push it with its files."""
    built = await asyncio.to_thread(
        invoice_from_directory,
        directory,
        name,
        version,
        groups=groups,
        description=description,
        authors=authors,
        progress=progress,
    )
    return await push_invoice_and_parcels(
        client, built.invoice, built.files, concurrency=concurrency, progress=progress
    )
