"""A serving node settles the index after writers that died elsewhere, without a restart.

What a node killed between storing an invoice and indexing it leaves on a shared index:
the invoice in the store, a pending mark owned by a process on another host, and no
index entry. The nodes that live on settle it in their periodic maintenance round.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import anyio
import tomli
from fastapi.testclient import TestClient

from bindle_server.api.app import create_app
from bindle_server.config import Settings
from bindle_server.model import BindleId
from bindle_server.search.marks import FOREIGN_MARK_STALE_AFTER
from bindle_server.storage import open_stores
from tests.factories import make_invoice

DEADLINE = 10.0


def test_interrupted_write_of_another_node_is_settled_while_serving(
    settings_factory: Callable[..., Settings], data_dir: Path
) -> None:
    app = create_app(settings_factory(maintenance_interval=0.2))
    with TestClient(app, base_url="http://testserver/v1") as api:
        doc = make_invoice("example.com/orphan", "1.0.0")
        key = BindleId.parse(doc.bindle_id).key
        # The dead node's half-finished create: stored, marked, never indexed.
        anyio.run(open_stores(str(data_dir)).invoices.create, key, doc.toml())
        with sqlite3.connect(data_dir / "index.sqlite3") as db:
            db.execute(
                "INSERT INTO pending (token, key, since, owner) VALUES (?, ?, ?, ?)",
                ("dead-token", key, time.time() - FOREIGN_MARK_STALE_AFTER - 60, "gone:1:1"),
            )
        assert _total(api) == 0
        deadline = time.monotonic() + DEADLINE
        while _total(api) == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _total(api) == 1
        with sqlite3.connect(data_dir / "index.sqlite3") as db:
            assert db.execute("SELECT count(*) FROM pending").fetchone() == (0,)


def _total(api: TestClient) -> int:
    response = api.get("/_q", params={"q": "example.com/orphan"})
    assert response.status_code == 200
    total: int = tomli.loads(response.text)["total"]
    return total
