"""The `bindle-server` typer app: its own options (those of `serve`, which it runs when no
command is given), the one place every command is registered, and `main()`."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from bindle_server import __version__
from bindle_server.cli.server import (
    audit,
    configuration,
    credentials,
    lifecycle,
    maintenance,
    migration,
    mirroring,
    webhooks,
)
from bindle_server.cli.server.options import SERVE, settings_options
from bindle_server.cli.server.serve import run_server, serve
from bindle_server.config import Settings, configure_logging

EPILOG = configuration.environment_epilog()


def _version(value: bool) -> None:
    if value:
        typer.echo(f"bindle-server {__version__}")
        raise typer.Exit()


def _group(description: str, **options: Any) -> typer.Typer:
    """A typer app whose help is plain text (no rich markup to escape in it)."""
    return typer.Typer(help=description, rich_markup_mode=None, **options)


app = _group(
    "A self-hosted Bindle server (Bindle v1 protocol): on local disk by default, or on "
    "an S3-compatible bucket with a PostgreSQL index for several nodes.",
    epilog=EPILOG,
    add_completion=False,
    pretty_exceptions_enable=False,
)
keys_app = _group("Manage the server's signing keys (the secret key file).", no_args_is_help=True)
token_app = _group(
    "Manage bearer tokens for machines (CI): the server keeps only their hashes.",
    no_args_is_help=True,
)


@app.callback(invoke_without_command=True)
@settings_options(*SERVE)
def bindle_server(
    ctx: typer.Context,
    settings: Settings,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version")
    ] = False,
) -> None:
    """Serve the Bindle API (the default when no command is given)."""
    configure_logging(settings.log_level, settings.log_format)
    if ctx.invoked_subcommand is None:
        run_server(settings)


# Every command is registered here, in the order `bindle-server --help` lists them.
app.command(epilog=EPILOG)(serve)
app.command(epilog=EPILOG)(configuration.config)
app.command()(maintenance.reindex)
app.command()(maintenance.fsck)
app.command()(lifecycle.purge)
app.command()(lifecycle.gc)
app.command()(migration.migrate)
app.command()(audit.audit)
app.command()(webhooks.webhooks)
app.command("migrate-storage")(migration.migrate_storage)
app.command()(mirroring.mirror)
keys_app.command("create")(credentials.keys_create)
keys_app.command("print")(credentials.keys_print)
app.add_typer(keys_app, name="keys")
token_app.command("create")(credentials.token_create)
token_app.command("list")(credentials.token_list)
token_app.command("revoke")(credentials.token_revoke)
app.add_typer(token_app, name="token")


def main() -> None:
    """Run the `bindle-server` command line."""
    app(prog_name="bindle-server")
