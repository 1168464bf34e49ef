"""`bindle-server keys` and `bindle-server token`: the server's signing keys and bearer tokens."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from bindle_server.cli.server.audit import AUDITED, audited
from bindle_server.cli.server.options import settings_options
from bindle_server.config import Settings
from bindle_server.errors import BindleError
from bindle_server.events import Action

KEYS = ("directory", "signing_keys")
TOKENS = ("directory", "tokens_file")


@settings_options(*KEYS)
def keys_create(
    settings: Settings,
    label: Annotated[
        str, typer.Argument(help="Who the key belongs to, e.g. 'registry.example.com'")
    ],
    roles: Annotated[
        str, typer.Option("--roles", help="Comma-separated roles of the key")
    ] = "host",
) -> None:
    """Add a new key to the server's secret key file (created, mode 0600, if missing).

    The server signs with the first key that has the host role.
    """
    from bindle_server.signing import SecretKey, SecretKeyFile, parse_role

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


@settings_options(*KEYS)
def keys_print(settings: Settings) -> None:
    """Print the public half of the server's keys as a keyring (for clients to trust)."""
    from bindle_server.signing import KeyRing, SecretKeyFile

    try:
        keys = SecretKeyFile.load(settings.signing_keys_path)
    except (ValueError, BindleError) as exc:
        raise typer.BadParameter(str(exc)) from None
    typer.echo(KeyRing([key.key_entry() for key in keys.keys]).dumps(), nl=False)


@settings_options(*TOKENS, "index", *AUDITED)
def token_create(
    settings: Settings,
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
) -> None:
    """Create a bearer token and print it once; the token file keeps only its hash.

    The first token creates the token file (mode 0600), which turns token authentication
    on at the server's next start; a running server picks up new and revoked tokens
    within a second.
    """
    from datetime import UTC, datetime

    from bindle_server.auth import TokenEntry, TokenFile, parse_duration

    path = settings.tokens_path
    first = not path.exists()
    created: list[TokenEntry] = []
    value = ""

    def change() -> dict[str, Any]:
        nonlocal value
        with TokenFile.edit(path) as tokens:
            value = tokens.create(name, lifetime, datetime.now(UTC))
        created.append(tokens.entries[-1])
        expiry = created[0].expires
        return {"token": name, "expires": expiry.isoformat() if expiry else None}

    try:
        lifetime = parse_duration(expires) if expires is not None else None
        audited(settings, Action.TOKEN_CREATED, change)
    except (ValueError, BindleError) as exc:
        raise typer.BadParameter(str(exc)) from None
    entry = created[0]
    until = f"expires {entry.expires.isoformat()}" if entry.expires else "does not expire"
    if first:
        typer.echo(
            f"{path} is new: servers using it that run with authentication accept the token "
            "at once; one running without authentication turns it on when restarted",
            err=True,
        )
    typer.echo(f"created token {name!r} in {path} ({until}); it is shown only once:", err=True)
    typer.echo(value)


@settings_options(*TOKENS)
def token_list(settings: Settings) -> None:
    """List the tokens by name, with when they were created and when they expire."""
    from datetime import UTC, datetime

    from bindle_server.auth import TokenFile

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


@settings_options(*TOKENS, "index", *AUDITED)
def token_revoke(
    settings: Settings, name: Annotated[str, typer.Argument(help="Name of the token to revoke")]
) -> None:
    """Revoke a token: remove it from the token file (a running server stops accepting it
    within a second). The file stays, so token authentication stays on."""
    from bindle_server.auth import TokenFile

    path = settings.tokens_path

    def change() -> dict[str, Any]:
        with TokenFile.edit(path) as tokens:
            if not tokens.revoke(name):
                raise typer.BadParameter(f"no token named {name!r} in {path}")
        return {"token": name}

    try:
        audited(settings, Action.TOKEN_REVOKED, change)
    except BindleError as exc:
        raise typer.BadParameter(str(exc)) from None
    typer.echo(f"revoked token {name!r}")
