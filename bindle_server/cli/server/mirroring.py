"""`bindle-server mirror`: copy bindles from an upstream server into this store ahead of time."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Annotated

import typer

from bindle_server.cli.server.options import (
    STORE,
    ProgressOption,
    settings_options,
    show_progress,
)
from bindle_server.cli.server.progress import finish
from bindle_server.config import Settings
from bindle_server.errors import BindleError

if TYPE_CHECKING:
    from bindle_server.migrate import CopyReport


@settings_options(*STORE, "upstream_token_file", "upstream_verify")
def mirror(
    settings: Settings,
    source: Annotated[
        str,
        typer.Option(
            "--from",
            metavar="URL",
            help="API root of the server to copy from, e.g. http://registry:8080/v1",
        ),
    ],
    terms: Annotated[
        str,
        typer.Option("--q", metavar="TERMS", help="Only bindles whose name holds every term"),
    ] = "",
    versions: Annotated[
        str,
        typer.Option("--v", metavar="RANGE", help="Only versions in this SemVer range, e.g. ^1.2"),
    ] = "",
    yanked: Annotated[bool, typer.Option("--yanked", help="Copy yanked bindles too")] = False,
    progress: ProgressOption = None,
) -> None:
    """Copy the bindles an upstream's search finds (invoices and parcels) into this store.

    Prepares a machine that will run without the upstream (air-gapped, or a CI runner):
    serve the store afterwards, with or without --upstream. Every invoice and parcel is
    verified as a mirror's reads are; what is already stored is skipped, so running it
    again finishes an interrupted copy. Exits 1 when anything could not be copied.
    """
    params = [("q", terms), ("v", versions)] + ([("yanked", "true")] if yanked else [])
    params = [(name, value) for name, value in params if value]
    try:
        report = asyncio.run(_mirror(settings, source, params, show_progress(progress)))
    except (ValueError, BindleError) as exc:
        raise typer.BadParameter(str(exc)) from None
    finish(report)


async def _mirror(
    settings: Settings, source: str, params: list[tuple[str, str]], show: bool
) -> CopyReport:
    from bindle_server.api.mirroring import check_upstream_url, read_token
    from bindle_server.backend import open_backend
    from bindle_server.cli.server.progress import byte_progress
    from bindle_server.mirror import MirrorService, Upstream
    from bindle_server.mirror.copy import copy_matching
    from bindle_server.search.registry import redact

    check_upstream_url(source, "--from")
    upstream = Upstream(
        [source],
        token=read_token(settings),
        max_invoice_bytes=settings.max_invoice_bytes,
        verify_hosts=settings.upstream_verify,
    )
    try:
        async with open_backend(settings.storage_url, settings.index) as backend:
            # No signing keys and no yank rechecks: the copy stores what the upstream has.
            service = MirrorService(
                backend.stores, backend.index, None, upstream=upstream, refresh=None
            )
            await service.recover()
            with byte_progress(f"mirroring {redact(source)}", show) as progress:
                return await copy_matching(service, params, progress)
    finally:
        await upstream.aclose()
