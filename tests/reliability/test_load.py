"""50 clients at once pushing overlapping bindles, with yanks and queries interleaved."""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from collections import Counter, defaultdict
from collections.abc import Callable

import httpx
import pytest
import tomli

from tests.factories import InvoiceDoc, ParcelData, make_invoice
from tests.servers import ServerProcess

CLIENTS = 50
BINDLES = 40
DURATION = 6.0  # seconds of load per run
POOL = [
    ParcelData(random.Random(n).randbytes(random.Random(-n).randrange(0, 200_000)))
    for n in range(30)
]


def _bindle(n: int) -> InvoiceDoc:
    """Bindle n lists three pool parcels, so bindles share parcels with each other."""
    picks = sorted({(n * 7 + k * 11) % len(POOL) for k in range(3)})
    return make_invoice(f"example.com/load/b{n}", "1.0.0", parcels=[POOL[i] for i in picks])


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_fifty_clients_get_one_winner_per_id_no_5xx_and_intact_parcels(
    server_factory: Callable[..., ServerProcess], workers: int
) -> None:
    server = server_factory(None, "--workers", str(workers))
    statuses: Counter[tuple[str, int]] = Counter()
    winners: defaultdict[str, int] = defaultdict(int)
    attempts: defaultdict[str, int] = defaultdict(int)
    uploaded: set[str] = set()

    async def client_loop(seed: int, client: httpx.AsyncClient) -> None:
        rng = random.Random(seed)
        # Every client opens by pushing two bindles that two or three others push at the
        # same moment, so that each id is contested however slow the machine is.
        # Then DURATION seconds of pushes, yanks and queries at random.
        opening = [seed % BINDLES, (seed + BINDLES // 2) % BINDLES]
        deadline = None
        while deadline is None or time.monotonic() < deadline:
            if opening:
                n, action = opening.pop(), 1.0  # a push
                if not opening:
                    deadline = time.monotonic() + DURATION
            else:
                n, action = rng.randrange(BINDLES), rng.random()
            doc = _bindle(n)
            if action < 0.1:
                response = await client.delete(f"/_i/{doc.bindle_id}")
                statuses[("yank", response.status_code)] += 1
                continue
            if action < 0.25:
                response = await client.get("/_q", params={"q": "load", "l": "20"})
                statuses[("query", response.status_code)] += 1
                continue
            created = await client.post("/_i", content=doc.toml())
            statuses[("create", created.status_code)] += 1
            attempts[doc.bindle_id] += 1
            if created.status_code in (201, 202):
                winners[doc.bindle_id] += 1
            missing = await client.get(f"/_r/missing/{doc.bindle_id}")
            statuses[("missing", missing.status_code)] += 1
            if missing.status_code != 200:
                continue  # yanked meanwhile
            for label in tomli.loads(missing.text)["missing"]:
                p = next(p for p in doc.parcels if p.sha256 == label["sha256"])
                upload = await client.post(f"/_i/{doc.bindle_id}@{p.sha256}", content=p.data)
                statuses[("upload", upload.status_code)] += 1
                if upload.status_code == 200:
                    uploaded.add(p.sha256)

    async def main() -> None:
        limits = httpx.Limits(max_connections=CLIENTS)
        async with httpx.AsyncClient(base_url=server.url, timeout=60, limits=limits) as client:
            await asyncio.gather(*(client_loop(seed, client) for seed in range(CLIENTS)))

    asyncio.run(main())

    assert not [key for key in statuses if key[1] >= 500], statuses
    allowed = {
        "create": {201, 202, 409},
        "missing": {200, 403},
        "upload": {200, 403, 409},
        "yank": {200, 404},
        "query": {200},
    }
    assert all(status in allowed[kind] for kind, status in statuses), statuses
    contested = [bindle_id for bindle_id, count in attempts.items() if count > 1]
    assert len(contested) > BINDLES // 2  # the races really happened
    for bindle_id in attempts:
        assert winners[bindle_id] == 1, f"{bindle_id}: {winners[bindle_id]} winners"
        stored = httpx.get(f"{server.url}/_i/{bindle_id}", params={"yanked": "true"})
        assert stored.status_code == 200
    for sha256 in uploaded:
        data = (server.data_dir / "parcels" / sha256 / "parcel.dat").read_bytes()
        assert hashlib.sha256(data).hexdigest() == sha256
    for entry in (server.data_dir / "parcels").iterdir():
        data = (entry / "parcel.dat").read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry.name
    print(f"load ({workers} worker(s)): {sum(statuses.values())} requests, {dict(statuses)}")
