"""`bindle-server reindex` and `fsck`: rebuild the query index, check the stored bytes."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from bindle_server.cli.server.options import STORE, settings_options
from bindle_server.config import Settings

if TYPE_CHECKING:
    from bindle_server.fsck import Report


@settings_options(*STORE)
def reindex(settings: Settings) -> None:
    """Rebuild the query index from the stored invoices (unreadable ones are skipped)."""
    indexed, skipped = asyncio.run(_reindex(existing_store(settings)))
    typer.echo(f"indexed {indexed} invoice(s), skipped {skipped} unreadable")


@settings_options(*STORE)
def fsck(
    settings: Settings,
    repair: Annotated[
        bool,
        typer.Option(
            "--repair",
            help="Move damaged parcels to quarantine (they then count as missing, so the "
            "next upload of the right bytes heals them) and fix the index",
        ),
    ] = False,
) -> None:
    """Re-hash every parcel, parse every invoice and check the index against them.

    Exits 0 when everything is sound (or was repaired), 1 when problems remain.
    Run it with the server stopped.
    """
    report = asyncio.run(_fsck(existing_store(settings), repair))
    for problem in report.problems:
        typer.echo(str(problem))
    typer.echo(
        f"checked {report.parcels} parcel(s) and {report.invoices} invoice(s): "
        f"{len(report.problems)} problem(s), {len(report.unrepaired)} unrepaired"
    )
    raise typer.Exit(1 if report.unrepaired else 0)


def existing_store(settings: Settings) -> Settings:
    """Maintenance commands work on an existing data directory; a typo must not make
    them create an empty store and report it sound."""
    if settings.storage is None:
        check_store_directory(settings.directory, "--directory")
    return settings


def check_store_directory(path: Path, option: str) -> None:
    """BadParameter for `option` unless `path` is a Bindle data directory."""
    if not (path / "invoices").is_dir():
        raise typer.BadParameter(
            f"{path} is not a Bindle data directory (it has no invoices/)", param_hint=option
        )


async def _reindex(settings: Settings) -> tuple[int, int]:
    from bindle_server.backend import open_backend
    from bindle_server.service import rebuild_index

    async with open_backend(settings.storage_url, settings.index) as backend:
        counts = await rebuild_index(backend.stores, backend.index)
        await backend.refill_parcels()
        return counts


async def _fsck(settings: Settings, repair: bool) -> Report:
    from bindle_server.backend import open_backend
    from bindle_server.fsck import check

    async with open_backend(settings.storage_url, settings.index) as backend:
        return await check(backend.stores, backend.index, repair=repair)
