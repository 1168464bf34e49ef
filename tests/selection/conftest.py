"""Publishing the selection test bindles (in-process or live), and the CLI against a live server."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from bindle_server.client import BindleClient
from tests.client.cli import BindleCli
from tests.selection.invoices import Bindle
from tests.servers import ServerProcess

Publish = Callable[..., Bindle]


@pytest.fixture
def publish(api: TestClient) -> Publish:
    """Store a bindle's invoice and its parcels (all, or all but those named in `skip`)."""

    def store(bindle: Bindle, skip: tuple[str, ...] = ()) -> Bindle:
        created = api.post("/_i", content=bindle.toml())
        assert created.status_code in (201, 202), created.text
        for part in bindle.parts:
            if part.name not in skip:
                uploaded = api.post(f"/_i/{bindle.bindle_id}@{part.sha256}", content=part.data)
                # 409: another version of the bindle stored these bytes already.
                assert uploaded.status_code in (200, 409), uploaded.text
        return bindle

    return store


@pytest.fixture
def bindle_cli(live_server: ServerProcess, tmp_path: Path) -> BindleCli:
    """The `bindle` CLI as a subprocess, talking to `live_server` from a work directory."""
    work = tmp_path / "work"
    work.mkdir()
    return BindleCli(live_server.url, work)


def publish_live(server: ServerProcess, bindle: Bindle) -> Bindle:
    """Store a bindle and all its parcels on a live server."""
    with BindleClient(server.url) as client:
        client.create_invoice(bindle.toml())
        for part in bindle.parts:
            client.upload_parcel(bindle.bindle_id, part.sha256, part.data)
    return bindle
