"""`bindle-server`: serve the Bindle v1 API, or maintain a data directory and its keys."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
import uvicorn
from pydantic import ValidationError

from bindle_server import __version__
from bindle_server.cli.options import (
    AtomicPushOption,
    GcGraceOption,
    GcIntervalOption,
    MaxParcelBytesOption,
    PendingTtlOption,
    RetentionOption,
)
from bindle_server.config import DEFAULT_ADDRESS, Settings, configure_logging
from bindle_server.errors import BindleError

if TYPE_CHECKING:
    from bindle_server.fsck import Report
    from bindle_server.migrate import CopyReport

app = typer.Typer(
    help="A self-hosted Bindle server (Bindle v1 protocol): on local disk by default, or on "
    "an S3-compatible bucket with a PostgreSQL index for several nodes.",
    no_args_is_help=False,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)
keys_app = typer.Typer(
    help="Manage the server's signing keys (the secret key file).",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(keys_app, name="keys")
token_app = typer.Typer(
    help="Manage bearer tokens for machines (CI): the server keeps only their hashes.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(token_app, name="token")

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
StorageOption = Annotated[
    str | None,
    typer.Option(
        "--storage",
        help="Storage URL: s3://BUCKET/PREFIX?endpoint=URL&region=NAME keeps invoices and "
        "parcels in an S3-compatible bucket (credentials from the AWS_* variables; pip "
        "install 'bindle-server[s3]') [env: BINDLE_STORAGE] [default: file://DIRECTORY]",
        show_default=False,
    ),
]
IndexOption = Annotated[
    str | None,
    typer.Option(
        "--index",
        help="Query index URL: postgresql://USER@HOST/DB puts it on PostgreSQL (pip install "
        "'bindle-server[postgres]') [env: BINDLE_INDEX] [default: SQLite in the data directory]",
        show_default=False,
    ),
]
SigningKeysOption = Annotated[
    Path | None,
    typer.Option(
        "--signing-keys",
        help="Secret key file of the server's signing keys [env: BINDLE_SIGNING_KEYS] "
        "[default: DIRECTORY/signing-keys.toml, created with one host key on first start]",
        show_default=False,
    ),
]
KeyringOption = Annotated[
    Path | None,
    typer.Option(
        "--keyring",
        "-r",
        help="Keyring of trusted public keys; a key counts only for the roles its entry "
        "lists [env: BINDLE_KEYRING]",
        show_default=False,
    ),
]
StrategyOption = Annotated[
    str | None,
    typer.Option(
        "--strategy",
        help="Verification strategy for signed invoices: GreedyVerification, "
        "CreativeIntegrity, AuthoritativeIntegrity, ExhaustiveVerification, "
        "MultipleAttestation[Roles], MultipleAttestationGreedy[Roles] "
        "[env: BINDLE_VERIFICATION_STRATEGY] [default: GreedyVerification]",
        show_default=False,
    ),
]
RequireSignaturesOption = Annotated[
    bool | None,
    typer.Option(
        "--require-signatures/--accept-unsigned",
        help="Refuse unsigned invoices (Bindle 0.9), or accept and host-sign them "
        "(Bindle 0.8: Spin 1.x, hippo-cli) [env: BINDLE_REQUIRE_SIGNATURES] "
        "[default: --accept-unsigned]",
        show_default=False,
    ),
]
UnauthenticatedOption = Annotated[
    bool | None,
    typer.Option(
        "--unauthenticated",
        help="Serve without authentication on a non-loopback address; without it the "
        "server refuses to listen anywhere but loopback [env: BINDLE_UNAUTHENTICATED]",
        show_default=False,
    ),
]
HtpasswdOption = Annotated[
    Path | None,
    typer.Option(
        "--htpasswd-file",
        help="htpasswd file with bcrypt entries (htpasswd -B): HTTP Basic authentication "
        "[env: BINDLE_HTPASSWD_FILE]",
        show_default=False,
    ),
]
TokensFileOption = Annotated[
    Path | None,
    typer.Option(
        "--tokens-file",
        help="Bearer token file (hashes only); token authentication is on when it exists "
        "[env: BINDLE_TOKENS_FILE] [default: DIRECTORY/tokens.toml]",
        show_default=False,
    ),
]
AuthPolicyOption = Annotated[
    Path | None,
    typer.Option(
        "--auth-policy",
        help="Authorization policy (TOML [[rule]] tables: subjects, prefixes, verbs); "
        "without one, authenticated callers may do everything [env: BINDLE_AUTH_POLICY]",
        show_default=False,
    ),
]
AnonymousReadOption = Annotated[
    bool | None,
    typer.Option(
        "--anonymous-read/--no-anonymous-read",
        help="Let callers without credentials read every bindle [env: BINDLE_ANONYMOUS_READ] "
        "[default: on without authentication, off with it]",
        show_default=False,
    ),
]
OidcIssuerOption = Annotated[
    str | None,
    typer.Option(
        "--oidc-issuer-url",
        help="OIDC issuer URL: bearer JWTs are checked against its keys (JWKS) and `iss`; "
        "needs --oidc-client-id and --oidc-device-url [env: BINDLE_OIDC_ISSUER_URL]",
        show_default=False,
    ),
]
OidcClientIdOption = Annotated[
    str | None,
    typer.Option(
        "--oidc-client-id",
        help="OIDC client id that bearer JWTs must name in `aud` [env: BINDLE_OIDC_CLIENT_ID]",
        show_default=False,
    ),
]
OidcDeviceUrlOption = Annotated[
    str | None,
    typer.Option(
        "--oidc-device-url",
        help="OIDC device authorization endpoint, for GET /v1/login [env: BINDLE_OIDC_DEVICE_URL]",
        show_default=False,
    ),
]
TlsCertOption = Annotated[
    Path | None,
    typer.Option(
        "--tls-cert",
        "-c",
        help="TLS certificate (PEM) to serve HTTPS; needs --tls-key [env: BINDLE_TLS_CERT]",
        show_default=False,
    ),
]
TlsKeyOption = Annotated[
    Path | None,
    typer.Option(
        "--tls-key",
        "-k",
        help="TLS private key (PEM); needs --tls-cert [env: BINDLE_TLS_KEY]",
        show_default=False,
    ),
]
WorkersOption = Annotated[
    int,
    typer.Option(
        "--workers",
        min=1,
        envvar="BINDLE_WORKERS",
        help="Server processes sharing the listening socket and the data directory",
    ),
]
LogLevelOption = Annotated[
    str,
    typer.Option("--log-level", help="debug, info, warning or error", envvar="BINDLE_LOG_LEVEL"),
]


def _override(settings: Settings | None, **values: Any) -> Settings:
    """Settings from the environment (or `settings`), with the options that were given."""
    given = {name: value for name, value in values.items() if value is not None}
    try:
        if settings is None:
            return Settings(**given)
        return Settings.model_validate({**settings.model_dump(), **given}) if given else settings
    except ValidationError as exc:
        problems = "; ".join(
            f"--{str(error['loc'][0]).replace('_', '-')}: "
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


@keys_app.command("create")
def keys_create(
    ctx: typer.Context,
    label: Annotated[
        str, typer.Argument(help="Who the key belongs to, e.g. 'registry.example.com'")
    ],
    roles: Annotated[
        str, typer.Option("--roles", help="Comma-separated roles of the key")
    ] = "host",
    directory: DirectoryOption = None,
    signing_keys: SigningKeysOption = None,
) -> None:
    """Add a new key to the server's secret key file (created, mode 0600, if missing).

    The server signs with the first key that has the host role.
    """
    from bindle_server.signing import SecretKey, SecretKeyFile, parse_role

    settings = _override(ctx.obj, directory=directory, signing_keys=signing_keys)
    path = settings.signing_keys_path
    try:
        parsed_roles = [parse_role(role) for role in roles.split(",")]
        keys = SecretKeyFile.load(path) if path.exists() else SecretKeyFile()
    except (ValueError, BindleError) as exc:
        raise typer.BadParameter(str(exc)) from None
    key = SecretKey.generate(label, parsed_roles)
    keys.keys.append(key)
    keys.save(path)
    typer.echo(f"added key {key.public_key} ({label!r}, roles {roles}) to {path}")


@keys_app.command("print")
def keys_print(
    ctx: typer.Context, directory: DirectoryOption = None, signing_keys: SigningKeysOption = None
) -> None:
    """Print the public half of the server's keys as a keyring (for clients to trust)."""
    from bindle_server.signing import KeyRing, SecretKeyFile

    settings = _override(ctx.obj, directory=directory, signing_keys=signing_keys)
    try:
        keys = SecretKeyFile.load(settings.signing_keys_path)
    except (ValueError, BindleError) as exc:
        raise typer.BadParameter(str(exc)) from None
    typer.echo(KeyRing([key.key_entry() for key in keys.keys]).dumps(), nl=False)


@token_app.command("create")
def token_create(
    ctx: typer.Context,
    name: Annotated[
        str,
        typer.Option(
            "--name", help="Who or what uses the token, e.g. 'ci'; policies name it as token:NAME"
        ),
    ],
    expires: Annotated[
        str | None,
        typer.Option("--expires", help="Lifetime such as 30d, 12h, 45m or 2w [default: never]"),
    ] = None,
    directory: DirectoryOption = None,
    tokens_file: TokensFileOption = None,
) -> None:
    """Create a bearer token and print it once; the token file keeps only its hash.

    The first token creates the token file (mode 0600), which turns token authentication
    on at the server's next start; a running server picks up new and revoked tokens
    within a second.
    """
    from datetime import UTC, datetime

    from bindle_server.auth import TokenFile, parse_duration

    settings = _override(ctx.obj, directory=directory, tokens_file=tokens_file)
    path = settings.tokens_path
    try:
        lifetime = parse_duration(expires) if expires is not None else None
        with TokenFile.edit(path) as tokens:
            value = tokens.create(name, lifetime, datetime.now(UTC))
    except (ValueError, BindleError) as exc:
        raise typer.BadParameter(str(exc)) from None
    entry = tokens.entries[-1]
    until = f"expires {entry.expires.isoformat()}" if entry.expires else "does not expire"
    typer.echo(f"created token {name!r} in {path} ({until}); it is shown only once:", err=True)
    typer.echo(value)


@token_app.command("list")
def token_list(
    ctx: typer.Context, directory: DirectoryOption = None, tokens_file: TokensFileOption = None
) -> None:
    """List the tokens by name, with when they were created and when they expire."""
    from datetime import UTC, datetime

    from bindle_server.auth import TokenFile

    settings = _override(ctx.obj, directory=directory, tokens_file=tokens_file)
    path = settings.tokens_path
    try:
        tokens = TokenFile.load(path) if path.exists() else TokenFile()
    except BindleError as exc:
        raise typer.BadParameter(str(exc)) from None
    now = datetime.now(UTC)
    for entry in tokens.entries:
        if entry.expires is None:
            state = "never expires"
        else:
            verb = "expired" if entry.expired(now) else "expires"
            state = f"{verb} {entry.expires.isoformat()}"
        typer.echo(f"{entry.name}\tcreated {entry.created.isoformat()}\t{state}")


@token_app.command("revoke")
def token_revoke(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Name of the token to revoke")],
    directory: DirectoryOption = None,
    tokens_file: TokensFileOption = None,
) -> None:
    """Revoke a token: remove it from the token file (a running server stops accepting it
    within a second). The file stays, so token authentication stays on."""
    from bindle_server.auth import TokenFile

    settings = _override(ctx.obj, directory=directory, tokens_file=tokens_file)
    path = settings.tokens_path
    try:
        with TokenFile.edit(path) as tokens:
            if not tokens.revoke(name):
                raise typer.BadParameter(f"no token named {name!r} in {path}")
    except BindleError as exc:
        raise typer.BadParameter(str(exc)) from None
    typer.echo(f"revoked token {name!r}")


@app.command()
def migrate(ctx: typer.Context, index: IndexOption = None) -> None:
    """Apply the PostgreSQL index's schema migrations and print the schema version.

    The server applies them at start-up too (under a lock, so nodes starting together
    are safe); run this to migrate ahead of a rolling restart.
    """
    settings = _settings_from(ctx, ctx.obj)
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


@app.command("migrate-storage")
def migrate_storage(
    ctx: typer.Context,
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
    progress: Annotated[
        bool | None,
        typer.Option(
            "--progress/--no-progress",
            help="Show a progress bar [default: when standard error is a terminal]",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Copy every parcel and invoice from one store into another, verifying each.

    Parcels go first, each checked against its sha256 and size on the way in and, with
    --verify, read back and hashed again; invoices follow, compared byte for byte when
    already there. Re-running it finishes an interrupted copy. Run it with the servers
    of the source stopped (or read-only), then point the servers at the destination.
    Exits 1 when anything could not be copied.
    """
    from bindle_server.storage import open_stores

    for url, hint in ((source, "--from"), (target, "--to")):
        try:
            if _local_path(url) is None:  # a local directory is created or checked below
                open_stores(url)  # parses the URL and finds the extra; no I/O yet
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint=hint) from None
    source_path = _local_path(source)
    if source_path is not None and not (source_path / "invoices").is_dir():
        raise typer.BadParameter(
            f"{source_path} is not a Bindle data directory (it has no invoices/)",
            param_hint="--from",
        )
    show = progress if progress is not None else _stderr_is_terminal()
    try:
        report = asyncio.run(_migrate_storage(source, target, index, jobs, verify, show))
    except (ValueError, BindleError) as exc:
        raise typer.BadParameter(str(exc)) from None
    for problem in report.problems:
        typer.echo(problem, err=True)
    typer.echo(report.summary())
    if not report.clean:
        raise typer.Exit(1)


def _local_path(url: str) -> Path | None:
    from urllib.parse import unquote, urlsplit

    parts = urlsplit(url)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            # file://./storage would otherwise mean /storage on a host named ".".
            raise ValueError(f"{url!r}: write file:///absolute/path, or just the path")
        return Path(unquote(parts.path))
    return Path(url) if not parts.scheme else None


def _stderr_is_terminal() -> bool:
    import sys

    return sys.stderr.isatty()


def _serve(settings: Settings, log_level: str, workers: int = 1) -> None:
    from bindle_server.api.app import (
        collector_settings,
        create_app,
        freeze_startup_objects,
        open_signing,
    )
    from bindle_server.api.auth import open_auth
    from bindle_server.search.registry import check_index_url

    try:
        host, port = settings.host_and_port()
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--address") from None
    try:
        # Fail here, with one readable line, rather than inside the server's start-up.
        open_signing(settings)
        auth = open_auth(settings)
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
    elif settings.unauthenticated:
        log.warning(
            "no authentication (--unauthenticated): anyone who can reach %s may read and write",
            settings.address,
        )
    else:
        raise typer.BadParameter(
            f"{settings.address} is not a loopback address and no authentication is "
            "configured: give --htpasswd-file or the --oidc-* settings, or create a token "
            "(bindle-server token create), pass --unauthenticated "
            "(BINDLE_UNAUTHENTICATED=true) to serve it open anyway, or listen on 127.0.0.1",
            param_hint="--address",
        )
    log.info(
        "bindle-server %s: data in %s, listening on %s://%s",
        __version__,
        settings.storage_url,
        "https" if tls else "http",
        settings.address,
    )
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_config": None,
        "log_level": log_level.lower(),
        "server_header": False,
        **tls,
    }
    if workers == 1:
        app = create_app(settings, backend_checked=True)
        freeze_startup_objects()
        uvicorn.run(app, **options)
        return
    # Worker processes import the app and rebuild the settings from the environment. They
    # share the data directory safely: writes publish with link/rename, temp files are
    # locked, and the SQLite index coordinates its writers.
    os.environ.update(settings.to_environment(), BINDLE_LOG_LEVEL=log_level)
    uvicorn.run(
        "bindle_server.api.app:app_from_environment", factory=True, workers=workers, **options
    )


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
    """uvicorn's TLS options: both files or neither, and both readable."""
    if (settings.tls_cert is None) != (settings.tls_key is None):
        raise typer.BadParameter("--tls-cert and --tls-key go together: give both or neither")
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


async def _migrate(index_url: str) -> tuple[list[int], int]:
    from bindle_server.search.postgres import MIGRATIONS, PostgresIndex
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
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    from bindle_server.backend import open_backend
    from bindle_server.migrate import copy_store
    from bindle_server.service import rebuild_index
    from bindle_server.storage import open_stores

    source = open_stores(source_url)
    await source.start()
    try:
        async with open_backend(target_url, index_url) as destination:
            bar = Progress(
                "{task.description}",
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                disable=not show,
                transient=False,
            )
            with bar:
                task = bar.add_task(f"copying to {destination.stores.description}", total=0)
                report = await copy_store(
                    source,
                    destination.stores,
                    jobs=jobs,
                    verify=verify,
                    progress=_BarProgress(bar, task),
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


class _BarProgress:
    """copy_store's progress on a rich progress bar (bytes copied plus bytes re-read)."""

    def __init__(self, bar: Any, task: Any) -> None:
        self._bar = bar
        self._task = task
        self._total = 0

    def expect(self, size: int) -> None:
        self._total += size
        self._bar.update(self._task, total=self._total)

    def advance(self, size: int) -> None:
        self._bar.advance(self._task, size)


def main() -> None:
    app(prog_name="bindle-server")


# Registers `purge` and `gc` on `app`; imported last because it builds on the above.
from bindle_server.cli import lifecycle  # noqa: E402, F401
