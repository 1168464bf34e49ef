"""The `bindle` typer app: its global options, the one place every command is registered,
and `main()`, which turns an expected error into one red line and exit status 1."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import httpx
import typer

from bindle_server import __version__
from bindle_server.cli.client import fetching, keys, pushing, search, watch
from bindle_server.cli.client.session import Session, config_dir, current_session
from bindle_server.client import (
    DEFAULT_SERVER_URL,
    BearerToken,
    ClientError,
    token_from_file,
)
from bindle_server.errors import BindleError
from bindle_server.signing import VerificationStrategy

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


def _version(value: bool) -> None:
    if value:
        typer.echo(f"bindle {__version__}")
        raise typer.Exit()


def _option(*names: str, env: str | None, metavar: str | None, help: str) -> Any:
    """A global option; a `[default: ...]` in `help` replaces typer's own."""
    return typer.Option(
        *names, envvar=env, metavar=metavar, help=help, show_default="[default:" not in help
    )


# Over 60 lines: typer declares each global option as a parameter of this one callback.
@app.callback()
def global_options(
    ctx: typer.Context,
    server: Annotated[
        str,
        _option(
            "-s", "--server", env="BINDLE_URL", metavar="URL",
            help="The bindle server's API root, including its subpath "
            "(e.g. https://my.bindle.com/v1/)",
        ),
    ] = DEFAULT_SERVER_URL,
    bindle_dir: Annotated[
        Path | None,
        _option(
            "-d", "--bindle-dir", env="BINDLE_DIRECTORY", metavar="DIR",
            help="Where `get` keeps fetched bindles [default: $XDG_CACHE_HOME/bindle]",
        ),
    ] = None,
    keyring: Annotated[
        Path | None,
        _option(
            "-r", "--keyring", env="BINDLE_KEYRING", metavar="FILE",
            help="The keyring file [default: $XDG_CONFIG_HOME/bindle/keyring.toml]",
        ),
    ] = None,
    token_file: Annotated[
        Path | None,
        _option(
            "-t", "--token-file", env="BINDLE_TOKEN_FILE", metavar="FILE",
            help="A file with a bearer token (or the reference client's login token) "
            "[default: $XDG_CONFIG_HOME/bindle/.token, used if it exists]",
        ),
    ] = None,
    http_user: Annotated[
        str | None,
        _option(
            "--http-user", env="BINDLE_HTTP_USER", metavar="USER",
            help="Username for HTTP Basic auth",
        ),
    ] = None,
    http_password: Annotated[
        str | None,
        _option(
            "--http-password", env="BINDLE_HTTP_PASSWORD", metavar="PASSWORD",
            help="Password for HTTP Basic auth",
        ),
    ] = None,
    insecure: Annotated[
        bool, typer.Option("-k", "--insecure", help="Ignore server certificate errors")
    ] = False,
    strategy: Annotated[
        str | None,
        _option(
            "--strategy", env=None, metavar="STRATEGY",
            help="Verify the signatures of fetched invoices with this strategy against the "
            "keyring, e.g. 'MultipleAttestationGreedy[Host]' [default: no verification]",
        ),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show the traceback of errors")] = False,
    version: Annotated[
        bool,
        typer.Option(
            "-V", "--version", callback=_version, is_eager=True, help="Print the version and exit"
        ),
    ] = False,
) -> None:  # fmt: skip
    """The Bindle client: push, fetch, search and sign bindles on a Bindle server."""
    session = current_session(ctx)
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
    default_token = config_dir() / ".token"
    if token_file is not None or default_token.is_file():
        # As the reference: a token wins over HTTP Basic credentials.
        session.auth = BearerToken(token_from_file(token_file or default_token))
    elif http_user is not None and http_password is not None:
        session.auth = httpx.BasicAuth(http_user, http_password)


# Every command is registered here, in the order `bindle --help` lists them.
app.command("info")(fetching.info)
app.command("get")(fetching.get)
app.command("get-invoice")(fetching.get_invoice)
app.command("get-parcel")(fetching.get_parcel)
app.command("pull")(fetching.pull)
app.command("search")(search.search)
app.command("watch")(watch.watch)
app.command("push")(pushing.push)
app.command("push-dir")(pushing.push_dir)
app.command("push-invoice")(pushing.push_invoice)
app.command("push-file")(pushing.push_file)
app.command("yank")(pushing.yank)
app.command("generate-label")(pushing.generate_label)
app.command("package")(pushing.package)
app.command("sign-invoice")(keys.sign_invoice_command)
app.command("clean")(fetching.clean)
keys_app.command("create")(keys.keys_create)
keys_app.command("add")(keys.keys_add)
keys_app.command("print")(keys.keys_print)
keys_app.command("fetch")(keys.keys_fetch)
app.add_typer(keys_app, name="keys")


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
