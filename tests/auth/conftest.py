"""Auth fixtures: an htpasswd file (bcrypt at the lowest cost), tokens and policies."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import bcrypt
import pytest
import tomli_w
from fastapi.testclient import TestClient

from bindle_server.api.app import create_app
from bindle_server.auth import TokenFile
from bindle_server.config import Settings

# Cost 4, the lowest bcrypt allows: the tests check behaviour, not bcrypt's slowness.
USERS = {"alice": "alice-secret", "bob": "bob-secret", "carol": "carol-secret"}


def bcrypt_entry(user: str, password: str, prefix: bytes = b"$2y$") -> str:
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4))
    return f"{user}:{(prefix + hashed[4:]).decode()}"


def basic(user: str, password: str) -> dict[str, str]:
    encoded = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {encoded}"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def htpasswd_file(tmp_path: Path) -> Path:
    path = tmp_path / "htpasswd"
    path.write_text("".join(f"{bcrypt_entry(u, p)}\n" for u, p in USERS.items()))
    return path


@pytest.fixture
def make_token(data_dir: Path) -> Callable[..., str]:
    """Add a token to the data directory's token file; return its value."""

    def make(name: str, lifetime: timedelta | None = None, now: datetime | None = None) -> str:
        path = data_dir / "tokens.toml"
        tokens = TokenFile.load(path) if path.exists() else TokenFile()
        value = tokens.create(name, lifetime, now or datetime.now(UTC))
        tokens.save(path)
        return value

    return make


def write_policy(path: Path, *rules: dict[str, Any]) -> Path:
    path.write_text(tomli_w.dumps({"rule": list(rules)}))
    return path


@pytest.fixture
def app_factory(settings_factory: Callable[..., Settings]) -> Iterator[Callable[..., TestClient]]:
    """In-process apps (lifespan entered) with settings overrides; closed at teardown."""
    clients: list[TestClient] = []

    def make(**overrides: Any) -> TestClient:
        client = TestClient(
            create_app(settings_factory(**overrides)), base_url="http://testserver/v1"
        )
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def alice_reads_carol_nothing(settings_factory: Callable[..., Settings], folder: Path) -> Settings:
    """Settings with authentication on and anonymous read off: htpasswd users alice and
    carol (password USER-secret); alice may read and create everywhere, carol nothing."""
    htpasswd = folder / "htpasswd"
    htpasswd.write_text(
        "".join(f"{bcrypt_entry(user, f'{user}-secret')}\n" for user in ("alice", "carol"))
    )
    policy = write_policy(
        folder / "policy.toml",
        {"subjects": ["user:alice"], "prefixes": ["*"], "verbs": ["read", "create"]},
    )
    return settings_factory(htpasswd_file=htpasswd, auth_policy=policy)
