"""The global options of one `bindle` run, and what commands build from them."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import httpx
import typer
from rich.console import Console

from bindle_server.client import (
    DEFAULT_SERVER_URL,
    AsyncBindleClient,
    BindleClient,
    BindleDirectory,
)
from bindle_server.client.console import ConsoleProgress
from bindle_server.model import Invoice
from bindle_server.signing import KeyRing, VerificationStrategy

T = TypeVar("T")


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
        return self.keyring or config_dir() / "keyring.toml"

    def load_keyring(self) -> KeyRing:
        path = self.keyring_path()
        return KeyRing.load(path) if path.exists() else KeyRing()

    def cache(self) -> BindleDirectory:
        return BindleDirectory(self.bindle_dir or _cache_dir() / "bindle")

    def check(self, invoice: Invoice) -> None:
        """With --strategy, verify the invoice's signatures against the keyring."""
        if self.strategy is not None:
            self.strategy.verify(invoice, self.load_keyring())


def current_session(ctx: typer.Context) -> Session:
    session = ctx.find_root().obj
    if not isinstance(session, Session):  # run through `app()` directly, not main()
        session = Session()
        ctx.find_root().obj = session
    return session


def config_dir() -> Path:
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "bindle"


def _cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
