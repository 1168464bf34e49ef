"""`bindle push | push-dir | push-invoice | push-file | yank | generate-label | package`:
writing bindles to a server, and preparing them to be written."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bindle_server.cli.client.options import BindleArg, ConcurrencyOpt, MediaTypeOpt, ParcelNameOpt
from bindle_server.cli.client.output import print_document
from bindle_server.cli.client.session import current_session
from bindle_server.client import (
    DEFAULT_CONCURRENCY,
    PushReport,
    StandaloneBindle,
    StandaloneError,
    label_for_file,
    push_directory,
    push_standalone,
    write_tarball,
)
from bindle_server.client.documents import read_invoice
from bindle_server.errors import BindleError
from bindle_server.model import BindleId, Format, to_document


def push(
    ctx: typer.Context,
    bindle_id: BindleArg,
    path: Annotated[
        Path,
        typer.Option(
            "-p",
            "--path",
            help="The standalone bindle: its directory, its .tar.gz, or a directory holding "
            "either (named by the sha256 of the bindle id)",
        ),
    ] = Path("."),
    concurrency: ConcurrencyOpt = DEFAULT_CONCURRENCY,
) -> None:
    """Push a standalone bindle: its invoice, then the parcels the server lacks.

    If the server already has a different invoice for this bindle id, nothing is
    uploaded and the command fails.
    """
    session = current_session(ctx)
    bid = _bindle_id(bindle_id)
    with session.progress() as progress:
        report = session.run(
            lambda client: push_standalone(
                client, path, bid, concurrency=concurrency, progress=progress
            )
        )
    _pushed(report)


def push_dir(
    ctx: typer.Context,
    directory: Annotated[Path, typer.Argument(metavar="DIR", help="The directory to publish")],
    name: Annotated[str, typer.Option("--name", "-n", help="The bindle name")],
    version: Annotated[str, typer.Option("--version", "-v", help="The bindle version (SemVer)")],
    groups: Annotated[
        bool, typer.Option("--groups", help="Make each top-level subdirectory a group")
    ] = False,
    description: Annotated[
        str | None, typer.Option("--description", help="The bindle's description")
    ] = None,
    author: Annotated[
        list[str] | None, typer.Option("--author", help="An author (repeatable)")
    ] = None,
    concurrency: ConcurrencyOpt = DEFAULT_CONCURRENCY,
) -> None:
    """Publish a directory tree as a bindle (beyond the reference CLI).

    Every file becomes a parcel named by its path relative to DIR, with a media type
    guessed from its name; the invoice is created and the files the server lacks are
    uploaded. Files with identical bytes become one parcel that remembers all names.
    """
    session = current_session(ctx)
    with session.progress() as progress:
        report = session.run(
            lambda client: push_directory(
                client,
                directory,
                name,
                version,
                groups=groups,
                description=description,
                authors=author,
                concurrency=concurrency,
                progress=progress,
            )
        )
    _pushed(report)


def push_invoice(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(metavar="FILE", help="The invoice TOML file")] = Path(
        "invoice.toml"
    ),
) -> None:
    """Push an invoice file (no parcels) to the server."""
    session = current_session(ctx)
    data = path.read_bytes()
    read_invoice(data, str(path))  # a readable error before anything is sent
    with session.client() as client:
        created = client.create_invoice(data)
    typer.echo(f"Invoice {created.invoice.bindle_id} created")
    for label in created.missing:
        typer.echo(f"missing parcel {label.sha256} {label.name or ''}".rstrip())


def push_file(
    ctx: typer.Context,
    bindle_id: Annotated[str, typer.Argument(metavar="BINDLE_ID", help="The bindle id")],
    path: Annotated[
        Path, typer.Argument(metavar="FILE", help="The file to push as one of its parcels")
    ],
    name: ParcelNameOpt = None,
    media_type: MediaTypeOpt = None,
) -> None:
    """Push a file as a parcel of an existing invoice that lists it."""
    session = current_session(ctx)
    label = label_for_file(path, name, media_type)
    typer.echo(f"Uploading file {path} to server")
    with session.client() as client, session.progress() as progress:
        transfer = progress.transfer(f"push {label.name}", label.size)
        try:
            client.upload_parcel(bindle_id, label.sha256, path, size=label.size, transfer=transfer)
        finally:
            transfer.close()
    typer.echo("File successfully uploaded")


def yank(ctx: typer.Context, bindle_id: BindleArg) -> None:
    """Yank a bindle: it stays readable only to those who ask for yanked bindles."""
    with current_session(ctx).client() as client:
        client.yank_invoice(bindle_id)
    typer.echo(f"Bindle {bindle_id} yanked")


def generate_label(
    path: Annotated[Path, typer.Argument(metavar="FILE", help="The file to label")],
    name: ParcelNameOpt = None,
    media_type: MediaTypeOpt = None,
) -> None:
    """Print a label (sha256, size, name, media type) for a file, to add to an invoice."""
    print_document(to_document(label_for_file(path, name, media_type), Format.TOML), Format.TOML)


def package(
    bindle_id: BindleArg,
    path: Annotated[
        Path,
        typer.Option("-p", "--path", help="Where the standalone bindle directory is (or holds it)"),
    ] = Path("."),
    export_dir: Annotated[
        Path, typer.Option("-e", "--export-dir", help="Where to write the tarball")
    ] = Path("."),
) -> None:
    """Pack a standalone bindle directory into its .tar.gz, verifying every parcel file."""
    bid = _bindle_id(bindle_id)
    root = path if (path / "invoice.toml").is_file() else path / bid.key
    standalone = StandaloneBindle.read(root)
    if standalone.bindle_id != bid:
        raise StandaloneError(f"{root} holds the invoice of {standalone.bindle_id}, not {bid}")
    tarball = write_tarball(
        export_dir, standalone.invoice_bytes, standalone.invoice, standalone.parcels
    )
    typer.echo(f"Wrote standalone bindle tarball to {tarball}")


def _pushed(report: PushReport) -> None:
    state = "created" if report.created else "already existed"
    typer.echo(
        f"Pushed bindle {report.bindle_id} (invoice {state}): {len(report.uploaded)} parcel(s) "
        f"uploaded, {len(report.already_stored)} already on the server"
    )
    if report.unavailable:
        typer.echo(
            f"{len(report.unavailable)} parcel(s) are still missing on the server: "
            "push them from a bindle that has them"
        )


def _bindle_id(text: str) -> BindleId:
    try:
        return BindleId.parse(text)
    except BindleError as exc:
        raise typer.BadParameter(exc.message, param_hint="BINDLE") from None
