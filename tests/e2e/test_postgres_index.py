"""A live server with its index on PostgreSQL stores, queries, and survives a restart."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import tomli

from tests.factories import make_invoice
from tests.servers import ServerProcess

ServerFactory = Callable[..., ServerProcess]


def _query(server: ServerProcess, **params: str) -> dict[str, object]:
    response = httpx.get(f"{server.url}/_q", params=params)
    assert response.status_code == 200, response.text
    result: dict[str, object] = tomli.loads(response.text)
    return result


def test_a_server_indexes_in_postgresql_across_restarts(
    server_factory: ServerFactory, postgres_url: str, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    first = server_factory(data_dir, "--index", postgres_url)
    for n in range(3):
        doc = make_invoice("example.com/pg", f"1.{n}.0")
        assert httpx.post(f"{first.url}/_i", content=doc.toml()).status_code == 201
    assert httpx.post(f"{first.url}/_i", content=make_invoice("other/x", "1.0.0").toml())
    assert httpx.delete(f"{first.url}/_i/example.com/pg/1.0.0").status_code == 200
    assert _query(first, q="example.com/pg")["total"] == 2
    assert _query(first, q="example.com/pg", v=">=1.2.0")["total"] == 1
    first.stop()

    second = server_factory(data_dir, "--index", postgres_url)
    assert "query index: postgresql://" in second.log()
    result = _query(second, q="example.com/pg", yanked="true")
    assert result["total"] == 3
    invoices = result["invoices"]
    assert isinstance(invoices, list)
    assert [invoice["bindle"]["version"] for invoice in invoices] == ["1.0.0", "1.1.0", "1.2.0"]
    assert _query(second, q="example.com/pg")["total"] == 2
    assert _query(second)["total"] == 3
    assert not list(data_dir.glob("index.sqlite3*"))
