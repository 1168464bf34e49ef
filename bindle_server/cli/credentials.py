"""`bindle-server keys` and `bindle-server token`: the server's signing keys and bearer tokens."""

from __future__ import annotations

from typing import Annotated

import typer

from bindle_server.cli.options import DirectoryOption, SigningKeysOption, TokensFileOption
from bindle_server.cli.server import _override, app
from bindle_server.errors import BindleError

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
    first = not path.exists()
    try:
        lifetime = parse_duration(expires) if expires is not None else None
        with TokenFile.edit(path) as tokens:
            value = tokens.create(name, lifetime, datetime.now(UTC))
    except (ValueError, BindleError) as exc:
        raise typer.BadParameter(str(exc)) from None
    entry = tokens.entries[-1]
    until = f"expires {entry.expires.isoformat()}" if entry.expires else "does not expire"
    if first:
        typer.echo(
            f"{path} is new: servers using it that run with authentication accept the token "
            "at once; one running without authentication turns it on when restarted",
            err=True,
        )
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
