"""Lifecycle fixtures: in-process apps on the backend under test, and the way to push."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from bindle_server.api.app import create_app
from bindle_server.config import Settings
from tests.auth.conftest import USERS, bcrypt_entry
from tests.factories import InvoiceDoc, parcel

TOML = {"Content-Type": "application/toml"}


@pytest.fixture
def app_factory(
    settings_factory: Callable[..., Settings], backend: dict[str, str]
) -> Iterator[Callable[..., TestClient]]:
    """In-process apps (lifespan entered) on the backend under test, with overrides."""
    clients: list[TestClient] = []

    def make(**overrides: Any) -> TestClient:
        app = create_app(settings_factory(**backend, **overrides))
        client = TestClient(app, base_url="http://testserver/v1")
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in reversed(clients):
        client.__exit__(None, None, None)


def push(
    api: TestClient,
    doc: InvoiceDoc,
    *,
    upload: bool = True,
    headers: dict[str, str] | None = None,
) -> int:
    """Create the invoice and (with `upload`) upload its parcels; the create's status."""
    headers = headers or {}
    created = api.post("/_i", content=doc.toml(), headers={**TOML, **headers})
    assert created.status_code in (201, 202), created.text
    if upload:
        for item in doc.parcels:
            answer = api.post(
                f"/_i/{doc.bindle_id}@{item.sha256}", content=item.data, headers=headers
            )
            assert answer.status_code in (200, 409), answer.text
    status: int = created.status_code
    return status


@pytest.fixture
def live_data(data_dir: Path) -> Path:
    """A data directory holding one pushed bindle, example.com/hello/1.0.0 (no server runs)."""
    with TestClient(create_app(Settings(directory=data_dir)), base_url="http://t/v1") as api:
        push(api, InvoiceDoc(parcels=[parcel("hello")]))
    return data_dir


@pytest.fixture
def htpasswd_file(tmp_path: Path) -> Path:
    """alice, bob and carol, as in the auth tests."""
    path = tmp_path / "htpasswd"
    path.write_text("".join(f"{bcrypt_entry(u, p)}\n" for u, p in USERS.items()))
    return path
