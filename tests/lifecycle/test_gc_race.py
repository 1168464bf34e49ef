"""Pushes, downloads and purges race garbage collection; every acknowledged bindle stays whole.

The server runs as its own process with atomic pushes; this test process plays the
operator beside it (purges and a collector loop with no grace period, on the same data
directory), as `bindle-server purge` and `gc` would. Parcels come from a small shared
pool, so the collector keeps finding pool parcels unreferenced just as new invoices list
them again: the race the index's condemn/reference transactions exist for.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Callable

import anyio
import httpx
import pytest

from bindle_server.backend import open_backend
from bindle_server.lifecycle.collector import CollectorSettings, collect
from bindle_server.model import BindleId
from bindle_server.service import BindleService
from tests.factories import ParcelData, make_invoice, parcel
from tests.servers import ServerProcess

pytestmark = pytest.mark.slow
ROUNDS = 60
DEADLINE = 120.0
POOL = [parcel(f"pool parcel {n} " * 2000) for n in range(6)]
TOML = {"Content-Type": "application/toml"}


async def _push(client: httpx.AsyncClient, bindle_id: str, parcels: list[ParcelData]) -> bool:
    """Push until the server shows the bindle (atomic mode); True when acknowledged."""
    name, _, version = bindle_id.rpartition("/")
    created = await client.post(
        "/_i", content=make_invoice(name, version, parcels).toml(), headers=TOML
    )
    assert created.status_code in (201, 202), created.text
    by_digest = {p.sha256: p for p in parcels}
    for _ in range(10):
        missing = (await client.get(f"/_r/missing/{bindle_id}")).text
        digests = [d for d in by_digest if d in missing]
        for digest in digests:
            upload = await client.post(f"/_i/{bindle_id}@{digest}", content=by_digest[digest].data)
            assert upload.status_code in (200, 409), upload.text
        if (await client.get(f"/_i/{bindle_id}")).status_code == 200:
            return True
    return False


async def _check_whole(
    client: httpx.AsyncClient, bindle_id: str, parcels: list[ParcelData]
) -> None:
    assert (await client.get(f"/_i/{bindle_id}")).status_code == 200, bindle_id
    for p in parcels:
        download = await client.get(f"/_i/{bindle_id}@{p.sha256}")
        assert download.status_code == 200, (bindle_id, p.sha256, download.text)
        assert hashlib.sha256(download.content).hexdigest() == p.sha256


def test_pushes_and_downloads_racing_gc_leave_every_acknowledged_bindle_whole(
    server_factory: Callable[..., ServerProcess],
) -> None:
    server = server_factory(None, "--atomic-push")
    rng = random.Random(7)
    pool_collected: set[str] = set()

    async def main() -> tuple[int, int]:
        acknowledged: dict[str, list[ParcelData]] = {}
        collections = 0
        stop = anyio.Event()
        async with open_backend(f"file://{server.data_dir}", None) as backend:
            operator = BindleService(backend.stores, backend.index, None)

            async def collector() -> None:
                nonlocal collections
                while not stop.is_set():
                    await collect(operator, CollectorSettings(grace=0.0))
                    collections += 1
                    absent = await backend.stores.parcels.missing(p.sha256 for p in POOL)
                    pool_collected.update(absent)
                    await anyio.sleep(0)

            async with (
                httpx.AsyncClient(base_url=server.url, timeout=60) as client,
                anyio.create_task_group() as group,
            ):
                group.start_soon(collector)
                deadline = time.monotonic() + DEADLINE
                for round_ in range(ROUNDS):
                    if time.monotonic() > deadline:
                        break
                    bindle_id = f"race/app/1.0.{round_}"
                    parcels = [*rng.sample(POOL, 2), parcel(f"unique {round_}")]
                    if await _push(client, bindle_id, parcels):
                        acknowledged[bindle_id] = parcels
                    for other_id, other in list(acknowledged.items())[-3:]:
                        await _check_whole(client, other_id, other)
                    while len(acknowledged) > 2:
                        victim = rng.choice(sorted(acknowledged))
                        await operator.purge(BindleId.parse(victim))
                        del acknowledged[victim]
                stop.set()
            async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
                for bindle_id, parcels in acknowledged.items():
                    await _check_whole(client, bindle_id, parcels)
        return len(acknowledged), collections

    kept, collections = anyio.run(main)
    assert kept == 2 and collections > 5, (kept, collections)
    # The race was run: shared parcels were collected while later invoices listed them.
    assert len(pool_collected) >= 3, pool_collected
    assert "Traceback" not in server.log()
