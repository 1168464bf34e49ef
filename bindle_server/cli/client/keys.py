"""`bindle keys create | add | print | fetch` and `bindle sign-invoice`: signing keys, the
keyring of trusted keys, and signing invoices."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bindle_server.cli.client.session import config_dir, current_session
from bindle_server.client import InvalidInput
from bindle_server.client.documents import read_invoice
from bindle_server.model import SignatureRole, dump_invoice
from bindle_server.signing import (
    KeyEntry,
    KeyRing,
    SecretKey,
    SecretKeyFile,
    parse_role,
    sign_invoice,
)
from bindle_server.signing.keys import decode_public_key

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
    keys = SecretKeyFile.load(secrets_file or config_dir() / "secret_keys.toml")
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
    session = current_session(ctx)
    path = secrets_file or config_dir() / "secret_keys.toml"
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


def keys_add(
    ctx: typer.Context,
    label: Annotated[str, typer.Argument(metavar="LABEL", help="Whose key it is")],
    roles: Annotated[
        str, typer.Argument(metavar="ROLES", help="Comma-separated roles it is trusted for")
    ],
    key: Annotated[str, typer.Argument(metavar="KEY", help="The base64 public key")],
) -> None:
    """Add a public key to the keyring."""
    session = current_session(ctx)
    try:
        decode_public_key(key)
    except ValueError as exc:
        raise InvalidInput(f"{key!r}: {exc}") from None
    entry = KeyEntry(label, tuple(_role(role) for role in roles.split(",")), key)
    keyring = session.load_keyring()
    keyring.add(entry)
    keyring.save(session.keyring_path())
    typer.echo(f"Wrote key to keyring file at {session.keyring_path()}")


def keys_print(
    secrets_file: SecretsOpt = None,
    label_matching: Annotated[
        str | None,
        typer.Option("-m", "--label-matching", help="Only keys whose label contains this"),
    ] = None,
) -> None:
    """Print the public keys of the secret key file as keyring entries."""
    keys = SecretKeyFile.load(secrets_file or config_dir() / "secret_keys.toml")
    entries = [
        key.key_entry()
        for key in keys.keys
        if label_matching is None or label_matching in key.label
    ]
    typer.echo(KeyRing(entries).dumps(), nl=False)


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
    session = current_session(ctx)
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


def _role(text: str) -> SignatureRole:
    try:
        return parse_role(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
