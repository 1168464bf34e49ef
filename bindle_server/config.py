"""Server settings: built once by the CLI (or a test) and passed down, never a global."""

from __future__ import annotations

import ipaddress
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal, get_args

from pydantic import AliasChoices, BeforeValidator, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bindle_server.logs import JsonFormatter
from bindle_server.model.duration import parse_duration

DEFAULT_ADDRESS = "127.0.0.1:8080"

LogLevel = Literal["critical", "error", "warning", "info", "debug", "trace"]
LogFormat = Literal["text", "json"]
TRACE = 5  # uvicorn's level below debug


def _seconds(value: object) -> object:
    """A duration setting: `30s`, `15m`, `1h`, `14d` (or a number of seconds)."""
    if isinstance(value, str) and value and not value.replace(".", "", 1).isdigit():
        return parse_duration(value).total_seconds()
    return value


def _words(value: object) -> object:
    """A list setting from its variable: a JSON list, or words split at commas and spaces."""
    if isinstance(value, str):
        if value.lstrip().startswith("["):
            return json.loads(value)
        return value.replace(",", " ").split()
    return value


def _lower(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


Duration = Annotated[float, BeforeValidator(_seconds), Field(gt=0)]
# A list setting: repeat its option, or list the words in its variable.
Words = Annotated[list[str], NoDecode, BeforeValidator(_words)]


@dataclass(frozen=True)
class CommandLine:
    """How a setting is spelled on the command line: `bindle-server` builds one option from
    the field (its name, description, variables and default) and this. A field without one
    is read only from its environment variable."""

    short: str | None = None  # e.g. "-i"
    off: str | None = None  # a boolean's negative flag [default: --no-NAME]
    metavar: str | None = None  # [default: from the type]
    default: str | None = None  # a default to describe in words, where the value is None


class Settings(BaseSettings):
    """Configuration of one server process; every field can come from a BINDLE_* variable.

    Each field's description is its `--help` text; see `environment_names` for its variables.
    """

    model_config = SettingsConfigDict(env_prefix="BINDLE_", extra="ignore", populate_by_name=True)

    address: Annotated[str, CommandLine("-i", metavar="HOST:PORT")] = Field(
        default=DEFAULT_ADDRESS,
        # The reference server's variable name, kept so existing deployments carry over.
        validation_alias=AliasChoices("BINDLE_IP_ADDRESS_PORT", "BINDLE_ADDRESS"),
        description="HOST:PORT to listen on",
    )
    directory: Annotated[Path, CommandLine("-d", metavar="DIR")] = Field(
        default=Path("storage"),
        description="Data directory for invoices, parcels and the index",
    )
    storage: Annotated[str | None, CommandLine(metavar="URL", default="file://DIRECTORY")] = Field(
        default=None,
        description="Storage URL of invoices and parcels, instead of the data directory: "
        "file://PATH, memory://, or "
        "s3://BUCKET/PREFIX?endpoint=URL&region=NAME for an S3-compatible bucket (credentials "
        "from the AWS_* variables; pip install 'bindle-server[s3]')",
    )
    index: Annotated[
        str | None, CommandLine(metavar="URL", default="SQLite in the data directory")
    ] = Field(
        default=None,
        description="Query index URL: postgresql://USER@HOST/DB puts it on PostgreSQL "
        "(pip install 'bindle-server[postgres]')",
    )
    workers: Annotated[
        int | None, CommandLine(default="one per usable CPU; 1 where the index is in memory")
    ] = Field(
        default=None,
        ge=1,
        description="Server processes sharing the listening socket and the data directory "
        "(forked once the code is loaded, so a worker costs only its own allocations)",
    )
    log_level: Annotated[LogLevel, BeforeValidator(_lower), CommandLine(metavar="LEVEL")] = Field(
        default="info", description="Log level: critical, error, warning, info, debug or trace"
    )
    log_format: Annotated[LogFormat, BeforeValidator(_lower), CommandLine(metavar="FORMAT")] = (
        Field(
            default="text",
            description="Log lines as text, or as json: one object per line, with the id of "
            "the request (also sent back as X-Request-ID)",
        )
    )
    access_log: Annotated[bool, CommandLine()] = Field(
        default=True,
        description="Log one line per request (at info); the server's own lines and errors "
        "are logged either way. Off behind a proxy that keeps its own access log",
    )

    signing_keys: Annotated[
        Path | None,
        CommandLine(
            default="DIRECTORY/signing-keys.toml, created with one host key on first start"
        ),
    ] = Field(default=None, description="Secret key file of the server's signing keys")
    keyring: Annotated[Path | None, CommandLine("-r")] = Field(
        default=None,
        description="Keyring of trusted public keys (TOML [[key]] entries); a key counts only "
        "for the roles its entry lists",
    )
    strategy: Annotated[str, CommandLine(metavar="NAME")] = Field(
        default="GreedyVerification",
        # The reference server's variable name.
        validation_alias=AliasChoices("BINDLE_VERIFICATION_STRATEGY", "BINDLE_STRATEGY"),
        description="Verification strategy for signed invoices: GreedyVerification, "
        "CreativeIntegrity, AuthoritativeIntegrity, ExhaustiveVerification, "
        "MultipleAttestation[Roles], MultipleAttestationGreedy[Roles]",
    )
    require_signatures: Annotated[bool, CommandLine(off="--accept-unsigned")] = Field(
        default=False,
        description="Refuse unsigned invoices (Bindle 0.9), or accept and host-sign them "
        "(Bindle 0.8: what Spin 1.x and hippo-cli need)",
    )

    max_invoice_bytes: int = Field(
        default=32 * 1024 * 1024,
        gt=0,
        description="Largest invoice body accepted (413 beyond); 10,000 parcels take ~3 MiB",
    )
    max_parcels: int = Field(
        default=50_000, gt=0, description="Most parcels one invoice may list (413 beyond)"
    )
    max_header_bytes: int = Field(
        default=64 * 1024, gt=0, description="Largest request header block (431 beyond)"
    )
    body_timeout: float = Field(
        default=60.0,
        gt=0,
        description="Seconds a request body may stall before the request fails with 408",
    )

    unauthenticated: Annotated[bool, CommandLine()] = Field(
        default=False,
        description="Serve without authentication on a non-loopback address; without it the "
        "server refuses to listen anywhere but loopback",
    )
    htpasswd_file: Annotated[Path | None, CommandLine()] = Field(
        default=None,
        description="htpasswd file with bcrypt entries (htpasswd -B): HTTP Basic authentication",
    )
    tokens_file: Annotated[Path | None, CommandLine(default="DIRECTORY/tokens.toml")] = Field(
        default=None,
        description="Bearer token file (hashes only); token authentication is on when it exists",
    )
    auth_policy: Annotated[Path | None, CommandLine()] = Field(
        default=None,
        description="Authorization policy (TOML [[rule]] tables: subjects, prefixes, verbs); "
        "without one, authenticated callers may do everything",
    )
    anonymous_read: Annotated[
        bool | None, CommandLine(default="on without authentication, off with it")
    ] = Field(default=None, description="Let callers without credentials read every bindle")
    oidc_issuer_url: Annotated[str | None, CommandLine(metavar="URL")] = Field(
        default=None,
        description="OIDC issuer URL: bearer JWTs are checked against its keys (JWKS) and "
        "`iss`; needs --oidc-client-id and --oidc-device-url",
    )
    oidc_client_id: Annotated[str | None, CommandLine(metavar="ID")] = Field(
        default=None, description="OIDC client id that bearer JWTs must name in `aud`"
    )
    oidc_device_url: Annotated[str | None, CommandLine(metavar="URL")] = Field(
        default=None, description="OIDC device authorization endpoint, for GET /v1/login"
    )
    tls_cert: Annotated[Path | None, CommandLine("-c")] = Field(
        default=None, description="TLS certificate (PEM) to serve HTTPS; needs --tls-key"
    )
    tls_key: Annotated[Path | None, CommandLine("-k")] = Field(
        default=None, description="TLS private key (PEM); needs --tls-cert"
    )

    maintenance_interval: float = Field(
        default=300.0,
        gt=0,
        description="Seconds between a node's clean-up rounds: settling index entries of "
        "writes whose writer died, and aborting parcel uploads abandoned in a bucket",
    )
    forwarded_allow_ips: Annotated[str, CommandLine(metavar="ADDRESSES")] = Field(
        default="127.0.0.1",
        description="Proxies trusted to say who the client is (X-Forwarded-For, "
        "X-Forwarded-Proto): comma-separated addresses or networks, or * for any; the audit "
        "log, metrics and links then name the client rather than the proxy",
    )
    read_only: Annotated[bool, CommandLine()] = Field(
        default=False,
        description="Refuse every write (503, Retry-After) and run no clean-up or garbage "
        "collection, while reads go on: for migrations and backups",
    )
    atomic_push: Annotated[bool, CommandLine()] = Field(
        default=False,
        description="Hide an invoice created with missing parcels (pending: GET answers 404, "
        "_q leaves it out) until its last parcel is stored, then show it in one step",
    )
    pending_ttl: Annotated[Duration, CommandLine()] = Field(
        default=24 * 3600.0,
        description="Remove a pending invoice its push left untouched this long "
        "(30s, 15m, 1h, 14d)",
    )
    max_parcel_bytes: Annotated[int | None, CommandLine(metavar="BYTES", default="unlimited")] = (
        Field(default=None, gt=0, description="Refuse (413) invoices that declare a larger parcel")
    )
    retention: Annotated[Path | None, CommandLine()] = Field(
        default=None,
        description="Retention policy (TOML [[rule]] tables: prefix, keep_last, keep, "
        "max_age, ...) that garbage collection applies",
    )
    gc_interval: Annotated[Duration | None, CommandLine(default="off")] = Field(
        default=None,
        description="Run garbage collection this often while serving, e.g. 1h; one process "
        "or node at a time runs it",
    )
    gc_grace: Annotated[Duration, CommandLine()] = Field(
        default=3600.0,
        description="Never collect parcels stored more recently than this (uploads of pushes "
        "under way)",
    )

    audit_log: Annotated[bool, CommandLine()] = Field(
        default=True,
        description="Record every change and every refused authentication as a JSON line "
        "(files under DIRECTORY/audit/, or a table with --index postgresql://); a change "
        "whose record cannot be written fails. Read it with `bindle-server audit`",
    )
    audit_rotate_bytes: Annotated[int, CommandLine(metavar="BYTES")] = Field(
        default=64 * 1024 * 1024,
        gt=0,
        description="Start a new audit file once the current one holds this many bytes",
    )
    webhook: Annotated[Words, CommandLine(metavar="URL")] = Field(
        default_factory=list,
        description="POST each invoice event (created, completed, yanked, purged) as JSON to "
        "URL, signed with --webhook-secret; repeatable. Delivery is queued (in the data "
        "directory or PostgreSQL) and retried with backoff for 24 hours; "
        "`bindle-server webhooks` lists deliveries",
    )
    webhook_secret: Annotated[SecretStr | None, CommandLine(metavar="SECRET")] = Field(
        default=None,
        description="Key of the X-Bindle-Signature HMAC-SHA256 on --webhook deliveries "
        "(better set by its variable: options show in process listings)",
    )
    webhooks_file: Annotated[Path | None, CommandLine()] = Field(
        default=None,
        description="Webhooks as TOML [[webhook]] entries (url, and optionally name, secret, "
        "events, prefixes), each with its own event filter and bindle name prefixes",
    )
    webhook_retry_delay: float = Field(
        default=10.0,
        gt=0,
        description="Seconds before the first retry of a failed webhook delivery; each "
        "further retry waits twice as long, up to 10 minutes",
    )
    webhook_give_up: Duration = Field(
        default=24 * 3600.0,
        description="Stop retrying a webhook delivery this long after its event was queued, "
        "and list it as failed (30s, 15m, 1h, 14d)",
    )
    webhook_timeout: float = Field(
        default=10.0,
        gt=0,
        description="Seconds a webhook endpoint may take to answer before the attempt fails",
    )

    upstream: Annotated[Words, CommandLine(metavar="URL")] = Field(
        default_factory=list,
        description="Pull-through mirror of the Bindle server at this API root (e.g. "
        "http://registry:8080/v1): invoices and parcels not stored here are fetched from "
        "it, verified, stored and served; repeatable, tried in order. A USER:PASSWORD@ "
        "in the URL is sent as HTTP Basic authentication",
    )
    upstream_token_file: Annotated[Path | None, CommandLine()] = Field(
        default=None, description="File holding the bearer token sent to the --upstream servers"
    )
    upstream_verify: Annotated[bool, CommandLine()] = Field(
        default=False,
        description="Also require a mirrored invoice to carry a valid host signature by a "
        "key its upstream's /bindle-keys lists",
    )
    upstream_refresh: Annotated[Duration, CommandLine()] = Field(
        default=300.0,
        description="Recheck a mirrored invoice's yank status upstream at most this often, "
        "when it is read and the upstream is reachable (30s, 5m, 1h)",
    )
    upstream_allow_local: Annotated[bool, CommandLine()] = Field(
        default=False,
        description="Accept local pushes of bindle names an --upstream serves (refused "
        "with 403 by default)",
    )

    @model_validator(mode="after")
    def _tls_files_together(self) -> Settings:
        # Checked here, not only by the CLI: a TLS setting that is silently ignored would
        # serve plain HTTP where the operator asked for HTTPS.
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("--tls-cert and --tls-key go together: give both or neither")
        return self

    @model_validator(mode="after")
    def _process_local_index_in_one_process(self) -> Settings:
        # Each worker would hold an index (and a store, for memory://) of its own: a push
        # taken by one worker would be missing from the next query another one answers.
        if (self.workers or 1) > 1 and self._index_in_process_memory():
            raise ValueError(
                f"{self.storage_url.partition(':')[0]}:// storage without --index "
                "postgresql:// keeps its index in each process: use --workers 1, or give "
                "--index"
            )
        return self

    def _index_in_process_memory(self) -> bool:
        scheme = self.storage_url.partition(":")[0]
        return scheme == "memory" or (scheme == "s3" and self.index is None)

    def worker_count(self) -> int:
        """How many server processes to run: `workers`, or one per usable CPU."""
        if self.workers is not None:
            return self.workers
        if self._index_in_process_memory():
            return 1
        if hasattr(os, "sched_getaffinity"):  # the CPUs this process may run on (Linux)
            return len(os.sched_getaffinity(0))
        return os.cpu_count() or 1

    def listens_on_loopback(self) -> bool:
        """Whether `address` is a loopback address (127.0.0.0/8, ::1 or localhost)."""
        host, _ = self.host_and_port()
        if host == "localhost":
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False  # a host name other than localhost may resolve anywhere

    def to_environment(self) -> dict[str, str]:
        """These settings as BINDLE_* variables (for worker processes that rebuild them)."""
        environment = {}
        for name, value in self.model_dump().items():
            if value is None:
                continue
            if isinstance(value, list):
                text = json.dumps(value)  # pydantic-settings reads lists as JSON
            elif isinstance(value, SecretStr):
                text = value.get_secret_value()
            else:
                text = str(value).lower() if isinstance(value, bool) else str(value)
            environment[environment_names(name)[0]] = text
        return environment

    @property
    def signing_keys_path(self) -> Path:
        return self.signing_keys or self.directory / "signing-keys.toml"

    @property
    def tokens_path(self) -> Path:
        return self.tokens_file or self.directory / "tokens.toml"

    @property
    def storage_url(self) -> str:
        return self.storage or f"file://{self.directory.resolve()}"

    def host_and_port(self) -> tuple[str, int]:
        """Split `address` into host and port; IPv6 hosts may be written in brackets."""
        host, sep, port = self.address.rpartition(":")
        if not sep or not port.isdigit() or not host:
            raise ValueError(f"invalid address {self.address!r}: expected HOST:PORT")
        return host.strip("[]"), int(port)


def environment_names(field: str) -> tuple[str, ...]:
    """The variables a setting is read from, in the order they are tried."""
    alias = Settings.model_fields[field].validation_alias
    if isinstance(alias, AliasChoices):
        return tuple(str(choice) for choice in alias.choices)
    return (f"BINDLE_{field.upper()}",)


def command_line(field: str) -> CommandLine | None:
    """How the setting `field` is spelled on the command line; None if it has no option."""
    for item in Settings.model_fields[field].metadata:
        if isinstance(item, CommandLine):
            return item
    return None


def is_duration(field: str) -> bool:
    """Whether a setting is written as a duration (`30s`, `1h`), not a plain number."""
    info = Settings.model_fields[field]
    metadata = list(info.metadata)
    for arg in get_args(info.annotation):  # the Duration inside `Duration | None`
        metadata.extend(getattr(arg, "__metadata__", ()))
    return any(isinstance(item, BeforeValidator) and item.func is _seconds for item in metadata)


def configure_logging(level: LogLevel, log_format: LogFormat = "text") -> None:
    """One log format for the server, uvicorn's access log and every worker process.

    May run twice (`bindle-server serve --log-format json` configures logging for
    `bindle-server`, then for `serve`): the second call replaces what the first set.
    """
    logging.addLevelName(TRACE, "TRACE")
    handler = logging.StreamHandler()
    handler.setFormatter(
        JsonFormatter()
        if log_format == "json"
        else logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    )
    logging.basicConfig(handlers=[handler], force=True)
    logging.getLogger().setLevel(level.upper())
