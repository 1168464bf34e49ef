"""Fetching a bindle: into the local bindle directory (`get`), or into a folder by parcel
names (`pull`). Every parcel is verified against its label on the way in, and a file
already present is verified before it is reused."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict

from bindle_server.client.async_client import AsyncBindleClient
from bindle_server.client.concurrency import DEFAULT_CONCURRENCY, run_bounded
from bindle_server.client.errors import UnsafeParcelName
from bindle_server.client.files import TempBeside
from bindle_server.client.integrity import verify_file
from bindle_server.client.invoices import portable_invoice
from bindle_server.client.paths import safe_destination
from bindle_server.client.progress import Progress, Silent
from bindle_server.client.standalone import write_tarball
from bindle_server.client.tree import parcel_names
from bindle_server.errors import IntegrityError, ParcelNotFound
from bindle_server.model import BindleId, Invoice, Label, dump_invoice, layout

InvoiceCheck = Callable[[Invoice], None]


class FetchOptions(TypedDict, total=False):
    """The keyword options of `get_bindle` and `pull_bindle`."""

    yanked: bool
    concurrency: int
    progress: Progress | None
    check: InvoiceCheck | None


class PullOptions(FetchOptions, total=False):
    """The keyword options of `pull_bindle`: those of a fetch, and a selection."""

    groups: Sequence[str]
    features: Sequence[str]


@dataclass
class FetchReport:
    """What a fetch did; `files` maps each parcel fetched or found to its local file."""

    invoice: Invoice
    files: dict[str, Path] = field(default_factory=dict)
    downloaded: list[Label] = field(default_factory=list)
    reused: list[Label] = field(default_factory=list)
    unavailable: list[Label] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.unavailable


@dataclass(frozen=True)
class BindleDirectory:
    """The client's local bindle directory (`-d`), in the reference server's file layout:
    `invoices/<sha of id>/invoice.toml` and `parcels/<sha>/parcel.dat`."""

    root: Path

    def invoice_path(self, bindle_id: BindleId) -> Path:
        return self.root.joinpath(*layout.invoice_parts(bindle_id.key))

    def parcel_path(self, sha256: str) -> Path:
        return self.root.joinpath(*layout.parcel_parts(sha256))


async def get_bindle(
    client: AsyncBindleClient,
    bindle_id: BindleId | str,
    directory: BindleDirectory,
    *,
    yanked: bool = False,
    concurrency: int = DEFAULT_CONCURRENCY,
    progress: Progress | None = None,
    check: InvoiceCheck | None = None,
) -> FetchReport:
    """Fetch the invoice and every parcel into the bindle directory.

    Parcels already there are verified and reused. Parcels the server lists but has not
    received are reported as `unavailable` (a partial bindle), not an error. `check` is
    called with the invoice before any parcel is fetched (e.g. to verify signatures);
    whatever it raises stops the fetch.
    """
    invoice = await client.get_invoice(bindle_id, yanked=yanked)
    if check is not None:
        check(invoice)
    path = directory.invoice_path(invoice.bindle_id)
    await asyncio.to_thread(_write_file, path, dump_invoice(invoice))
    targets = {label.sha256: directory.parcel_path(label.sha256) for label in invoice.labels}
    return await _fetch(client, invoice, targets, yanked, concurrency, progress or Silent())


def export_standalone(report: FetchReport, out_dir: Path) -> Path:
    """Write what a fetch got as `<out_dir>/<sha of id>.tar.gz` (a standalone bindle).

    The invoice is the portable one (without the server's host signature and yank
    fields), so that any server accepts it; unavailable parcels are simply absent.
    """
    invoice = portable_invoice(report.invoice)
    return write_tarball(out_dir, dump_invoice(invoice), invoice, report.files)


def pull_plan(
    invoice: Invoice, directory: Path, labels: Sequence[Label] | None = None
) -> dict[str, list[Path]]:
    """Where each parcel (of `labels`, default all) goes under `directory`, by its
    name(s); refuses unsafe names.

    Every name is checked before anything is written: absolute names, `..`, names that
    lead through a symlink out of `directory`, and names that clash with each other
    raise UnsafeParcelName. A parcel without a name is written as its sha256.
    """
    plan: dict[str, list[Path]] = {}
    unsafe: list[str] = []
    seen: dict[Path, str] = {}
    for label in invoice.labels if labels is None else labels:
        for name in parcel_names(label) or [label.sha256]:
            destination = safe_destination(directory, name)
            if destination is None or destination in seen:
                unsafe.append(name)
                continue
            seen[destination] = name
            plan.setdefault(label.sha256, []).append(destination)
    for destination in seen:
        # A file named like a directory another parcel goes into.
        if any(parent in seen for parent in destination.parents):
            unsafe.append(seen[destination])
    if unsafe:
        raise UnsafeParcelName(sorted(set(unsafe)), str(directory))
    return plan


async def pull_bindle(
    client: AsyncBindleClient,
    bindle_id: BindleId | str,
    directory: Path,
    *,
    yanked: bool = False,
    concurrency: int = DEFAULT_CONCURRENCY,
    progress: Progress | None = None,
    check: InvoiceCheck | None = None,
    groups: Sequence[str] = (),
    features: Sequence[str] = (),
) -> FetchReport:
    """Write the bindle's parcels into `directory` under their names (see `pull_plan`).

    Files already there with the right bytes are kept, so an interrupted pull resumes;
    others are replaced once their download is verified. `check` as for `get_bindle`.
    With `groups` or `features`, only the parcels the server resolves that selection to
    are written (`resolve`); they are taken from the checked invoice, by digest.
    """
    invoice = await client.get_invoice(bindle_id, yanked=yanked)
    if check is not None:
        check(invoice)
    labels = None
    if groups or features:
        resolution = await client.resolve(
            invoice.bindle_id, groups=groups, features=features, yanked=yanked
        )
        wanted = {label.sha256 for label in resolution.labels}
        labels = [label for label in invoice.labels if label.sha256 in wanted]
    plan = pull_plan(invoice, directory, labels)
    targets = {sha: paths[0] for sha, paths in plan.items()}
    report = await _fetch(client, invoice, targets, yanked, concurrency, progress or Silent())
    for sha, paths in plan.items():
        if sha in report.files:
            for extra in paths[1:]:
                await asyncio.to_thread(_copy_file, paths[0], extra)
    return report


async def _fetch(
    client: AsyncBindleClient,
    invoice: Invoice,
    targets: dict[str, Path],
    yanked: bool,
    concurrency: int,
    progress: Progress,
) -> FetchReport:
    report = FetchReport(invoice)
    bid = invoice.bindle_id

    async def fetch(label: Label) -> None:
        target = targets[label.sha256]
        if await asyncio.to_thread(_holds, target, label):
            report.reused.append(label)
            report.files[label.sha256] = target
            return
        await asyncio.to_thread(target.parent.mkdir, parents=True, exist_ok=True)
        transfer = progress.transfer(f"get {label.name or label.sha256}", label.size)
        try:
            await client.download_parcel(
                bid, label.sha256, target, label=label, yanked=yanked, transfer=transfer
            )
        except ParcelNotFound:
            report.unavailable.append(label)
            progress.note(f"parcel {label.name or label.sha256} has not been uploaded: skipped")
            return
        finally:
            transfer.close()
        report.downloaded.append(label)
        report.files[label.sha256] = target

    # Only the parcels given a target: a pull of a selection fetches no others.
    labels = [label for label in invoice.labels if label.sha256 in targets]
    await run_bounded(labels, fetch, concurrency)
    return report


def _holds(path: Path, label: Label) -> bool:
    """Whether `path` already holds exactly this parcel."""
    if not path.is_file() or path.stat().st_size != label.size:
        return False
    try:
        verify_file(path, label.sha256, label.size)
    except IntegrityError:
        return False
    return True


def _write_file(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with TempBeside(path) as temp:
        temp.write(data)
        temp.commit()


def _copy_file(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with TempBeside(target) as temp:
        shutil.copyfile(source, temp.path)
        temp.commit()
