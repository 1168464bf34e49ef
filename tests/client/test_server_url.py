"""A server URL without the API's `/v1` reaches the server's root, where nothing is routed:
the client says the URL does not look like a Bindle API root instead of blaming a bindle."""

from __future__ import annotations

import asyncio

import pytest

from bindle_server.client import AsyncBindleClient, BindleClient, InvoiceNotFound, NotABindleServer
from tests.client.cli import BindleCli
from tests.factories import make_invoice
from tests.servers import ServerProcess


def test_both_clients_say_a_url_without_v1_is_not_a_bindle_api_root(
    live_server: ServerProcess,
) -> None:
    doc = make_invoice("example.com/url", "1.0.0")
    with BindleClient(live_server.url) as client:
        client.create_invoice(doc.toml())
    root = f"{live_server.base_url}/"
    with BindleClient(live_server.base_url) as client:
        with pytest.raises(NotABindleServer) as raised:
            client.get_invoice(doc.bindle_id)  # it exists, but under /v1
        with pytest.raises(NotABindleServer):
            client.missing_parcels(doc.bindle_id)
    assert f"{root} does not look like a Bindle server's API root" in str(raised.value)
    assert f"did you mean {root}v1/ ?" in str(raised.value)

    async def fetch() -> None:
        async with AsyncBindleClient(live_server.base_url) as client:
            await client.get_invoice(doc.bindle_id)

    with pytest.raises(NotABindleServer, match="/v1"):
        asyncio.run(fetch())
    with BindleClient(live_server.url) as client, pytest.raises(InvoiceNotFound):
        client.get_invoice("example.com/url/2.0.0")  # with /v1 a missing bindle stays one


def test_the_cli_suggests_v1_for_a_url_without_it(
    live_server: ServerProcess, bindle: BindleCli
) -> None:
    result = bindle.run("info", "example.com/url/1.0.0", server=live_server.base_url, check=False)
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    assert result.stderr.startswith("NotABindleServer: ")
    assert f"did you mean {live_server.base_url}/v1/ ?" in result.stderr, result.stderr
