"""The storage contract, written once; every backend's test module subclasses these suites."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator

import anyio
import pytest

from bindle_server.errors import DigestMismatch, ParcelNotFound, SizeMismatch
from bindle_server.storage import Stores

DATA = bytes(range(256)) * 9000  # a little over 2 MiB: several write blocks
SHA = hashlib.sha256(DATA).hexdigest()


async def chunks_of(data: bytes, size: int = 100_000) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def read_all(stores: Stores, sha256: str, start: int = 0, end: int | None = None) -> bytes:
    return b"".join([chunk async for chunk in stores.parcels.read(sha256, start, end)])


class ParcelStoreContract:
    """What every ParcelStore promises (see bindle_server/storage/base.py)."""

    @pytest.fixture
    def stores(self) -> Stores:
        raise NotImplementedError

    @pytest.mark.anyio
    async def test_written_parcel_exists_and_reads_back_exactly(self, stores: Stores) -> None:
        assert await stores.parcels.write(SHA, len(DATA), chunks_of(DATA)) is True
        assert await stores.parcels.exists(SHA)
        assert await read_all(stores, SHA) == DATA

    @pytest.mark.anyio
    async def test_read_returns_the_requested_byte_range(self, stores: Stores) -> None:
        await stores.parcels.write(SHA, len(DATA), chunks_of(DATA))
        assert await read_all(stores, SHA, 10, 20) == DATA[10:20]
        assert await read_all(stores, SHA, len(DATA) - 5) == DATA[-5:]
        assert await read_all(stores, SHA, 1_500_000, 2_100_000) == DATA[1_500_000:2_100_000]

    @pytest.mark.anyio
    async def test_wrong_digest_is_refused_and_leaves_parcel_missing(self, stores: Stores) -> None:
        wrong = DATA[::-1]
        with pytest.raises(DigestMismatch):
            await stores.parcels.write(SHA, len(wrong), chunks_of(wrong))
        assert not await stores.parcels.exists(SHA)
        with pytest.raises(ParcelNotFound):
            await read_all(stores, SHA)
        assert await stores.parcels.write(SHA, len(DATA), chunks_of(DATA)) is True

    @pytest.mark.anyio
    async def test_too_long_stream_is_cut_off_with_size_mismatch(self, stores: Stores) -> None:
        consumed = 0

        async def endless() -> AsyncIterator[bytes]:
            nonlocal consumed
            for _ in range(1000):
                consumed += 1
                yield b"\0" * 65536

        with pytest.raises(SizeMismatch):
            await stores.parcels.write(SHA, len(DATA), endless())
        assert consumed < 1000  # stopped as soon as the size was passed, not at the end
        assert not await stores.parcels.exists(SHA)

    @pytest.mark.anyio
    async def test_too_short_stream_is_refused(self, stores: Stores) -> None:
        with pytest.raises(SizeMismatch):
            await stores.parcels.write(SHA, len(DATA), chunks_of(DATA[:-1]))
        assert not await stores.parcels.exists(SHA)

    @pytest.mark.anyio
    async def test_interrupted_stream_leaves_nothing_and_retry_succeeds(
        self, stores: Stores
    ) -> None:
        async def broken() -> AsyncIterator[bytes]:
            yield DATA[:1_200_000]
            raise ConnectionError("client went away")

        with pytest.raises(ConnectionError):
            await stores.parcels.write(SHA, len(DATA), broken())
        assert not await stores.parcels.exists(SHA)
        assert await stores.parcels.write(SHA, len(DATA), chunks_of(DATA)) is True

    @pytest.mark.anyio
    async def test_concurrent_writes_of_one_parcel_store_it_once(self, stores: Stores) -> None:
        results: list[bool] = []

        async def write() -> None:
            results.append(await stores.parcels.write(SHA, len(DATA), chunks_of(DATA)))

        async with anyio.create_task_group() as group:
            for _ in range(8):
                group.start_soon(write)
        assert results.count(True) == 1
        assert hashlib.sha256(await read_all(stores, SHA)).hexdigest() == SHA

    @pytest.mark.anyio
    async def test_missing_returns_the_digests_not_stored(self, stores: Stores) -> None:
        await stores.parcels.write(SHA, len(DATA), chunks_of(DATA))
        other = hashlib.sha256(b"other").hexdigest()
        assert await stores.parcels.missing([SHA, other]) == {other}
        assert await stores.parcels.missing([]) == set()

    @pytest.mark.anyio
    async def test_empty_parcel_is_stored(self, stores: Stores) -> None:
        empty = hashlib.sha256(b"").hexdigest()
        assert await stores.parcels.write(empty, 0, chunks_of(b""))
        assert await read_all(stores, empty) == b""

    @pytest.mark.anyio
    async def test_size_is_the_stored_length_or_none(self, stores: Stores) -> None:
        assert await stores.parcels.size(SHA) is None
        await stores.parcels.write(SHA, len(DATA), chunks_of(DATA))
        assert await stores.parcels.size(SHA) == len(DATA)

    @pytest.mark.anyio
    async def test_stored_sizes_covers_only_stored_parcels(self, stores: Stores) -> None:
        await stores.parcels.write(SHA, len(DATA), chunks_of(DATA))
        other = hashlib.sha256(b"not stored").hexdigest()
        assert await stores.parcels.stored_sizes([SHA, other]) == {SHA: len(DATA)}

    @pytest.mark.anyio
    async def test_digests_lists_every_stored_parcel(self, stores: Stores) -> None:
        other = b"another parcel"
        await stores.parcels.write(SHA, len(DATA), chunks_of(DATA))
        await stores.parcels.write(hashlib.sha256(other).hexdigest(), len(other), chunks_of(other))
        listed = [sha async for sha in stores.parcels.digests()]
        assert sorted(listed) == sorted([SHA, hashlib.sha256(other).hexdigest()])

    @pytest.mark.anyio
    async def test_quarantined_parcel_is_missing_and_can_be_stored_again(
        self, stores: Stores
    ) -> None:
        await stores.parcels.write(SHA, len(DATA), chunks_of(DATA))
        await stores.parcels.quarantine(SHA)
        assert not await stores.parcels.exists(SHA)
        assert await stores.parcels.missing([SHA]) == {SHA}
        assert await stores.parcels.write(SHA, len(DATA), chunks_of(DATA)) is True
        assert await read_all(stores, SHA) == DATA


class InvoiceStoreContract:
    """What every InvoiceStore promises (see bindle_server/storage/base.py)."""

    @pytest.fixture
    def stores(self) -> Stores:
        raise NotImplementedError

    @pytest.mark.anyio
    async def test_create_then_read(self, stores: Stores) -> None:
        assert await stores.invoices.create("k1", b"document one")
        assert await stores.invoices.read("k1") == b"document one"
        assert await stores.invoices.read("k2") is None

    @pytest.mark.anyio
    async def test_create_never_overwrites(self, stores: Stores) -> None:
        assert await stores.invoices.create("k1", b"first")
        assert await stores.invoices.create("k1", b"second") is False
        assert await stores.invoices.read("k1") == b"first"

    @pytest.mark.anyio
    async def test_concurrent_creates_of_one_key_have_exactly_one_winner(
        self, stores: Stores
    ) -> None:
        results: dict[int, bool] = {}

        async def create(n: int) -> None:
            results[n] = await stores.invoices.create("k", f"document {n}".encode())

        async with anyio.create_task_group() as group:
            for n in range(20):
                group.start_soon(create, n)
        winners = [n for n, won in results.items() if won]
        assert len(winners) == 1
        assert await stores.invoices.read("k") == f"document {winners[0]}".encode()

    @pytest.mark.anyio
    async def test_replace_swaps_the_document(self, stores: Stores) -> None:
        await stores.invoices.create("k1", b"live")
        await stores.invoices.replace("k1", b"yanked")
        assert await stores.invoices.read("k1") == b"yanked"

    @pytest.mark.anyio
    async def test_a_replace_or_delete_changes_the_change_mark(self, stores: Stores) -> None:
        await stores.invoices.create("k1", b"live")
        before = stores.invoices.change_mark()
        if before is None:
            pytest.skip("this store offers no change mark (nothing is cached for it)")
        await stores.invoices.replace("k1", b"yanked")
        yanked = stores.invoices.change_mark()
        assert yanked != before
        await stores.invoices.delete("k1")
        assert stores.invoices.change_mark() not in (before, yanked)

    @pytest.mark.anyio
    async def test_scan_yields_every_invoice(self, stores: Stores) -> None:
        for n in range(5):
            await stores.invoices.create(f"k{n}", f"d{n}".encode())
        scanned = {key: document async for key, document in stores.invoices.scan()}
        assert scanned == {f"k{n}": f"d{n}".encode() for n in range(5)}
