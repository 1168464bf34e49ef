"""Races through a live server: one winner per invoice id, parcels stored once and intact."""

from __future__ import annotations

import asyncio
import hashlib

import httpx
import tomli

from tests.factories import as_submitted, make_invoice, parcel
from tests.servers import ServerProcess


async def _race(count: int, send: object) -> list[httpx.Response]:
    assert callable(send)
    results: list[httpx.Response] = await asyncio.gather(*(send() for _ in range(count)))
    return results


def test_twenty_concurrent_creates_of_one_id_have_exactly_one_winner(
    live_server: ServerProcess,
) -> None:
    doc = make_invoice("example.com/race", "1.0.0", parcels=[parcel("race")])

    async def main() -> list[int]:
        async with httpx.AsyncClient(base_url=live_server.url, timeout=60) as client:
            responses = await _race(20, lambda: client.post("/_i", content=doc.toml()))
            return [response.status_code for response in responses]

    statuses = asyncio.run(main())
    assert sum(status in (201, 202) for status in statuses) == 1
    assert statuses.count(409) == 19
    stored = httpx.get(f"{live_server.url}/_i/{doc.bindle_id}")
    assert as_submitted(tomli.loads(stored.text)) == doc.document()


def test_twenty_concurrent_uploads_of_one_parcel_store_it_intact(
    live_server: ServerProcess,
) -> None:
    payload = parcel(bytes(range(256)) * 16384)  # 4 MiB
    doc = make_invoice("example.com/race", "2.0.0", parcels=[payload])
    url = f"/_i/{doc.bindle_id}@{payload.sha256}"

    async def main() -> list[int]:
        async with httpx.AsyncClient(base_url=live_server.url, timeout=60) as client:
            assert (await client.post("/_i", content=doc.toml())).status_code == 202
            responses = await _race(20, lambda: client.post(url, content=payload.data))
            return [response.status_code for response in responses]

    statuses = asyncio.run(main())
    assert set(statuses) <= {200, 409}
    assert 200 in statuses
    download = httpx.get(f"{live_server.url}{url}", timeout=60)
    assert hashlib.sha256(download.content).hexdigest() == payload.sha256
    stored = live_server.data_dir / "parcels" / payload.sha256 / "parcel.dat"
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == payload.sha256
    assert list((live_server.data_dir / "tmp").iterdir()) == []
