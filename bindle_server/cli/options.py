"""Options of `bindle-server`, declared once and shared by its commands (typer reads them from
the parameters of each command that takes them)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bindle_server.config import DEFAULT_ADDRESS

AtomicPushOption = Annotated[
    bool | None,
    typer.Option(
        "--atomic-push/--no-atomic-push",
        help="Hide an invoice created with missing parcels (pending: GET answers 404, _q "
        "leaves it out) until its last parcel is stored, then show it in one step "
        "[env: BINDLE_ATOMIC_PUSH] [default: off, as the reference server]",
        show_default=False,
    ),
]
PendingTtlOption = Annotated[
    str | None,
    typer.Option(
        "--pending-ttl",
        help="Remove a pending invoice its push left untouched this long (30s, 15m, 1h, 14d) "
        "[env: BINDLE_PENDING_TTL] [default: 24h]",
        show_default=False,
    ),
]
MaxParcelBytesOption = Annotated[
    int | None,
    typer.Option(
        "--max-parcel-bytes",
        min=1,
        help="Refuse (413) invoices that declare a larger parcel "
        "[env: BINDLE_MAX_PARCEL_BYTES] [default: unlimited]",
        show_default=False,
    ),
]
RetentionOption = Annotated[
    Path | None,
    typer.Option(
        "--retention",
        help="Retention policy (TOML [[rule]] tables: prefix, keep_last, keep, max_age, ...) "
        "that garbage collection applies [env: BINDLE_RETENTION]",
        show_default=False,
    ),
]
GcIntervalOption = Annotated[
    str | None,
    typer.Option(
        "--gc-interval",
        help="Run garbage collection this often while serving, e.g. 1h; one process or "
        "node at a time runs it [env: BINDLE_GC_INTERVAL] [default: off]",
        show_default=False,
    ),
]
GcGraceOption = Annotated[
    str | None,
    typer.Option(
        "--gc-grace",
        help="Never collect parcels stored more recently than this (uploads of pushes "
        "under way) [env: BINDLE_GC_GRACE] [default: 1h]",
        show_default=False,
    ),
]
DryRunOption = Annotated[
    bool, typer.Option("--dry-run", help="Report what would be removed; change nothing")
]
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
