"""The index is persistent, rebuildable, and repaired after an interrupted write."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import anyio
import httpx
import tomli

from bindle_server.model import BindleId, parse_invoice
from bindle_server.search import SqliteIndex
from bindle_server.service import index_entry
from bindle_server.storage import open_stores
from tests.factories import make_invoice
from tests.servers import ServerProcess

ServerFactory = Callable[..., ServerProcess]


def _total(server: ServerProcess, **params: str) -> int:
    response = httpx.get(f"{server.url}/_q", params=params)
    assert response.status_code == 200
    total: int = tomli.loads(response.text)["total"]
    return total


def _populate(server: ServerProcess, count: int) -> None:
    for n in range(count):
        doc = make_invoice("example.com/restart", f"1.{n}.0")
        assert httpx.post(f"{server.url}/_i", content=doc.toml()).status_code == 201
    assert httpx.delete(f"{server.url}/_i/example.com/restart/1.0.0").status_code == 200


def test_index_survives_a_restart(server_factory: ServerFactory, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    first = server_factory(data_dir)
    _populate(first, 5)
    first.stop()
    second = server_factory(data_dir)
    assert _total(second, q="restart") == 4
    assert _total(second, q="restart", yanked="true") == 5


def test_reindex_rebuilds_a_deleted_index_and_skips_unreadable_invoices(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    server = server_factory(data_dir)
    _populate(server, 5)
    server.stop()
    for path in data_dir.glob("index.sqlite3*"):
        path.unlink()
    broken = data_dir / "invoices" / ("0" * 64)
    broken.mkdir()
    (broken / "invoice.toml").write_text("this is not = an invoice [")
    result = subprocess.run(
        [sys.executable, "-m", "bindle_server", "reindex", "--directory", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "indexed 5 invoice(s), skipped 1" in result.stdout
    assert "skipping unreadable invoice" in result.stderr
    restarted = server_factory(data_dir)
    assert _total(restarted, q="restart") == 4
    assert _total(restarted, q="restart", yanked="true") == 5


def test_a_lost_index_is_rebuilt_at_start_up(server_factory: ServerFactory, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    server = server_factory(data_dir)
    _populate(server, 3)
    server.stop()
    for path in data_dir.glob("index.sqlite3*"):
        path.unlink()
    restarted = server_factory(data_dir)
    assert _total(restarted, q="restart") == 2
    assert _total(restarted, q="restart", yanked="true") == 3
    assert "reindexed 3 invoice(s)" in restarted.log()


_WRITE_WITHOUT_INDEXING = """
import sys, anyio
from bindle_server.search import SqliteIndex
from bindle_server.storage import open_stores

async def main(data_dir: str, key: str, document: bytes) -> None:
    stores = open_stores(data_dir)
    index = SqliteIndex(stores.index_location)
    await index.begin(key)  # what create_invoice does before writing the file
    assert await stores.invoices.create(key, document)
    await index.close()  # ... and the process dies before indexing it

anyio.run(main, sys.argv[1], sys.argv[2], sys.stdin.buffer.read())
"""


def test_an_invoice_written_but_not_indexed_is_indexed_at_the_next_start(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    """The crash window between the invoice file and its index entry is closed at start-up."""
    data_dir = tmp_path / "data"
    server = server_factory(data_dir)
    server.stop()
    doc = make_invoice("example.com/crashed", "1.0.0")
    key = BindleId.parse(doc.bindle_id).key
    subprocess.run(
        [sys.executable, "-c", _WRITE_WITHOUT_INDEXING, str(data_dir), key],
        input=doc.toml(), check=True, timeout=60,
    )  # fmt: skip
    restarted = server_factory(data_dir)
    assert _total(restarted, q="crashed") == 1
    assert "recovered 1 interrupted invoice write" in restarted.log()


def test_a_starting_server_leaves_a_live_writers_pending_write_alone(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    """Another worker starting mid-write must not settle that write (it would race it)."""
    data_dir = tmp_path / "data"
    server_factory(data_dir).stop()
    doc = make_invoice("example.com/in-flight", "1.0.0")
    invoice = parse_invoice(doc.toml())
    key = invoice.bindle_id.key
    stores = open_stores(str(data_dir))
    index = SqliteIndex(stores.index_location)

    async def begin_write() -> str:
        token = await index.begin(key)  # this test process is the live writer
        assert await stores.invoices.create(key, doc.toml())
        return token

    token = anyio.run(begin_write)
    other = server_factory(data_dir)
    assert _total(other, q="in-flight") == 0
    assert "recovered" not in other.log()

    async def finish_write() -> None:
        await index.put(index_entry(key, invoice), token)
        await index.close()

    anyio.run(finish_write)
    assert _total(other, q="in-flight") == 1
