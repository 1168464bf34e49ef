"""`bindle-server`: serve the Bindle v1 API, or maintain a data directory."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Annotated

import typer
import uvicorn

from bindle_server import __version__
from bindle_server.config import DEFAULT_ADDRESS, Settings

app = typer.Typer(
    help="A self-hosted Bindle server (Bindle v1 protocol) on local disk.",
    no_args_is_help=False,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)

AddressOption = Annotated[
    str | None,
    typer.Option(
        "--address",
        "-i",
        help=f"HOST:PORT to listen on [env: BINDLE_IP_ADDRESS_PORT] [default: {DEFAULT_ADDRESS}]",
        show_default=False,
    ),
]
DirectoryOption = Annotated[
    Path | None,
    typer.Option(
        "--directory",
        "-d",
        help="Data directory for invoices, parcels and the index "
        "[env: BINDLE_DIRECTORY] [default: ./storage]",
        show_default=False,
    ),
]
LogLevelOption = Annotated[
    str,
    typer.Option("--log-level", help="debug, info, warning or error", envvar="BINDLE_LOG_LEVEL"),
]


def _settings(address: str | None, directory: Path | None) -> Settings:
    overrides: dict[str, object] = {}
    if address is not None:
        overrides["address"] = address
    if directory is not None:
        overrides["directory"] = directory
    return Settings(**overrides)  # type: ignore[arg-type]  # validated by pydantic


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)-7s %(name)s: %(message)s"
    )


def _version(value: bool) -> None:
    if value:
        typer.echo(f"bindle-server {__version__}")
        raise typer.Exit()


@app.callback(invoke_without_command=True)
def main_command(
    ctx: typer.Context,
    address: AddressOption = None,
    directory: DirectoryOption = None,
    log_level: LogLevelOption = "info",
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version")
    ] = False,
) -> None:
    """Serve the Bindle API (the default when no command is given)."""
    _configure_logging(log_level)
    ctx.obj = _settings(address, directory)
    if ctx.invoked_subcommand is None:
        _serve(ctx.obj, log_level)


@app.command()
def serve(
    ctx: typer.Context,
    address: AddressOption = None,
    directory: DirectoryOption = None,
    log_level: LogLevelOption = "info",
) -> None:
    """Serve the Bindle API under /v1 (same as running bindle-server with no command)."""
    settings: Settings = ctx.obj
    _serve(_override(settings, address, directory), log_level)


@app.command()
def reindex(ctx: typer.Context, directory: DirectoryOption = None) -> None:
    """Rebuild the query index from the stored invoice files (unreadable ones are skipped)."""
    settings = _override(ctx.obj, None, directory)
    indexed, skipped = asyncio.run(_reindex(settings))
    typer.echo(f"indexed {indexed} invoice(s), skipped {skipped} unreadable")


def _override(settings: Settings, address: str | None, directory: Path | None) -> Settings:
    update: dict[str, object] = {}
    if address is not None:
        update["address"] = address
    if directory is not None:
        update["directory"] = directory
    return settings.model_copy(update=update) if update else settings


def _serve(settings: Settings, log_level: str) -> None:
    from bindle_server.api.app import create_app

    try:
        host, port = settings.host_and_port()
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--address") from None
    logging.getLogger("bindle_server").info(
        "bindle-server %s: data in %s, listening on %s",
        __version__,
        settings.storage_url,
        settings.address,
    )
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        log_config=None,
        log_level=log_level.lower(),
        server_header=False,
    )


async def _reindex(settings: Settings) -> tuple[int, int]:
    from bindle_server.search import SqliteIndex
    from bindle_server.service import BindleService
    from bindle_server.storage import open_stores

    stores = open_stores(settings.storage_url)
    index = SqliteIndex(stores.index_location)
    try:
        return await BindleService(stores, index).reindex()
    finally:
        await index.close()


def main() -> None:
    app(prog_name="bindle-server")
