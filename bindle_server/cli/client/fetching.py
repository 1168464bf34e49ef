"""`bindle info | get | get-invoice | get-parcel | pull | clean`: reading bindles from a server."""

from __future__ import annotations

import re
import shutil
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from bindle_server.cli.client.options import BindleArg, ConcurrencyOpt, YankedOpt, output_option
from bindle_server.cli.client.output import print_document
from bindle_server.cli.client.session import Session, current_session
from bindle_server.client import (
    DEFAULT_CONCURRENCY,
    BindleYanked,
    FetchReport,
    export_standalone,
    get_bindle,
    pull_bindle,
)
from bindle_server.model import Format, dump_invoice, layout, to_document

GroupOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--group",
        metavar="GROUP",
        help="Only the parcels this group needs, with the global group, required groups "
        "and what their parcels require (repeatable; resolved by the server)",
    ),
]
FeatureOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--feature",
        metavar="NS.KEY=VALUE",
        help="Leave out parcels whose label sets this feature to another value; in a "
        "oneOf group, pick the first member that matches (repeatable)",
    ),
]


def info(
    ctx: typer.Context,
    bindle_id: BindleArg,
    yanked: YankedOpt = False,
    output_format: Annotated[
        Format, typer.Option("-f", "--output-format", help="Output format")
    ] = Format.TOML,
) -> None:
    """Get the bindle's invoice and display it."""
    session = current_session(ctx)
    with session.client() as client, _yanked_hint():
        invoice = client.get_invoice(bindle_id, yanked=yanked)
    session.check(invoice)
    print_document(to_document(invoice, output_format), output_format)


def get(
    ctx: typer.Context,
    bindle_id: BindleArg,
    yanked: YankedOpt = False,
    export: Annotated[
        Path | None,
        typer.Option(
            "-e",
            "--export",
            help="Also write the bindle as a standalone bindle tarball into this directory",
        ),
    ] = None,
    concurrency: ConcurrencyOpt = DEFAULT_CONCURRENCY,
    archive: Annotated[
        Path | None,
        typer.Option(
            "--archive",
            metavar="FILE",
            help="Instead, save the server's tar of invoice.toml and the parcels by name "
            "to FILE (never overwritten; an interrupted download resumes from FILE.part)",
        ),
    ] = None,
    group: GroupOpt = None,
    feature: FeatureOpt = None,
) -> None:
    """Download the bindle and all its parcels (verified) into the bindle directory.

    With --archive FILE, save it as one tar instead, verified against its invoice;
    --group and --feature then narrow it to a selection.
    """
    session = current_session(ctx)
    if archive is None and (group or feature):
        raise typer.BadParameter("--group and --feature need --archive (or use pull)")
    if archive is not None:
        if export is not None:
            raise typer.BadParameter("--archive and --export cannot be combined")
        _save_archive(session, bindle_id, archive, yanked, group or [], feature or [])
        return
    cache = session.cache()
    report = _fetch_all(session, get_bindle, bindle_id, cache, yanked, concurrency)
    _fetched(report, cache.root)
    if export is not None:
        typer.echo(f"Wrote standalone bindle to {export_standalone(report, export)}")


def get_invoice(
    ctx: typer.Context,
    bindle_id: BindleArg,
    output: Annotated[Path, output_option("invoice")] = Path("invoice.toml"),
    yanked: YankedOpt = False,
) -> None:
    """Get only the invoice (no parcels) and write it to a file."""
    session = current_session(ctx)
    with session.client() as client, _yanked_hint():
        invoice = client.get_invoice(bindle_id, yanked=yanked)
    session.check(invoice)
    with output.open("xb") as file:  # as the reference: never overwrite
        file.write(dump_invoice(invoice))
    typer.echo(f"Wrote invoice {invoice.bindle_id} to {output}")


def get_parcel(
    ctx: typer.Context,
    bindle_id: Annotated[str, typer.Argument(metavar="BINDLE_ID", help="The bindle id")],
    sha: Annotated[str, typer.Argument(metavar="PARCEL_SHA", help="The SHA256 of the parcel")],
    output: Annotated[Path, output_option("parcel")] = Path("parcel.dat"),
    yanked: YankedOpt = False,
) -> None:
    """Get one parcel by its SHA256, verify it and write it to a file."""
    session = current_session(ctx)
    if output.exists():
        raise FileExistsError(f"{output} exists; not overwriting it")
    with session.client() as client, session.progress() as progress, _yanked_hint():
        invoice = client.get_invoice(bindle_id, yanked=yanked)
        session.check(invoice)
        label = invoice.label_for(sha)
        if label is None:
            raise typer.BadParameter(f"{bindle_id} lists no parcel {sha}", param_hint="PARCEL_SHA")
        transfer = progress.transfer(f"get {label.name or sha}", label.size)
        try:
            client.download_parcel(
                bindle_id, sha, output, label=label, yanked=yanked, transfer=transfer
            )
        finally:
            transfer.close()
    typer.echo(f"Wrote parcel {sha} to {output}")


def pull(
    ctx: typer.Context,
    bindle_id: BindleArg,
    directory: Annotated[Path, typer.Argument(metavar="DIR", help="Where to write the parcels")],
    yanked: YankedOpt = False,
    concurrency: ConcurrencyOpt = DEFAULT_CONCURRENCY,
    group: GroupOpt = None,
    feature: FeatureOpt = None,
) -> None:
    """Write the bindle's parcels into DIR under their names (beyond the reference CLI).

    Names that would land outside DIR (absolute, '..', through a symlink) are refused
    before anything is written. Files already there with the right bytes are kept.
    With --group or --feature, only the parcels that selection needs are written: the
    global group, required and named groups, what their parcels require, one member
    of each oneOf group (e.g. --group linux-amd64 --feature wasm.os=linux).
    """
    session = current_session(ctx)
    directory.mkdir(parents=True, exist_ok=True)
    selection = {"groups": group or [], "features": feature or []}
    report = _fetch_all(
        session, pull_bindle, bindle_id, directory, yanked, concurrency, **selection
    )
    _fetched(report, directory)


def _fetch_all(
    session: Session,
    fetch: Callable[..., Awaitable[FetchReport]],
    bindle_id: str,
    target: object,
    yanked: bool,
    concurrency: int,
    **selection: list[str],
) -> FetchReport:
    """Run a whole-bindle fetch (`get_bindle` into a bindle directory, `pull_bindle` into
    a folder, with `groups` and `features` if given) with the session's progress display
    and invoice check."""
    with session.progress() as progress, _yanked_hint():
        return session.run(
            lambda client: fetch(
                client,
                bindle_id,
                target,
                yanked=yanked,
                concurrency=concurrency,
                progress=progress,
                check=session.check,
                **selection,
            )
        )


def _save_archive(
    session: Session,
    bindle_id: str,
    destination: Path,
    yanked: bool,
    groups: list[str],
    features: list[str],
) -> None:
    with session.client() as client, session.progress() as progress, _yanked_hint():
        report = client.download_archive(
            bindle_id,
            destination,
            groups=groups,
            features=features,
            yanked=yanked,
            progress=progress,
            check=session.check,
        )
    resumed = f" (resumed after {report.resumed} bytes)" if report.resumed else ""
    typer.echo(f"Wrote archive of {bindle_id} to {report.path}: {report.size} bytes{resumed}")


def clean(ctx: typer.Context) -> None:
    """Remove the invoices and parcels `get` kept in the bindle directory."""
    root = current_session(ctx).cache().root
    typer.echo(f"Cleaning up bindles in {root}...")
    for part in (layout.INVOICES, layout.PARCELS):
        shutil.rmtree(root / part, ignore_errors=True)
    typer.echo("Clean up successful")


# The server's hint for reading a yanked bindle names its query parameter (`?yanked=true`).
_QUERY_HINT = re.compile(r"\s*\([^)]*\?yanked=true[^)]*\)")


@contextmanager
def _yanked_hint() -> Iterator[None]:
    """Point a refusal to serve a yanked bindle at this CLI's own flag, `-y`."""
    try:
        yield
    except BindleYanked as exc:
        refusal = _QUERY_HINT.sub("", exc.server_message or exc.message).rstrip(" .;")
        raise exc.reworded(f"{refusal}; add -y (--yanked) to fetch it anyway") from None


def _fetched(report: FetchReport, where: Path) -> None:
    typer.echo(
        f"Fetched bindle {report.invoice.bindle_id} into {where}: "
        f"{len(report.downloaded)} parcel(s) downloaded, {len(report.reused)} already there"
    )
    if report.unavailable:
        typer.echo(f"{len(report.unavailable)} parcel(s) have not been uploaded to the server")
