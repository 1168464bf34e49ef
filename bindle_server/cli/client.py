"""`bindle`: push, fetch, search and sign bindles; the reference CLI's commands and flags.

Every command goes through the `bindle_server.client` library. Results go to stdout;
progress and notes go to stderr (rich bars on a terminal, plain lines otherwise); an
error is one red "ErrorName: message" line and a non-zero exit (`--debug` adds the
traceback).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Annotated, NoReturn, TypeVar

import httpx
import typer
from rich.console import Console

from bindle_server import __version__
from bindle_server.client import (
    DEFAULT_CONCURRENCY,
    DEFAULT_SERVER_URL,
    AsyncBindleClient,
    BearerToken,
    BindleClient,
    BindleDirectory,
    ClientError,
    FetchReport,
    InvalidInput,
    PushReport,
    StandaloneBindle,
    StandaloneError,
    export_standalone,
    get_bindle,
    label_for_file,
    pull_bindle,
    push_directory,
    push_standalone,
    token_from_file,
    write_tarball,
)
from bindle_server.client.console import ConsoleProgress
from bindle_server.client.documents import QueryPage, read_invoice
from bindle_server.errors import BindleError
from bindle_server.model import (
    BindleId,
    Format,
    Invoice,
    SignatureRole,
    dump_document,
    dump_invoice,
    to_document,
)
from bindle_server.signing import (
    KeyEntry,
    KeyRing,
    SecretKey,
    SecretKeyFile,
    VerificationStrategy,
    parse_role,
    sign_invoice,
)
from bindle_server.signing.keys import decode_public_key

T = TypeVar("T")


class SearchFormat(StrEnum):
    JSON = "json"
    TOML = "toml"
    TABLE = "table"


app = typer.Typer(
    help="The Bindle client: push, fetch, search and sign bindles on a Bindle server.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)
keys_app = typer.Typer(
    help="Create and manage signing keys and the keyring of trusted keys.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(keys_app, name="keys")


# -- session: the global options, built once per run ------------------------------------


@dataclass
class Session:
    """The global options of one run; main() creates it, the callback fills it in."""

    debug: bool = False
    server: str = DEFAULT_SERVER_URL
    auth: httpx.Auth | None = None
    insecure: bool = False
    bindle_dir: Path | None = None
    keyring: Path | None = None
    strategy: VerificationStrategy | None = None
    stderr: Console = field(default_factory=lambda: Console(stderr=True, highlight=False))

    def client(self) -> BindleClient:
        return BindleClient(self.server, auth=self.auth, insecure=self.insecure)

    def run(self, operation: Callable[[AsyncBindleClient], Awaitable[T]]) -> T:
        """Run a multi-parcel operation on an async client, to completion."""

        async def run() -> T:
            async with AsyncBindleClient(
                self.server, auth=self.auth, insecure=self.insecure
            ) as client:
                return await operation(client)

        return asyncio.run(run())

    def progress(self) -> ConsoleProgress:
        return ConsoleProgress(self.stderr)

    def keyring_path(self) -> Path:
        return self.keyring or _config_dir() / "keyring.toml"

    def load_keyring(self) -> KeyRing:
        path = self.keyring_path()
        return KeyRing.load(path) if path.exists() else KeyRing()

    def cache(self) -> BindleDirectory:
        return BindleDirectory(self.bindle_dir or _cache_dir() / "bindle")

    def check(self, invoice: Invoice) -> None:
        """With --strategy, verify the invoice's signatures against the keyring."""
        if self.strategy is not None:
            self.strategy.verify(invoice, self.load_keyring())


def _session(ctx: typer.Context) -> Session:
    session = ctx.find_root().obj
    if not isinstance(session, Session):  # run through `app()` directly, not main()
        session = Session()
        ctx.find_root().obj = session
    return session


def _config_dir() -> Path:
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "bindle"


def _cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"bindle {__version__}")
        raise typer.Exit()


BindleArg = Annotated[
    str, typer.Argument(metavar="BINDLE", help="The bindle id, e.g. example.com/mybindle/1.2.3")
]
YankedOpt = Annotated[
    bool,
    typer.Option(
        "-y", "--yanked", help="Fetch the bindle even if it is yanked (otherwise that is an error)"
    ),
]
ConcurrencyOpt = Annotated[
    int,
    typer.Option(
        "--concurrency", metavar="N", min=1, max=256, help="Parcels transferred at the same time"
    ),
]
SecretsOpt = Annotated[
    Path | None,
    typer.Option(
        "-f",
        "--secrets-file",
        metavar="FILE",
        help="The secret key file [default: $XDG_CONFIG_HOME/bindle/secret_keys.toml]",
        show_default=False,
    ),
]


@app.callback()
def global_options(
    ctx: typer.Context,
    server: Annotated[
        str,
        typer.Option(
            "-s",
            "--server",
            envvar="BINDLE_URL",
            metavar="URL",
            help="The bindle server's API root, including its subpath (e.g. https://my.bindle.com/v1/)",
        ),
    ] = DEFAULT_SERVER_URL,
    bindle_dir: Annotated[
        Path | None,
        typer.Option(
            "-d",
            "--bindle-dir",
            envvar="BINDLE_DIRECTORY",
            metavar="DIR",
            help="Where `get` keeps fetched bindles [default: $XDG_CACHE_HOME/bindle]",
            show_default=False,
        ),
    ] = None,
    keyring: Annotated[
        Path | None,
        typer.Option(
            "-r",
            "--keyring",
            envvar="BINDLE_KEYRING",
            metavar="FILE",
            help="The keyring file [default: $XDG_CONFIG_HOME/bindle/keyring.toml]",
            show_default=False,
        ),
    ] = None,
    token_file: Annotated[
        Path | None,
        typer.Option(
            "-t",
            "--token-file",
            envvar="BINDLE_TOKEN_FILE",
            metavar="FILE",
            help="A file with a bearer token (or the reference client's login token) "
            "[default: $XDG_CONFIG_HOME/bindle/.token, used if it exists]",
            show_default=False,
        ),
    ] = None,
    http_user: Annotated[
        str | None,
        typer.Option(
            "--http-user",
            envvar="BINDLE_HTTP_USER",
            metavar="USER",
            help="Username for HTTP Basic auth",
        ),
    ] = None,
    http_password: Annotated[
        str | None,
        typer.Option(
            "--http-password",
            envvar="BINDLE_HTTP_PASSWORD",
            metavar="PASSWORD",
            help="Password for HTTP Basic auth",
            show_envvar=True,
        ),
    ] = None,
    insecure: Annotated[
        bool, typer.Option("-k", "--insecure", help="Ignore server certificate errors")
    ] = False,
    strategy: Annotated[
        str | None,
        typer.Option(
            "--strategy",
            metavar="STRATEGY",
            help="Verify the signatures of fetched invoices with this strategy against the "
            "keyring, e.g. 'MultipleAttestationGreedy[Host]' [default: no verification]",
            show_default=False,
        ),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show the traceback of errors")] = False,
    version: Annotated[
        bool,
        typer.Option(
            "-V", "--version", callback=_version, is_eager=True, help="Print the version and exit"
        ),
    ] = False,
) -> None:
    """The Bindle client: push, fetch, search and sign bindles on a Bindle server."""
    session = _session(ctx)
    session.debug = debug
    session.server = server
    session.insecure = insecure
    session.bindle_dir = bindle_dir
    session.keyring = keyring
    if (http_user is None) != (http_password is None):
        raise typer.BadParameter("--http-user and --http-password go together")
    if strategy is not None:
        try:
            session.strategy = VerificationStrategy.parse(strategy)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--strategy") from None
    default_token = _config_dir() / ".token"
    if token_file is not None or default_token.is_file():
        # As the reference: a token wins over HTTP Basic credentials.
        session.auth = BearerToken(token_from_file(token_file or default_token))
    elif http_user is not None and http_password is not None:
        session.auth = httpx.BasicAuth(http_user, http_password)


# -- reading bindles --------------------------------------------------------------------


@app.command()
def info(
    ctx: typer.Context,
    bindle_id: BindleArg,
    yanked: YankedOpt = False,
    output_format: Annotated[
        Format, typer.Option("-f", "--output-format", help="Output format")
    ] = Format.TOML,
) -> None:
    """Get the bindle's invoice and display it."""
    session = _session(ctx)
    with session.client() as client:
        invoice = client.get_invoice(bindle_id, yanked=yanked)
    session.check(invoice)
    _print_document(to_document(invoice, output_format), output_format)


@app.command()
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
) -> None:
    """Download the bindle and all its parcels (verified) into the bindle directory."""
    session = _session(ctx)
    cache = session.cache()
    with session.progress() as progress:
        report = session.run(
            lambda client: get_bindle(
                client,
                bindle_id,
                cache,
                yanked=yanked,
                concurrency=concurrency,
                progress=progress,
                check=session.check,
            )
        )
    _fetched(report, cache.root)
    if export is not None:
        typer.echo(f"Wrote standalone bindle to {export_standalone(report, export)}")


@app.command("get-invoice")
def get_invoice(
    ctx: typer.Context,
    bindle_id: BindleArg,
    output: Annotated[
        Path, typer.Option("-o", "--output", help="Where to write the invoice (not overwritten)")
    ] = Path("invoice.toml"),
    yanked: YankedOpt = False,
) -> None:
    """Get only the invoice (no parcels) and write it to a file."""
    session = _session(ctx)
    with session.client() as client:
        invoice = client.get_invoice(bindle_id, yanked=yanked)
    session.check(invoice)
    with output.open("xb") as file:  # as the reference: never overwrite
        file.write(dump_invoice(invoice))
    typer.echo(f"Wrote invoice {invoice.bindle_id} to {output}")


@app.command("get-parcel")
def get_parcel(
    ctx: typer.Context,
    bindle_id: Annotated[str, typer.Argument(metavar="BINDLE_ID", help="The bindle id")],
    sha: Annotated[str, typer.Argument(metavar="PARCEL_SHA", help="The SHA256 of the parcel")],
    output: Annotated[
        Path, typer.Option("-o", "--output", help="Where to write the parcel (not overwritten)")
    ] = Path("parcel.dat"),
    yanked: YankedOpt = False,
) -> None:
    """Get one parcel by its SHA256, verify it and write it to a file."""
    session = _session(ctx)
    if output.exists():
        raise FileExistsError(f"{output} exists; not overwriting it")
    with session.client() as client, session.progress() as progress:
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


@app.command()
def pull(
    ctx: typer.Context,
    bindle_id: BindleArg,
    directory: Annotated[Path, typer.Argument(metavar="DIR", help="Where to write the parcels")],
    yanked: YankedOpt = False,
    concurrency: ConcurrencyOpt = DEFAULT_CONCURRENCY,
) -> None:
    """Write the bindle's parcels into DIR under their names (beyond the reference CLI).

    Names that would land outside DIR (absolute, '..', through a symlink) are refused
    before anything is written. Files already there with the right bytes are kept.
    """
    session = _session(ctx)
    directory.mkdir(parents=True, exist_ok=True)
    with session.progress() as progress:
        report = session.run(
            lambda client: pull_bindle(
                client,
                bindle_id,
                directory,
                yanked=yanked,
                concurrency=concurrency,
                progress=progress,
                check=session.check,
            )
        )
    _fetched(report, directory)


@app.command()
def search(
    ctx: typer.Context,
    query: Annotated[
        str | None, typer.Option("-q", "--query", help="Terms the bindle name must contain")
    ] = None,
    version: Annotated[
        str | None,
        typer.Option(
            "-b",
            "--bindle-version",
            help="A version or SemVer range the version must match (e.g. 1.2.3, ^1.2, >=1.0.0 <2)",
        ),
    ] = None,
    offset: Annotated[
        int | None, typer.Option("--offset", min=0, help="Where the page of results starts")
    ] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", min=0, max=255, help="Results per page")
    ] = None,
    strict: Annotated[
        str | None, typer.Option("--strict", metavar="BOOL", help="Use strict matching: true|false")
    ] = None,
    yanked: Annotated[
        str | None,
        typer.Option("--yanked", metavar="BOOL", help="Include yanked bindles: true|false"),
    ] = None,
    output_format: Annotated[
        SearchFormat, typer.Option("-f", "--output-format", help="Output format")
    ] = SearchFormat.TABLE,
) -> None:
    """Search for bindles by name and version."""
    session = _session(ctx)
    with session.client() as client:
        page = client.query(
            query,
            version,
            offset=offset,
            limit=limit,
            strict=_boolean(strict, "--strict"),
            yanked=_boolean(yanked, "--yanked"),
        )
    if output_format is SearchFormat.TABLE:
        _print_table(page)
    else:
        fmt = Format(output_format.value)
        _print_document(_page_document(page, fmt), fmt)


# -- writing bindles --------------------------------------------------------------------


@app.command()
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
    session = _session(ctx)
    bid = _bindle_id(bindle_id)
    with session.progress() as progress:
        report = session.run(
            lambda client: push_standalone(
                client, path, bid, concurrency=concurrency, progress=progress
            )
        )
    _pushed(report)


@app.command("push-dir")
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
    session = _session(ctx)
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


@app.command("push-invoice")
def push_invoice(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(metavar="FILE", help="The invoice TOML file")] = Path(
        "invoice.toml"
    ),
) -> None:
    """Push an invoice file (no parcels) to the server."""
    session = _session(ctx)
    data = path.read_bytes()
    read_invoice(data, str(path))  # a readable error before anything is sent
    with session.client() as client:
        created = client.create_invoice(data)
    typer.echo(f"Invoice {created.invoice.bindle_id} created")
    for label in created.missing:
        typer.echo(f"missing parcel {label.sha256} {label.name or ''}".rstrip())


@app.command("push-file")
def push_file(
    ctx: typer.Context,
    bindle_id: Annotated[str, typer.Argument(metavar="BINDLE_ID", help="The bindle id")],
    path: Annotated[
        Path, typer.Argument(metavar="FILE", help="The file to push as one of its parcels")
    ],
    name: Annotated[
        str | None, typer.Option("-n", "--name", help="The parcel name [default: the file name]")
    ] = None,
    media_type: Annotated[
        str | None,
        typer.Option("-m", "--media-type", help="The media type [default: guessed from the name]"),
    ] = None,
) -> None:
    """Push a file as a parcel of an existing invoice that lists it."""
    session = _session(ctx)
    label = label_for_file(path, name, media_type)
    typer.echo(f"Uploading file {path} to server")
    with session.client() as client, session.progress() as progress:
        transfer = progress.transfer(f"push {label.name}", label.size)
        try:
            client.upload_parcel(bindle_id, label.sha256, path, size=label.size, transfer=transfer)
        finally:
            transfer.close()
    typer.echo("File successfully uploaded")


@app.command()
def yank(ctx: typer.Context, bindle_id: BindleArg) -> None:
    """Yank a bindle: it stays readable only to those who ask for yanked bindles."""
    with _session(ctx).client() as client:
        client.yank_invoice(bindle_id)
    typer.echo(f"Bindle {bindle_id} yanked")


# -- local tools ------------------------------------------------------------------------


@app.command("generate-label")
def generate_label(
    path: Annotated[Path, typer.Argument(metavar="FILE", help="The file to label")],
    name: Annotated[
        str | None, typer.Option("-n", "--name", help="The parcel name [default: the file name]")
    ] = None,
    media_type: Annotated[
        str | None,
        typer.Option("-m", "--media-type", help="The media type [default: guessed from the name]"),
    ] = None,
) -> None:
    """Print a label (sha256, size, name, media type) for a file, to add to an invoice."""
    _print_document(to_document(label_for_file(path, name, media_type), Format.TOML), Format.TOML)


@app.command()
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


@app.command("sign-invoice")
def sign_invoice_command(
    invoice_path: Annotated[Path, typer.Argument(metavar="INVOICE", help="The invoice to sign")],
    secrets_file: SecretsOpt = None,
    role: Annotated[
        str, typer.Option("-r", "--role", help="c[reator], a[pprover], h[ost] or p[roxy]")
    ] = "creator",
    label: Annotated[
        str | None, typer.Option("-l", "--label", help="Sign with the key of exactly this label")
    ] = None,
    label_matching: Annotated[
        str | None,
        typer.Option("-m", "--label-matching", help="Sign with a key whose label contains this"),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "-o",
            "--out",
            help="Where to write the signed invoice [default: ./invoice-<sha of id>.toml]",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Sign an invoice with one of your secret keys."""
    if label is not None and label_matching is not None:
        raise typer.BadParameter("give --label or --label-matching, not both")
    wanted = _role(role)
    keys = SecretKeyFile.load(secrets_file or _config_dir() / "secret_keys.toml")
    key = next(
        (
            key
            for key in keys.keys
            if wanted in key.roles
            and (label is None or key.label == label)
            and (label_matching is None or label_matching in key.label)
        ),
        None,
    )
    if key is None:
        raise typer.BadParameter(f"no key with the {wanted.value} role matches in the secrets file")
    invoice = read_invoice(invoice_path.read_bytes(), str(invoice_path))
    signed = sign_invoice(invoice, key, wanted)
    target = out or Path(f"invoice-{invoice.bindle_id.key}.toml")
    target.write_bytes(dump_invoice(signed))
    typer.echo(
        f"Signed {invoice_path} with role as '{wanted.value}', label as '{key.label}' "
        f"and wrote to {target}"
    )


@app.command()
def clean(ctx: typer.Context) -> None:
    """Remove the invoices and parcels `get` kept in the bindle directory."""
    root = _session(ctx).cache().root
    typer.echo(f"Cleaning up bindles in {root}...")
    for part in ("invoices", "parcels"):
        shutil.rmtree(root / part, ignore_errors=True)
    typer.echo("Clean up successful")


# -- keys -------------------------------------------------------------------------------


@keys_app.command("create")
def keys_create(
    ctx: typer.Context,
    label: Annotated[
        str, typer.Argument(metavar="LABEL", help="Whose key, e.g. 'Matt <me@example.com>'")
    ],
    roles: Annotated[
        str, typer.Option("--roles", help="Comma-separated roles, e.g. creator,approver")
    ] = "creator",
    secrets_file: SecretsOpt = None,
    skip_keyring: Annotated[
        bool, typer.Option("--skip-keyring", help="Do not add the public key to the keyring")
    ] = False,
) -> None:
    """Create a signing key in the secret key file and trust it in the keyring."""
    session = _session(ctx)
    path = secrets_file or _config_dir() / "secret_keys.toml"
    typer.echo(f"Writing keys to {path}")
    keys = SecretKeyFile.load(path) if path.exists() else SecretKeyFile()
    key = SecretKey.generate(label, [_role(role) for role in roles.split(",")])
    keys.keys.append(key)
    keys.save(path)
    if not skip_keyring:
        keyring = session.load_keyring()
        keyring.add(key.key_entry())
        keyring.save(session.keyring_path())
        typer.echo(f"Added the public key to the keyring {session.keyring_path()}")


@keys_app.command("add")
def keys_add(
    ctx: typer.Context,
    label: Annotated[str, typer.Argument(metavar="LABEL", help="Whose key it is")],
    roles: Annotated[
        str, typer.Argument(metavar="ROLES", help="Comma-separated roles it is trusted for")
    ],
    key: Annotated[str, typer.Argument(metavar="KEY", help="The base64 public key")],
) -> None:
    """Add a public key to the keyring."""
    session = _session(ctx)
    try:
        decode_public_key(key)
    except ValueError as exc:
        raise InvalidInput(f"{key!r}: {exc}") from None
    entry = KeyEntry(label, tuple(_role(role) for role in roles.split(",")), key)
    keyring = session.load_keyring()
    keyring.add(entry)
    keyring.save(session.keyring_path())
    typer.echo(f"Wrote key to keyring file at {session.keyring_path()}")


@keys_app.command("print")
def keys_print(
    secrets_file: SecretsOpt = None,
    label_matching: Annotated[
        str | None,
        typer.Option("-m", "--label-matching", help="Only keys whose label contains this"),
    ] = None,
) -> None:
    """Print the public keys of the secret key file as keyring entries."""
    keys = SecretKeyFile.load(secrets_file or _config_dir() / "secret_keys.toml")
    entries = [
        key.key_entry()
        for key in keys.keys
        if label_matching is None or label_matching in key.label
    ]
    typer.echo(KeyRing(entries).dumps(), nl=False)


@keys_app.command("fetch")
def keys_fetch(
    ctx: typer.Context,
    key_server: Annotated[
        str | None,
        typer.Option(
            "--key-server",
            envvar="BINDLE_KEY_SERVER",
            help="The full URL of a bindle-keys endpoint [default: the --server's]",
        ),
    ] = None,
    host: Annotated[
        bool, typer.Option("--host", help="Fetch from the bindle server (the default)")
    ] = False,
) -> None:
    """Fetch a server's host keys from its /bindle-keys endpoint into the keyring."""
    session = _session(ctx)
    url = None if host else key_server
    typer.echo(f"Fetching host keys from {url or 'bindle server'}")
    with session.client() as client:
        fetched = client.host_keys(url=url)
    keyring = session.load_keyring()
    known = {entry.key for entry in keyring.entries}
    added = [entry for entry in fetched.entries if entry.key not in known]
    for entry in added:
        keyring.add(entry)
    keyring.save(session.keyring_path())
    typer.echo(f"Wrote {len(added)} keys to keyring file at {session.keyring_path()}")


# -- output -----------------------------------------------------------------------------


def _print_document(document: dict[str, object], fmt: Format) -> None:
    if fmt is Format.JSON:
        typer.echo(json.dumps(document, indent=2, ensure_ascii=False))
    else:
        typer.echo(dump_document(document, Format.TOML).decode(), nl=False)


def _page_document(page: QueryPage, fmt: Format) -> dict[str, object]:
    document: dict[str, object] = {
        "query": page.query,
        "strict": page.strict,
        "offset": page.offset,
        "limit": page.limit,
        "total": page.total,
        "more": page.more,
        "yanked": page.yanked,
        "invoices": [to_document(invoice, fmt) for invoice in page.invoices],
    }
    if page.timestamp is not None:
        document["timestamp"] = page.timestamp
    return document


def _print_table(page: QueryPage) -> None:
    """The reference client's table: `ID:<TAB>description` lines and a trailer."""
    for invoice in page.invoices:
        description = invoice.bindle.description or "[no description available]"
        typer.echo(f"{invoice.bindle_id}:\t{description}")
    last = page.offset + len(page.invoices)
    if page.total > 0:
        more = f" - More results are available with --offset={last}" if page.more else ""
        typer.echo(
            f"=== Showing results {page.offset + 1} to {last} of {page.total} "
            f"(limit: {page.limit}){more}"
        )
    else:
        typer.echo("No matching bindles were found")


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


def _fetched(report: FetchReport, where: Path) -> None:
    typer.echo(
        f"Fetched bindle {report.invoice.bindle_id} into {where}: "
        f"{len(report.downloaded)} parcel(s) downloaded, {len(report.reused)} already there"
    )
    if report.unavailable:
        typer.echo(f"{len(report.unavailable)} parcel(s) have not been uploaded to the server")


# -- small helpers ----------------------------------------------------------------------


def _bindle_id(text: str) -> BindleId:
    try:
        return BindleId.parse(text)
    except BindleError as exc:
        raise typer.BadParameter(exc.message, param_hint="BINDLE") from None


def _role(text: str) -> SignatureRole:
    try:
        return parse_role(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def _boolean(text: str | None, option: str) -> bool | None:
    if text is None:
        return None
    lowered = text.strip().lower()
    if lowered in ("true", "yes", "1"):
        return True
    if lowered in ("false", "no", "0"):
        return False
    raise typer.BadParameter(f"expected true or false, not {text!r}", param_hint=option)


# -- entry point ------------------------------------------------------------------------

EXPECTED_ERRORS = (ClientError, BindleError, OSError)


def main(argv: list[str] | None = None) -> None:
    """Run the `bindle` command line; errors become one red line and exit status 1."""
    session = Session()
    try:
        app(args=argv, prog_name="bindle", obj=session)
    except EXPECTED_ERRORS as exc:
        _fail(session, exc)


def _fail(session: Session, exc: BaseException) -> NoReturn:
    if session.debug:
        session.stderr.print_exception()
    message = exc.message if isinstance(exc, ClientError | BindleError) else str(exc)
    session.stderr.print(
        f"{type(exc).__name__}: {message}", style="red", markup=False, soft_wrap=True
    )
    sys.exit(1)


if __name__ == "__main__":
    main()
