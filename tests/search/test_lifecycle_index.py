"""The index's lifecycle facts on SQLite and PostgreSQL: states, references, condemnations."""

from __future__ import annotations

import asyncio
import json
import socket
from dataclasses import replace

import pytest

from bindle_server.search import Index, IndexEntry, InvoiceState, Query

pytestmark = pytest.mark.anyio

A, B, C = ("a" * 64, "b" * 64, "c" * 64)


def entry(
    name: str,
    parcels: tuple[str, ...],
    state: InvoiceState = InvoiceState.COMMITTED,
    awaiting: tuple[str, ...] = (),
) -> IndexEntry:
    document = json.dumps({"bindle": {"name": name, "version": "1.0.0"}})
    return IndexEntry(
        f"key:{name}", name, "1.0.0", False, document, state, 1.0, None, parcels, awaiting
    )


async def test_a_referenced_parcel_cannot_be_condemned(index: Index) -> None:
    await index.put(entry("app", (A, B)))
    assert await index.unreferenced([A, B, C]) == {C}
    assert await index.condemn([A, B, C]) == [C]
    assert await index.condemned([A, B, C]) == {C}
    await index.release([C])
    assert await index.condemned([C]) == set()


async def test_recording_references_reports_parcels_a_live_collector_condemned(
    index: Index,
) -> None:
    assert await index.condemn([A]) == [A]
    # The create's transaction sees the condemnation: it must report A missing.
    assert await index.put(entry("app", (A, B))) == {A}
    # And from then on A is referenced: a new condemnation passes it over.
    await index.release([A])
    assert await index.condemn([A, B]) == []


async def test_condemnations_of_a_dead_collector_do_not_count_and_are_found_stale(
    index: Index, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(index, "owner", f"{socket.gethostname()}:999999999:0")
    await index.condemn([A])
    monkeypatch.undo()
    assert await index.condemned([A]) == set()
    assert await index.stale_condemned() == [A]


async def test_pending_entries_are_hidden_and_the_last_arrival_commits_them(
    index: Index,
) -> None:
    await index.put(entry("app", (A, B), InvoiceState.PENDING, awaiting=(A, B)))
    assert (await index.query(Query())).total == 0
    status = await index.status("key:app")
    assert status is not None and (status.state, status.awaiting) == (InvoiceState.PENDING, 2)
    assert await index.arrived([A]) == []
    assert await index.arrived([B, C]) == ["key:app"]
    status = await index.status("key:app")
    assert status is not None and status.state is InvoiceState.COMMITTED
    assert (await index.query(Query())).total == 1


async def test_claimed_expired_entries_are_removed_with_their_references(index: Index) -> None:
    await index.put(entry("stale", (A,), InvoiceState.PENDING, awaiting=(A,)))
    await index.put(entry("fresh", (B,), InvoiceState.PENDING, awaiting=(B,)))
    assert await index.claim_expired(3600.0) == []
    claimed = await index.claim_expired(0.0)
    assert sorted(key for key, _ in claimed) == ["key:fresh", "key:stale"]
    status = await index.status("key:stale")
    assert status is not None and status.state is InvoiceState.REMOVING
    await index.remove(claimed)
    assert await index.status("key:stale") is None
    assert await index.unreferenced([A, B]) == {A, B}
    assert await index.stale_marks() == {}


async def test_a_yank_keeps_the_references(index: Index) -> None:
    committed = entry("app", (A,))
    await index.put(committed)
    await index.put(replace(committed, yanked=True, parcels=None))
    assert await index.unreferenced([A]) == set()


async def test_one_lease_holder_at_a_time_and_a_dead_holder_is_replaced(
    index: Index, monkeypatch: pytest.MonkeyPatch
) -> None:
    me, other_node = index.owner, "other-node:1:1"
    assert await index.acquire_lease("gc") is None
    monkeypatch.setattr(index, "owner", other_node)
    assert await index.acquire_lease("gc") == me  # held by a live process
    monkeypatch.setattr(index, "owner", me)
    await index.release_lease("gc")
    monkeypatch.setattr(index, "owner", other_node)
    assert await index.acquire_lease("gc") is None
    monkeypatch.setattr(index, "owner", me)
    assert await index.acquire_lease("gc") == other_node  # another host's, still fresh
    monkeypatch.setattr(index, "owner", other_node)
    await index.release_lease("gc")
    monkeypatch.setattr(index, "owner", f"{socket.gethostname()}:999999999:0")
    assert await index.acquire_lease("gc") is None
    monkeypatch.setattr(index, "owner", me)
    assert await index.acquire_lease("gc") is None  # the dead holder's lease is taken over


@pytest.mark.parametrize("state", [InvoiceState.PENDING, InvoiceState.COMMITTED])
async def test_last_two_parcels_arriving_at_once_complete_the_invoice_once(
    index: Index, state: InvoiceState
) -> None:
    # Each arrival is its own transaction; on PostgreSQL they overlap (two connections).
    for n in range(20):
        name = f"race{n}"
        await index.put(entry(name, (A, B), state, awaiting=(A, B)))
        first, second = await asyncio.gather(index.arrived([A]), index.arrived([B]))
        assert first + second == [f"key:{name}"], n
        status = await index.status(f"key:{name}")
        assert status is not None and status.state is InvoiceState.COMMITTED


async def test_writes_at_once_share_the_embedded_connection_safely(index: Index) -> None:
    # Many at once, as creates under load do: a statement must never be reset by one
    # caller while the connection runs it for another (sqlite3 "API misuse").
    await index.put(entry("app", (A, B), InvoiceState.COMMITTED))

    async def one(n: int) -> None:
        await index.await_parcels("key:app", [A, B, C])
        await index.end(await index.begin(f"key:other{n}"))
        await index.add_parcels([(A, 1)])

    await asyncio.gather(*(one(n) for n in range(300)))
    assert await index.arrived([A, B, C]) == ["key:app"]
