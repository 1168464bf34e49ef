"""`bindle-server`: serve the Bindle v1 API, or maintain a data directory and its keys."""

from __future__ import annotations

import asyncio
import logging
import os
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pydantic import ValidationError

from bindle_server import __version__
from bindle_server.cli import listen
from bindle_server.cli.options import (
    AddressOption,
    AnonymousReadOption,
    AtomicPushOption,
    AuthPolicyOption,
    DirectoryOption,
    GcGraceOption,
    GcIntervalOption,
    HtpasswdOption,
    IndexOption,
    KeyringOption,
    LogLevelOption,
    MaxParcelBytesOption,
    OidcClientIdOption,
    OidcDeviceUrlOption,
    OidcIssuerOption,
    PendingTtlOption,
    RequireSignaturesOption,
    RetentionOption,
    SigningKeysOption,
    StorageOption,
    StrategyOption,
    TlsCertOption,
    TlsKeyOption,
    TokensFileOption,
    UnauthenticatedOption,
    WorkersOption,
)
from bindle_server.config import Settings, configure_logging
from bindle_server.errors import BindleError

if TYPE_CHECKING:
    from bindle_server.fsck import Report

app = typer.Typer(
    help="A self-hosted Bindle server (Bindle v1 protocol): on local disk by default, or on "
    "an S3-compatible bucket with a PostgreSQL index for several nodes.",
    no_args_is_help=False,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)


def _override(settings: Settings | None, **values: Any) -> Settings:
    """Settings from the environment (or `settings`), with the options that were given."""
    given = {name: value for name, value in values.items() if value is not None}
    try:
        if settings is None:
            return Settings(**given)
        return Settings.model_validate({**settings.model_dump(), **given}) if given else settings
    except ValidationError as exc:
        problems = "; ".join(
            # A check across settings (a model validator) has no location of its own.
            (f"--{str(error['loc'][0]).replace('_', '-')}: " if error["loc"] else "")
            + error["msg"].removeprefix("Value error, ")
            for error in exc.errors()
        )
        raise typer.BadParameter(problems) from None


def _version(value: bool) -> None:
    if value:
        typer.echo(f"bindle-server {__version__}")
        raise typer.Exit()


def _settings_from(ctx: typer.Context, base: Settings | None) -> Settings:
    """`base` (or the environment) overridden by the command's options that are settings.

    The options arrive both as parameters (declared for typer and --help) and in
    `ctx.params`; reading the latter keeps one list of names, in Settings.
    """
    fields = Settings.model_fields
    return _override(base, **{name: value for name, value in ctx.params.items() if name in fields})


@app.callback(invoke_without_command=True)
def main_command(
    ctx: typer.Context,
    address: AddressOption = None,
    directory: DirectoryOption = None,
    storage: StorageOption = None,
    index: IndexOption = None,
    signing_keys: SigningKeysOption = None,
    keyring: KeyringOption = None,
    strategy: StrategyOption = None,
    require_signatures: RequireSignaturesOption = None,
    unauthenticated: UnauthenticatedOption = None,
    htpasswd_file: HtpasswdOption = None,
    tokens_file: TokensFileOption = None,
    auth_policy: AuthPolicyOption = None,
    anonymous_read: AnonymousReadOption = None,
    oidc_issuer_url: OidcIssuerOption = None,
    oidc_client_id: OidcClientIdOption = None,
    oidc_device_url: OidcDeviceUrlOption = None,
    tls_cert: TlsCertOption = None,
    tls_key: TlsKeyOption = None,
    atomic_push: AtomicPushOption = None,
    pending_ttl: PendingTtlOption = None,
    max_parcel_bytes: MaxParcelBytesOption = None,
    retention: RetentionOption = None,
    gc_interval: GcIntervalOption = None,
    gc_grace: GcGraceOption = None,
    workers: WorkersOption = 1,
    log_level: LogLevelOption = "info",
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version")
    ] = False,
) -> None:
    """Serve the Bindle API (the default when no command is given)."""
    configure_logging(log_level)
    ctx.obj = _settings_from(ctx, None)
    if ctx.invoked_subcommand is None:
        _serve(ctx.obj, log_level, workers)


@app.command()
def serve(
    ctx: typer.Context,
    address: AddressOption = None,
    directory: DirectoryOption = None,
    storage: StorageOption = None,
    index: IndexOption = None,
    signing_keys: SigningKeysOption = None,
    keyring: KeyringOption = None,
    strategy: StrategyOption = None,
    require_signatures: RequireSignaturesOption = None,
    unauthenticated: UnauthenticatedOption = None,
    htpasswd_file: HtpasswdOption = None,
    tokens_file: TokensFileOption = None,
    auth_policy: AuthPolicyOption = None,
    anonymous_read: AnonymousReadOption = None,
    oidc_issuer_url: OidcIssuerOption = None,
    oidc_client_id: OidcClientIdOption = None,
    oidc_device_url: OidcDeviceUrlOption = None,
    tls_cert: TlsCertOption = None,
    tls_key: TlsKeyOption = None,
    atomic_push: AtomicPushOption = None,
    pending_ttl: PendingTtlOption = None,
    max_parcel_bytes: MaxParcelBytesOption = None,
    retention: RetentionOption = None,
    gc_interval: GcIntervalOption = None,
    gc_grace: GcGraceOption = None,
    workers: WorkersOption = 1,
    log_level: LogLevelOption = "info",
) -> None:
    """Serve the Bindle API under /v1 (same as running bindle-server with no command)."""
    settings = _settings_from(ctx, ctx.obj)
    _serve(settings, log_level, workers)


@app.command()
def reindex(
    ctx: typer.Context,
    directory: DirectoryOption = None,
    storage: StorageOption = None,
    index: IndexOption = None,
) -> None:
    """Rebuild the query index from the stored invoices (unreadable ones are skipped)."""
    settings = _existing_store(_settings_from(ctx, ctx.obj))
    indexed, skipped = asyncio.run(_reindex(settings))
    typer.echo(f"indexed {indexed} invoice(s), skipped {skipped} unreadable")


@app.command()
def fsck(
    ctx: typer.Context,
    directory: DirectoryOption = None,
    storage: StorageOption = None,
    index: IndexOption = None,
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
    settings = _existing_store(_settings_from(ctx, ctx.obj))
    report = asyncio.run(_fsck(settings, repair))
    for problem in report.problems:
        typer.echo(str(problem))
    typer.echo(
        f"checked {report.parcels} parcel(s) and {report.invoices} invoice(s): "
        f"{len(report.problems)} problem(s), {len(report.unrepaired)} unrepaired"
    )
    raise typer.Exit(1 if report.unrepaired else 0)


def _serve(settings: Settings, log_level: str, workers: int = 1) -> None:
    from bindle_server.api.app import (
        collector_settings,
        create_app,
        freeze_startup_objects,
        open_signing,
    )
    from bindle_server.api.auth import open_auth
    from bindle_server.api.exposure import check_exposure
    from bindle_server.search.registry import check_index_url

    try:
        settings.host_and_port()
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--address") from None
    try:
        # Fail here, with one readable line, rather than inside the server's start-up.
        open_signing(settings)
        auth = open_auth(settings)
        check_exposure(settings, auth.enabled)
        check_index_url(settings.index)
        collector_settings(settings)
    except (ValueError, BindleError) as exc:
        raise typer.BadParameter(str(exc)) from None
    _check_backend(settings)
    tls = _tls_options(settings)
    log = logging.getLogger("bindle_server")
    if auth.enabled:
        log.info("authentication: %s", auth.describe())
    elif settings.listens_on_loopback():
        log.warning(
            "no authentication: anyone who can reach %s may read and write (loopback only)",
            settings.address,
        )
    else:
        log.warning(
            "no authentication (--unauthenticated): anyone who can reach %s may read and write",
            settings.address,
        )
    sock = listen.bind(settings)
    log.info(
        "bindle-server %s listening on %s://%s, data in %s",
        __version__,
        "https" if tls else "http",
        settings.address,
        settings.storage_url,
    )
    options: dict[str, Any] = {
        "log_config": None,
        "log_level": log_level.lower(),
        "server_header": False,
        **tls,
    }
    if workers == 1:
        app = create_app(settings, backend_checked=True)
        freeze_startup_objects()
        listen.run(app, sock, workers, **options)
        return
    # Worker processes import the app and rebuild the settings from the environment. They
    # share the data directory safely: writes publish with link/rename, temp files are
    # locked, and the SQLite index coordinates its writers.
    os.environ.update(settings.to_environment(), BINDLE_LOG_LEVEL=log_level)
    listen.run("bindle_server.api.app:app_from_environment", sock, workers, factory=True, **options)


def _existing_store(settings: Settings) -> Settings:
    """Maintenance commands work on an existing data directory; a typo must not make
    them create an empty store and report it sound."""
    if settings.storage is None and not (settings.directory / "invoices").is_dir():
        raise typer.BadParameter(
            f"{settings.directory} is not a Bindle data directory (it has no invoices/)",
            param_hint="--directory",
        )
    return settings


def _tls_options(settings: Settings) -> dict[str, str]:
    """uvicorn's TLS options, once both files are readable (Settings pairs them)."""
    if settings.tls_cert is None or settings.tls_key is None:
        return {}
    for path in (settings.tls_cert, settings.tls_key):
        if not path.is_file():
            raise typer.BadParameter(f"TLS file {path} does not exist")
    return {"ssl_certfile": str(settings.tls_cert), "ssl_keyfile": str(settings.tls_key)}


def _check_backend(settings: Settings) -> None:
    """Open the stores and the index once before serving: an unreachable bucket or
    database, or a missing extra, is one readable line here, not a start-up traceback."""
    from bindle_server.backend import open_backend

    async def probe() -> None:
        async with open_backend(settings.storage_url, settings.index):
            pass

    try:
        asyncio.run(probe())
    except (ValueError, BindleError) as exc:
        raise typer.BadParameter(str(exc), param_hint="--storage/--index") from None
    except Exception as exc:  # the database driver's own connection errors
        raise typer.BadParameter(
            f"cannot open the backend: {type(exc).__name__}: {exc}".strip(),
            param_hint="--storage/--index",
        ) from None


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


def main() -> None:
    app(prog_name="bindle-server")


# The other commands register themselves on `app`; imported last as they build on it.
from bindle_server.cli import credentials, lifecycle, migration  # noqa: E402, F401
