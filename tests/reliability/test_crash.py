"""kill -9 at random points during uploads, creates and yanks; nothing acknowledged is lost.

Each round starts the server on the same data directory, checks everything acknowledged
so far, fires a burst of concurrent writes and kills the server (SIGKILL) at a random
moment of the burst. The seed is printed, so a failing run can be replayed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import random
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import tomli

from bindle_server.model import parse_invoice
from tests.factories import InvoiceDoc, ParcelData, as_submitted, make_invoice
from tests.servers import ServerProcess

# Each run draws a new seed (printed), so runs add up to far more than one run's kills;
# 30 keep this one test near a minute and a half on a 2-core machine.
KILLS = 30
TIME_BUDGET = 240.0  # seconds; the loop stops early rather than overrun the suite


@dataclass
class Ledger:
    """What the server acknowledged, and what it was asked to do."""

    invoices: dict[str, InvoiceDoc] = field(default_factory=dict)
    parcels: dict[str, ParcelData] = field(default_factory=dict)
    yanks: set[str] = field(default_factory=set)
    attempted: dict[str, tuple[InvoiceDoc, ParcelData]] = field(default_factory=dict)
    hashed: set[str] = field(default_factory=set)


def _parcel(rng: random.Random) -> ParcelData:
    return ParcelData(rng.randbytes(rng.choice([0, 1, 4096, 65536, 300_000, 1_200_000])))


async def _burst(
    server: ServerProcess, ledger: Ledger, rng: random.Random, round_: int, kill_after: float
) -> None:
    shared = rng.sample(
        sorted(ledger.parcels.values(), key=lambda p: p.sha256), k=min(2, len(ledger.parcels))
    )
    docs = []
    for n in range(3):
        parcels = [_parcel(rng), _parcel(rng), *shared[n % 2 : n % 2 + 1]]
        unique = list({p.sha256: p for p in parcels}.values())
        docs.append(make_invoice(f"example.com/crash/r{round_}", f"1.{n}.0", parcels=unique))
    yank_target = rng.choice(sorted(ledger.invoices)) if ledger.invoices else None

    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:

        async def push(doc: InvoiceDoc) -> None:
            response = await client.post("/_i", content=doc.toml())
            if response.status_code in (201, 202):
                ledger.invoices[doc.bindle_id] = doc
            for p in doc.parcels:
                ledger.attempted[p.sha256] = (doc, p)
                upload = await client.post(f"/_i/{doc.bindle_id}@{p.sha256}", content=p.data)
                if upload.status_code in (200, 409):
                    ledger.parcels[p.sha256] = p

        async def yank(bindle_id: str) -> None:
            if (await client.delete(f"/_i/{bindle_id}")).status_code == 200:
                ledger.yanks.add(bindle_id)

        async def quietly(work: Any) -> None:
            # The server died mid-request: nothing was acknowledged.
            with contextlib.suppress(httpx.TransportError):
                await work

        tasks = [asyncio.ensure_future(quietly(push(doc))) for doc in docs]
        if yank_target is not None:
            tasks.append(asyncio.ensure_future(quietly(yank(yank_target))))
        await asyncio.sleep(kill_after)
        os.kill(server.pid, signal.SIGKILL)
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=60)
    server.process.wait(10)


def _verify(server: ServerProcess, ledger: Ledger) -> None:
    data_dir = server.data_dir
    with httpx.Client(base_url=server.url, timeout=30) as client:
        # Every acknowledged invoice is intact, and yanked if its yank was acknowledged.
        for bindle_id, doc in ledger.invoices.items():
            response = client.get(f"/_i/{bindle_id}", params={"yanked": "true"})
            assert response.status_code == 200, f"acknowledged invoice {bindle_id} lost"
            stored = tomli.loads(response.text)
            yanked = stored.pop("yanked", False)
            assert as_submitted(stored) == doc.document()
            if bindle_id in ledger.yanks:
                assert yanked is True, f"acknowledged yank of {bindle_id} lost"

        # No parcel file is ever partial: every visible parcel hashes to its name.
        for entry in (data_dir / "parcels").iterdir():
            stored_file = entry / "parcel.dat"
            if entry.name in ledger.hashed or not stored_file.exists():
                continue
            digest = hashlib.sha256(stored_file.read_bytes()).hexdigest()
            assert digest == entry.name, f"parcel {entry.name} is visible but corrupt"
            ledger.hashed.add(entry.name)
        for sha256 in ledger.parcels:
            assert (data_dir / "parcels" / sha256 / "parcel.dat").exists(), f"parcel {sha256} lost"

        # An interrupted upload shows the parcel missing, and the retry succeeds.
        for sha256, (doc, p) in list(ledger.attempted.items()):
            if sha256 in ledger.parcels:
                continue
            if client.get(f"/_i/{doc.bindle_id}").status_code != 200:
                continue  # its invoice was never stored (or is yanked)
            missing = tomli.loads(client.get(f"/_r/missing/{doc.bindle_id}").text)["missing"]
            if sha256 in {label["sha256"] for label in missing}:
                retry = client.post(f"/_i/{doc.bindle_id}@{sha256}", content=p.data)
                assert retry.status_code == 200, retry.text
            ledger.parcels[sha256] = p
        ledger.attempted.clear()

        # The index agrees with the invoice files.
        on_disk = {}
        for entry in (data_dir / "invoices").iterdir():
            if not (entry / "invoice.toml").exists():
                # A writer killed after creating the invoice's directory and before
                # publishing into it: no invoice, which the server also sees.
                continue
            invoice = parse_invoice((entry / "invoice.toml").read_bytes())
            on_disk[str(invoice.bindle_id)] = invoice.is_yanked
        indexed: dict[str, bool] = {}
        offset = 0
        while True:
            page = tomli.loads(
                client.get("/_q", params={"yanked": "true", "l": "255", "o": str(offset)}).text
            )
            for invoice_doc in page["invoices"]:
                bindle = invoice_doc["bindle"]
                indexed[f"{bindle['name']}/{bindle['version']}"] = invoice_doc.get("yanked", False)
            offset += len(page["invoices"])
            if not page["more"]:
                break
        assert indexed == on_disk


@pytest.mark.slow
def test_kill_9_during_writes_never_loses_or_corrupts_acknowledged_data(
    server_factory: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    seed = random.randrange(2**32)
    print(f"crash loop seed: {seed}")
    rng = random.Random(seed)
    data_dir = tmp_path / "data"
    ledger = Ledger()
    deadline = time.monotonic() + TIME_BUDGET
    rounds = 0
    while rounds < KILLS and time.monotonic() < deadline:
        server = server_factory(data_dir)
        _verify(server, ledger)
        asyncio.run(_burst(server, ledger, rng, rounds, kill_after=rng.uniform(0.0, 0.35)))
        rounds += 1
    assert rounds >= KILLS, f"only {rounds} kills fitted in {TIME_BUDGET:.0f} s"
    final = server_factory(data_dir)
    _verify(final, ledger)
    assert list((data_dir / "tmp").iterdir()) == []  # temp files of killed writers swept
    final.stop()
    assert len(ledger.invoices) > KILLS  # the loop really stored things between kills
    print(
        f"crash loop: {rounds} kills; {len(ledger.invoices)} acknowledged invoices, "
        f"{len(ledger.parcels)} parcels, {len(ledger.yanks)} yanks intact"
    )
