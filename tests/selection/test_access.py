"""Selections follow the invoice's access rules: `read` on the bindle's name, checked before
any answer (a 304 included), and `private` caching for what anonymous callers cannot read."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from bindle_server.api.app import create_app
from bindle_server.config import Settings
from tests.auth.conftest import alice_reads_carol_nothing, basic
from tests.selection.invoices import spin_app


@pytest.fixture
def private_api(settings_factory: Callable[..., Settings], tmp_path: Path) -> Iterator[TestClient]:
    """Authentication on, anonymous read off; alice may read and create, carol nothing."""
    app = create_app(alice_reads_carol_nothing(settings_factory, tmp_path))
    with TestClient(app, base_url="http://testserver/v1") as client:
        yield client


def test_resolve_and_archive_need_read_access_even_for_a_304(private_api: TestClient) -> None:
    alice, carol = basic("alice", "alice-secret"), basic("carol", "carol-secret")
    bindle = spin_app()
    assert private_api.post("/_i", content=bindle.toml(), headers=alice).status_code == 202
    for part in bindle.parts:
        url = f"/_i/{bindle.bindle_id}@{part.sha256}"
        assert private_api.post(url, content=part.data, headers=alice).status_code == 200
    archive = f"/_r/archive/{bindle.bindle_id}"
    allowed = private_api.get(archive, headers=alice)
    assert allowed.status_code == 200
    assert allowed.headers["cache-control"] == "private, no-cache"
    etag = allowed.headers["etag"]
    for path in (f"/_r/resolve/{bindle.bindle_id}", archive):
        assert private_api.get(path).status_code == 401
        refused = private_api.get(path, headers={**carol, "If-None-Match": etag})
        assert refused.status_code == 403
        assert b"spin_version" not in refused.content
        assert private_api.get(path, headers=alice).status_code == 200
