"""`bindle-server migrate` and `migrate-storage`: the index schema, and moving a store."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from bindle_server.cli.server.maintenance import check_store_directory
from bindle_server.cli.server.options import ProgressOption, settings_options, show_progress
from bindle_server.cli.server.progress import finish
from bindle_server.config import Settings
from bindle_server.errors import BindleError

if TYPE_CHECKING:
    from bindle_server.migrate import CopyReport


@settings_options("index")
def migrate(settings: Settings) -> None:
    """Apply the PostgreSQL index's schema migrations and print the schema version.

    The server applies them at start-up too (under a lock, so nodes starting together
    are safe); run this to migrate ahead of a rolling restart.
    """
    if not settings.index:
        typer.echo(
            "the embedded SQLite index needs no migrations (it is rebuilt when its "
            "format changes); give --index postgresql://... to migrate a shared index"
        )
        return
    try:
        applied, version = asyncio.run(_migrate(settings.index))
    except (ValueError, BindleError) as exc:
        raise typer.BadParameter(str(exc), param_hint="--index") from None
    except Exception as exc:  # the database driver's own connection errors
        raise typer.BadParameter(f"{type(exc).__name__}: {exc}", param_hint="--index") from None
    done = f"applied migration(s) {', '.join(map(str, applied))}" if applied else "up to date"
    typer.echo(f"index schema at version {version}: {done}")


def migrate_storage(
    source: Annotated[
        str,
        typer.Option(
            "--from",
            help="Storage URL to copy from: file://PATH (or a path), s3://BUCKET/PREFIX?...",
        ),
    ],
    target: Annotated[
        str,
        typer.Option(
            "--to", help="Storage URL to copy into: s3://BUCKET/PREFIX?... or file://PATH"
        ),
    ],
    index: Annotated[
        str | None,
        typer.Option(
            "--index",
            help="Index of the destination to rebuild afterwards (postgresql://...) [default: "
            "the embedded index of a file:// destination; none for s3://]",
            show_default=False,
        ),
    ] = None,
    jobs: Annotated[int, typer.Option("--jobs", min=1, max=64, help="Parcels copied at once")] = 4,
    verify: Annotated[
        bool,
        typer.Option(
            "--verify/--no-verify",
            help="Read every parcel back from the destination and hash it again",
        ),
    ] = True,
    progress: ProgressOption = None,
) -> None:
    """Copy every parcel and invoice from one store into another, verifying each.

    Parcels go first, each checked against its sha256 and size on the way in and, with
    --verify, read back and hashed again; invoices follow, compared byte for byte when
    already there. Re-running it finishes an interrupted copy. Run it with the servers
    of the source stopped (or read-only), then point the servers at the destination.
    Exits 1 when anything could not be copied.
    """
    _check_urls(source, target)
    show = show_progress(progress)
    try:
        report = asyncio.run(_migrate_storage(source, target, index, jobs, verify, show))
    except (ValueError, BindleError) as exc:
        raise typer.BadParameter(str(exc)) from None
    finish(report)


def _check_urls(source: str, target: str) -> None:
    """Both URLs parse and their extras are installed; a local source holds a store."""
    from bindle_server.storage import open_stores

    for url, hint in ((source, "--from"), (target, "--to")):
        try:
            if _local_path(url) is None:  # a local directory is created or checked below
                open_stores(url)  # parses the URL and finds the extra; no I/O yet
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint=hint) from None
    source_path = _local_path(source)
    if source_path is not None:
        check_store_directory(source_path, "--from")


def _local_path(url: str) -> Path | None:
    from urllib.parse import unquote, urlsplit

    parts = urlsplit(url)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            # file://./storage would otherwise mean /storage on a host named ".".
            raise ValueError(f"{url!r}: write file:///absolute/path, or just the path")
        return Path(unquote(parts.path))
    return Path(url) if not parts.scheme else None


async def _migrate(index_url: str) -> tuple[list[int], int]:
    from bindle_server.search.postgres import PostgresIndex
    from bindle_server.search.postgres_schema import MIGRATIONS
    from bindle_server.search.registry import check_index_url

    check_index_url(index_url)
    index = PostgresIndex(index_url)
    try:
        return await index.migrate(), len(MIGRATIONS)
    finally:
        await index.close()


async def _migrate_storage(
    source_url: str, target_url: str, index_url: str | None, jobs: int, verify: bool, show: bool
) -> CopyReport:
    from bindle_server.backend import open_backend
    from bindle_server.cli.server.progress import byte_progress
    from bindle_server.migrate import copy_store
    from bindle_server.service import rebuild_index
    from bindle_server.storage import open_stores

    source = open_stores(source_url)
    await source.start()
    try:
        async with open_backend(target_url, index_url) as destination:
            description = f"copying to {destination.stores.description}"
            with byte_progress(description, show) as progress:
                report = await copy_store(
                    source, destination.stores, jobs=jobs, verify=verify, progress=progress
                )
            if index_url or not destination.stores.shared:
                indexed, skipped = await rebuild_index(destination.stores, destination.index)
                await destination.refill_parcels()
                typer.echo(
                    f"rebuilt the destination's index: {indexed} invoice(s), {skipped} skipped"
                )
            else:
                typer.echo(
                    "the destination's index was not rebuilt: run bindle-server reindex "
                    "--storage URL --index postgresql://... (or pass --index here)"
                )
            return report
    finally:
        await source.close()
