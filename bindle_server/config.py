"""Server settings: built once by the CLI (or a test) and passed down, never a global."""

from __future__ import annotations

import ipaddress
import logging
import os
from pathlib import Path
from typing import Annotated

from pydantic import AliasChoices, BeforeValidator, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bindle_server.model.duration import parse_duration

DEFAULT_ADDRESS = "127.0.0.1:8080"


def _seconds(value: object) -> object:
    """A duration setting: `30s`, `15m`, `1h`, `14d` (or a number of seconds)."""
    if isinstance(value, str) and value and not value.replace(".", "", 1).isdigit():
        return parse_duration(value).total_seconds()
    return value


Duration = Annotated[float, BeforeValidator(_seconds), Field(gt=0)]


class Settings(BaseSettings):
    """Configuration of one server process; every field can come from a BINDLE_* variable."""

    model_config = SettingsConfigDict(env_prefix="BINDLE_", extra="ignore", populate_by_name=True)

    address: str = Field(
        default=DEFAULT_ADDRESS,
        # The reference server's variable name, kept so existing deployments carry over.
        validation_alias=AliasChoices("BINDLE_IP_ADDRESS_PORT", "BINDLE_ADDRESS"),
        description="host:port to listen on",
    )
    directory: Path = Field(
        default=Path("storage"),
        description="data directory of the embedded backend (invoices, parcels, index)",
    )
    storage: str | None = Field(
        default=None,
        description="storage URL: file://PATH, s3://BUCKET/PREFIX?endpoint=URL&region=NAME "
        "(needs the `s3` extra) or memory://; overrides `directory` for invoices and parcels",
    )
    index: str | None = Field(
        default=None,
        description="query index URL: postgresql://USER@HOST/DB for PostgreSQL (needs the "
        "`postgres` extra) [default: the embedded SQLite file in the data directory]",
    )

    signing_keys: Path | None = Field(
        default=None,
        description="secret key file of the server's signing keys "
        "[default: DIRECTORY/signing-keys.toml, created with one host key]",
    )
    keyring: Path | None = Field(
        default=None, description="keyring of trusted public keys (TOML, [[key]] entries)"
    )
    strategy: str = Field(
        default="GreedyVerification",
        # The reference server's variable name.
        validation_alias=AliasChoices("BINDLE_VERIFICATION_STRATEGY", "BINDLE_STRATEGY"),
        description="how signed invoices are verified",
    )
    require_signatures: bool = Field(
        default=False,
        description="refuse unsigned invoices (Bindle 0.9 behaviour); by default they are "
        "accepted and host-signed (Bindle 0.8 behaviour, what Spin 1.x and hippo-cli need)",
    )

    max_invoice_bytes: int = Field(
        default=32 * 1024 * 1024,
        gt=0,
        description="largest invoice body accepted (413 beyond); 10,000 parcels take ~3 MiB",
    )
    max_parcels: int = Field(
        default=50_000, gt=0, description="most parcels one invoice may list (413 beyond)"
    )
    max_header_bytes: int = Field(
        default=64 * 1024, gt=0, description="largest request header block (431 beyond)"
    )
    body_timeout: float = Field(
        default=60.0,
        gt=0,
        description="seconds a request body may stall before the request fails with 408",
    )

    unauthenticated: bool = Field(
        default=False,
        description="serve without authentication on a non-loopback address (explicit "
        "opt-in; on loopback the server is open by default)",
    )
    htpasswd_file: Path | None = Field(
        default=None, description="htpasswd file with bcrypt entries: HTTP Basic authentication"
    )
    tokens_file: Path | None = Field(
        default=None,
        description="bearer token file (hashes only) [default: DIRECTORY/tokens.toml]; "
        "token authentication is on when it exists",
    )
    auth_policy: Path | None = Field(
        default=None,
        description="authorization policy (TOML [[rule]] tables); without one, every "
        "authenticated caller may do everything",
    )
    anonymous_read: bool | None = Field(
        default=None,
        description="let callers without credentials read everything [default: on when "
        "no authentication is configured, off when it is]",
    )
    oidc_issuer_url: str | None = Field(
        default=None,
        description="OIDC issuer: bearer JWTs must be signed by its keys (JWKS) and name it "
        "as `iss`; with oidc_client_id and oidc_device_url",
    )
    oidc_client_id: str | None = Field(
        default=None, description="OIDC client id: bearer JWTs must name it in `aud`"
    )
    oidc_device_url: str | None = Field(
        default=None,
        description="OIDC device authorization endpoint that `GET /v1/login` starts the "
        "device flow at",
    )
    maintenance_interval: float = Field(
        default=300.0,
        gt=0,
        description="seconds between a node's clean-up rounds: settling index entries of "
        "writes whose writer died, and aborting parcel uploads abandoned in a bucket",
    )
    atomic_push: bool = Field(
        default=False,
        description="hide an invoice until all its parcels are stored (pending: GET answers "
        "404 and _q leaves it out), then show it in one step",
    )
    pending_ttl: Duration = Field(
        default=24 * 3600.0,
        description="a pending invoice untouched this long expires (30s, 15m, 1h, 14d)",
    )
    max_parcel_bytes: int | None = Field(
        default=None,
        gt=0,
        description="largest parcel an invoice may declare (413 at create) [default: unlimited]",
    )
    retention: Path | None = Field(
        default=None,
        description="retention policy (TOML [[rule]] tables) that garbage collection applies",
    )
    gc_interval: Duration | None = Field(
        default=None,
        description="run garbage collection this often while serving (e.g. 1h) [default: off]",
    )
    gc_grace: Duration = Field(
        default=3600.0,
        description="garbage collection never removes parcels stored more recently than this",
    )
    tls_cert: Path | None = Field(default=None, description="TLS certificate (PEM); with tls_key")
    tls_key: Path | None = Field(default=None, description="TLS private key (PEM); with tls_cert")

    @model_validator(mode="after")
    def _tls_files_together(self) -> Settings:
        # Checked here, not only by the CLI: a TLS setting that is silently ignored would
        # serve plain HTTP where the operator asked for HTTPS.
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("--tls-cert and --tls-key go together: give both or neither")
        return self

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
        names = {"address": "BINDLE_IP_ADDRESS_PORT", "strategy": "BINDLE_VERIFICATION_STRATEGY"}
        environment = {}
        for name, value in self.model_dump().items():
            if value is None:
                continue
            text = str(value).lower() if isinstance(value, bool) else str(value)
            environment[names.get(name, f"BINDLE_{name.upper()}")] = text
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


def configure_logging(level: str | None = None) -> None:
    """One log format for the server, uvicorn's access log and every worker process."""
    chosen = (level or os.environ.get("BINDLE_LOG_LEVEL") or "info").upper()
    logging.basicConfig(level=chosen, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
