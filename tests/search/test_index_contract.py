"""What every Index backend does, run on SQLite and on PostgreSQL alike."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from dataclasses import replace

import pytest

from bindle_server.search import Index, IndexEntry, Query
from bindle_server.search.registry import open_index

pytestmark = pytest.mark.anyio


def entry(name: str, version: str, yanked: bool = False) -> IndexEntry:
    document = json.dumps({"bindle": {"name": name, "version": version}, "yanked": yanked})
    return IndexEntry(f"key:{name}/{version}", name, version, yanked, document)


def ids(documents: list[str]) -> list[str]:
    found = [json.loads(document)["bindle"] for document in documents]
    return [f"{bindle['name']}/{bindle['version']}" for bindle in found]


async def test_put_upserts_by_key_and_results_come_in_byte_order(index: Index) -> None:
    for name in ("b/x", "a/x", "B/x", "a-x", "a/x"):
        await index.put(entry(name, "1.0.0"))
    await index.put(entry("a/x", "1.0.0", yanked=True))
    page = await index.query(Query(yanked=True))
    assert ids(page.documents) == ["B/x/1.0.0", "a-x/1.0.0", "a/x/1.0.0", "b/x/1.0.0"]
    assert json.loads(page.documents[2])["yanked"] is True
    assert await index.count() == 4
    assert (await index.yanked_by_key())["key:a/x/1.0.0"] is True


async def test_yanked_entries_are_left_out_unless_asked_for(index: Index) -> None:
    await index.put(entry("app", "1.0.0"))
    await index.put(entry("app", "2.0.0", yanked=True))
    assert ids((await index.query(Query())).documents) == ["app/1.0.0"]
    assert (await index.query(Query(yanked=True))).total == 2


async def test_terms_must_all_appear_in_the_name(index: Index) -> None:
    for name in ("example.com/web", "example.com/worker", "other.org/web", "100%_web"):
        await index.put(entry(name, "1.0.0"))
    page = await index.query(Query(terms=("example", "web")))
    assert ids(page.documents) == ["example.com/web/1.0.0"]
    assert ids((await index.query(Query(terms=("%_",)))).documents) == ["100%_web/1.0.0"]


async def test_name_prefixes_are_literal_and_alternative(index: Index) -> None:
    for name in ("team_a/app", "teamXa/app", "team-b/app", "other/app"):
        await index.put(entry(name, "1.0.0"))
    page = await index.query(Query(name_prefixes=("team_a/", "team-b/")))
    assert ids(page.documents) == ["team-b/app/1.0.0", "team_a/app/1.0.0"]
    assert (await index.query(Query(name_prefixes=()))).total == 0


async def test_pages_carry_the_total(index: Index) -> None:
    for n in range(5):
        await index.put(entry("app", f"1.{n}.0"))
    page = await index.query(Query(offset=2, limit=2))
    assert page.total == 5
    assert ids(page.documents) == ["app/1.2.0", "app/1.3.0"]
    past_the_end = await index.query(Query(offset=5, limit=2))
    assert (past_the_end.total, past_the_end.documents) == (5, [])
    assert (await index.query(Query(limit=0))).documents == []


@pytest.fixture
def as_dead_writer(index: Index, monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """Call it to make the marks written from then on look like a dead process's."""
    dead_owner = f"{socket.gethostname()}:999999999:0"  # no such pid

    def die() -> None:
        monkeypatch.setattr(index, "owner", dead_owner)

    return die


async def test_stale_marks_skip_live_writers_and_return_dead_ones(
    index: Index, as_dead_writer: Callable[[], None]
) -> None:
    live = await index.begin("live-key")
    as_dead_writer()
    dead = [await index.begin("dead-key"), await index.begin("dead-key")]
    shared = await index.begin("live-key")  # a live writer also has this key
    stale = await index.stale_marks()
    assert {key: sorted(tokens) for key, tokens in stale.items()} == {"dead-key": sorted(dead)}
    await index.end(live)
    assert set(await index.stale_marks()) == {"dead-key", "live-key"}
    await index.settle("live-key", None, [shared])
    assert set(await index.stale_marks()) == {"dead-key"}


async def test_settle_applies_the_entry_and_drops_only_the_given_tokens(
    index: Index, as_dead_writer: Callable[[], None]
) -> None:
    await index.put(entry("app", "1.0.0"))
    as_dead_writer()
    first, second = await index.begin("key:app/1.0.0"), await index.begin("key:app/1.0.0")
    await index.settle("key:app/1.0.0", entry("app", "1.0.0", yanked=True), [first])
    assert await index.yanked_by_key() == {"key:app/1.0.0": True}
    assert await index.stale_marks() == {"key:app/1.0.0": [second]}
    await index.settle("key:app/1.0.0", None, [second])
    assert await index.count() == 0
    assert await index.stale_marks() == {}


async def test_put_drops_its_token_and_end_drops_an_unused_one(
    index: Index, as_dead_writer: Callable[[], None]
) -> None:
    as_dead_writer()
    used, unused = await index.begin("key:app/1.0.0"), await index.begin("key:other")
    await index.put(entry("app", "1.0.0"), used)
    assert await index.stale_marks() == {"key:other": [unused]}
    await index.end(unused)
    assert await index.stale_marks() == {}


async def test_clear_removes_entries_and_marks(index: Index) -> None:
    await index.put(entry("app", "1.0.0"))
    await index.begin("key")
    await index.clear()
    assert await index.count() == 0
    assert (await index.query(Query(yanked=True))).total == 0


async def test_an_index_is_new_until_a_rebuild_filled_it_to_the_end(
    index: Index, index_location: tuple[str | None, str]
) -> None:
    assert index.is_new
    await index.put(entry("app", "1.0.0"))
    interrupted = await open_index(*index_location)  # as after a crash mid-rebuild
    try:
        assert interrupted.is_new
        assert await interrupted.count() == 1
    finally:
        await interrupted.close()
    await index.mark_filled("invoices")
    again = await open_index(*index_location)
    try:
        assert not again.is_new
        assert await again.count() == 1
        await again.clear()  # a rebuild starting over makes it new until it ends
    finally:
        await again.close()
    cleared = await open_index(*index_location)
    try:
        assert cleared.is_new
    finally:
        await cleared.close()


SHA_A, SHA_B, SHA_C = ("a" * 64, "b" * 64, "c" * 64)


async def test_parcel_facts_are_recorded_looked_up_and_removed(index: Index) -> None:
    assert await index.parcel_sizes([SHA_A, SHA_B]) == {}
    await index.add_parcels([(SHA_A, 10), (SHA_B, 0)])
    await index.add_parcels([(SHA_A, 10)])  # recording twice changes nothing
    assert await index.parcel_sizes([SHA_A, SHA_B, SHA_C, SHA_A]) == {SHA_A: 10, SHA_B: 0}
    await index.remove_parcel(SHA_A)
    assert await index.parcel_sizes([SHA_A, SHA_B]) == {SHA_B: 0}
    await index.clear()  # a rebuild of the invoice entries keeps the parcel facts
    assert await index.parcel_sizes([SHA_B]) == {SHA_B: 0}


async def test_many_parcels_are_looked_up_at_once(index: Index) -> None:
    digests = [f"{n:064x}" for n in range(2_345)]
    await index.add_parcels([(sha, n) for n, sha in enumerate(digests) if n % 3])
    found = await index.parcel_sizes(digests)
    assert found == {sha: n for n, sha in enumerate(digests) if n % 3}


async def test_parcel_facts_are_unknown_until_a_refill_ran_to_its_end(
    index_location: tuple[str | None, str],
) -> None:
    first = await open_index(*index_location)
    try:
        assert first.parcels_unknown
        await first.add_parcels([(SHA_A, 1)])
        await first.mark_filled("parcels")
    finally:
        await first.close()
    again = await open_index(*index_location)
    try:
        assert not again.parcels_unknown
        assert await again.parcel_sizes([SHA_A]) == {SHA_A: 1}
    finally:
        await again.close()


async def test_a_page_gives_each_invoice_as_stored_in_both_formats(index: Index) -> None:
    """Pages are written from the entries kept at write time (model/pages.py); one put
    without a TOML entry (a PostgreSQL row from before they were kept) gives ``""``."""
    for version in ("1.0.0", "2.0.0"):
        kept = entry("app", version)
        await index.put(replace(kept, toml_entry=f"[[invoices]]\nversion = {version!r}"))
    await index.put(entry("app", "3.0.0"))
    page = await index.query(Query(terms=("app",)))
    assert ids(page.documents) == ["app/1.0.0", "app/2.0.0", "app/3.0.0"]
    assert page.toml_entries == [
        "[[invoices]]\nversion = '1.0.0'",
        "[[invoices]]\nversion = '2.0.0'",
        "",
    ]
    assert (await index.query(Query(limit=0))).toml_entries == []
