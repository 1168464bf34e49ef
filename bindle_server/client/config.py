"""How a client is configured (server URL, credentials, TLS, timeout, retries), and how
both clients are built from that."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, Self, TypedDict, TypeVar, Unpack

import httpx

from bindle_server import __version__
from bindle_server.client.retry import RetryPolicy, RetrySchedule

TransportT = TypeVar("TransportT")

DEFAULT_SERVER_URL = "http://localhost:8080/v1/"
TOML = "application/toml"


class ClientSettings(TypedDict, total=False):
    """How a client talks to its server, besides the URL: both clients' keyword arguments.

    `auth` is any httpx auth (`httpx.BasicAuth(user, password)`, `BearerToken(token)`);
    `insecure` skips TLS certificate checks; `timeout` bounds each try, in seconds;
    `retry` says how often calls that may be repeated are tried (RetryPolicy()).
    """

    auth: httpx.Auth | None
    insecure: bool
    timeout: float
    retry: RetryPolicy | None


class HttpOptions(TypedDict):
    """The httpx client arguments a ClientConfig stands for."""

    base_url: str
    auth: httpx.Auth | None
    verify: bool
    timeout: float
    headers: dict[str, str]
    follow_redirects: bool


@dataclass(frozen=True)
class ClientConfig:
    """Where the server is and how to talk to it; shared by the sync and async clients."""

    server_url: str = DEFAULT_SERVER_URL
    auth: httpx.Auth | None = None
    insecure: bool = False
    timeout: float = 60.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    @classmethod
    def of(cls, server_url: str, **settings: Unpack[ClientSettings]) -> ClientConfig:
        return cls(
            server_url,
            settings.get("auth"),
            settings.get("insecure", False),
            settings.get("timeout", 60.0),
            settings.get("retry") or RetryPolicy(),
        )

    @property
    def settings(self) -> ClientSettings:
        return {
            "auth": self.auth,
            "insecure": self.insecure,
            "timeout": self.timeout,
            "retry": self.retry,
        }

    @property
    def base_url(self) -> str:
        # With the trailing slash, relative paths land under the API root (`.../v1/_i`).
        return self.server_url.rstrip("/") + "/"

    @property
    def headers(self) -> dict[str, str]:
        return {"Accept": TOML, "User-Agent": f"bindle-server-client/{__version__}"}

    def http_options(self) -> HttpOptions:
        return {
            "base_url": self.base_url,
            "auth": self.auth,
            "verify": not self.insecure,
            "timeout": self.timeout,
            "headers": self.headers,
            "follow_redirects": True,
        }

    def schedule(self, repeatable: bool, path: str) -> RetrySchedule:
        """The retry schedule of one request to `path` (relative to the API root)."""
        return RetrySchedule(self.retry, repeatable, self.base_url + path)


class ClientBase(Generic[TransportT]):
    """How both clients are made: from a server URL and settings, or from a ClientConfig.

    `transport` replaces httpx's own (a sync or an async one, as the client is); tests
    inject faults with it.
    """

    def __init__(
        self,
        server_url: str = DEFAULT_SERVER_URL,
        *,
        transport: TransportT | None = None,
        **settings: Unpack[ClientSettings],
    ) -> None:
        self.config = ClientConfig.of(server_url, **settings)
        self._connect(transport)

    @classmethod
    def from_config(cls, config: ClientConfig, transport: TransportT | None = None) -> Self:
        """A client with the settings of `config` (e.g. the other client's)."""
        return cls(config.server_url, transport=transport, **config.settings)

    def _connect(self, transport: TransportT | None) -> None:
        raise NotImplementedError
