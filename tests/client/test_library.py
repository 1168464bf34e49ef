"""Every protocol call of the sync and async clients against a live server."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bindle_server.client import (
    AsyncBindleClient,
    BadRequest,
    BindleClient,
    BindleYanked,
    InvalidInput,
    InvoiceExists,
    InvoiceNotFound,
    ParcelExists,
    ParcelNotFound,
    Unprocessable,
)
from bindle_server.model import SignatureRole, parse_invoice
from bindle_server.signing import signature_verifies
from tests.factories import make_invoice, parcel
from tests.servers import ServerProcess


def test_sync_client_creates_uploads_downloads_queries_and_yanks(
    live_server: ServerProcess, tmp_path: Path
) -> None:
    first, second = parcel("first parcel", name="a.txt"), parcel(b"\x00second" * 1000)
    doc = make_invoice("example.com/lib", "1.2.3+build.4", parcels=[first, second])
    source = tmp_path / "second.bin"
    source.write_bytes(second.data)
    with BindleClient(live_server.url) as client:
        created = client.create_invoice(doc.toml())
        assert not created.complete
        assert [label.sha256 for label in created.missing] == [first.sha256, second.sha256]
        assert created.invoice.signature is not None
        assert created.invoice.signature[-1].role is SignatureRole.HOST
        assert signature_verifies(created.invoice, created.invoice.signature[-1])

        with pytest.raises(InvoiceExists):
            client.create_invoice(doc.toml())
        with pytest.raises(ParcelNotFound):
            client.download_parcel(doc.bindle_id, first.sha256, io.BytesIO())
        assert not client.parcel_exists(doc.bindle_id, first.sha256)

        client.upload_parcel(doc.bindle_id, first.sha256, first.data)
        assert client.missing_parcels(doc.bindle_id)[0].sha256 == second.sha256
        client.upload_parcel(doc.bindle_id, second.sha256, source, size=second.size)
        assert client.missing_parcels(doc.bindle_id) == []
        assert client.parcel_exists(doc.bindle_id, second.sha256)
        with pytest.raises(ParcelExists):
            client.upload_parcel(doc.bindle_id, first.sha256, io.BytesIO(first.data))

        stream = io.BytesIO()
        label = client.download_parcel(doc.bindle_id, first.sha256, stream)
        assert stream.getvalue() == first.data and label.name == "a.txt"
        target = tmp_path / "out" / "second.bin"
        target.parent.mkdir()
        client.download_parcel(doc.bindle_id, second.sha256, target)
        assert target.read_bytes() == second.data
        assert [p.name for p in target.parent.iterdir()] == ["second.bin"]

        invoice = client.get_invoice(doc.bindle_id)
        assert invoice == created.invoice
        page = client.query("example.com/lib", "^1.2")
        assert (page.total, page.more, [i.bindle_id for i in page.invoices]) == (
            1,
            False,
            [invoice.bindle_id],
        )
        keys = client.host_keys()
        assert [entry.key for entry in keys.entries] == [(invoice.signature or [])[-1].key]

        client.yank_invoice(doc.bindle_id)
        client.yank_invoice(doc.bindle_id)  # a no-op the second time
        with pytest.raises(BindleYanked):
            client.get_invoice(doc.bindle_id)
        assert client.get_invoice(doc.bindle_id, yanked=True).is_yanked
        assert client.query("example.com/lib").total == 0
        assert client.query("example.com/lib", yanked=True).total == 1
        yanked_copy = io.BytesIO()
        client.download_parcel(doc.bindle_id, first.sha256, yanked_copy, yanked=True)
        assert yanked_copy.getvalue() == first.data


def test_sync_client_raises_typed_errors_for_bad_requests(live_server: ServerProcess) -> None:
    listed = parcel("listed")
    doc = make_invoice("example.com/errors", "1.0.0", parcels=[listed])
    with BindleClient(live_server.url) as client:
        client.create_invoice(doc.toml())
        with pytest.raises(InvoiceNotFound):
            client.get_invoice("example.com/nothing/1.0.0")
        with pytest.raises(InvoiceNotFound):
            client.missing_parcels("example.com/nothing/1.0.0")
        with pytest.raises(BadRequest, match="not listed"):
            client.upload_parcel(doc.bindle_id, parcel("other").sha256, b"other")
        with pytest.raises(BadRequest):
            client.upload_parcel(doc.bindle_id, listed.sha256, b"not the listed bytes")
        with pytest.raises(Unprocessable):
            client.create_invoice(make_invoice("example.com/y", "1.0.0", yanked=True).toml())
        with pytest.raises(InvalidInput):
            client.get_invoice("no-version")
        with pytest.raises(InvalidInput):
            client.download_parcel(doc.bindle_id, "not-a-sha", io.BytesIO())
        with pytest.raises(InvalidInput, match="not listed"):
            client.download_parcel(doc.bindle_id, parcel("other").sha256, io.BytesIO())


def test_paged_query_walks_every_page_in_both_clients(live_server: ServerProcess) -> None:
    names = [f"example.com/paged-{index:02d}" for index in range(7)]
    with BindleClient(live_server.url) as client:
        for name in names:
            client.create_invoice(make_invoice(name, "1.0.0").toml())
        first = client.query("paged", limit=3)
        assert (first.total, first.more, len(first.invoices), first.next_offset) == (7, True, 3, 3)
        found = [invoice.bindle.name for invoice in client.iter_query("paged", page_size=3)]
    assert found == names

    async def collect() -> list[str]:
        async with AsyncBindleClient(live_server.url) as client:
            return [i.bindle.name async for i in client.iter_query("paged", page_size=2)]

    assert asyncio.run(collect()) == names


def test_async_client_makes_every_call(live_server: ServerProcess, tmp_path: Path) -> None:
    payload = parcel(bytes(range(256)) * 4096, name="blob.bin")  # 1 MiB
    streamed = parcel(b"streamed " * 10000, name="streamed.txt")
    doc = make_invoice("example.com/async", "0.1.0", parcels=[payload, streamed])
    source = tmp_path / "blob.bin"
    source.write_bytes(payload.data)
    target = tmp_path / "copy.bin"

    class Sink:
        def __init__(self) -> None:
            self.data = bytearray()

        async def write(self, data: bytes) -> None:
            self.data.extend(data)

    async def scenario() -> Sink:
        sink = Sink()
        async with AsyncBindleClient(live_server.url) as client:
            created = await client.create_invoice(parse_invoice(doc.toml()))
            assert [label.sha256 for label in created.missing] == [payload.sha256, streamed.sha256]
            assert not await client.parcel_exists(doc.bindle_id, payload.sha256)
            await client.upload_parcel(doc.bindle_id, payload.sha256, source, size=payload.size)

            async def chunks() -> AsyncIterator[bytes]:
                for start in range(0, streamed.size, 4096):
                    yield streamed.data[start : start + 4096]

            await client.upload_parcel(doc.bindle_id, streamed.sha256, chunks())
            assert await client.missing_parcels(doc.bindle_id) == []
            await client.download_parcel(doc.bindle_id, payload.sha256, target)
            await client.download_parcel(doc.bindle_id, payload.sha256, sink)
            assert (await client.query("async")).total == 1
            assert len((await client.host_keys()).entries) == 1
            await client.yank_invoice(doc.bindle_id)
            with pytest.raises(BindleYanked):
                await client.get_invoice(doc.bindle_id)
            assert (await client.get_invoice(doc.bindle_id, yanked=True)).is_yanked
        return sink

    sink = asyncio.run(scenario())
    assert target.read_bytes() == payload.data
    assert bytes(sink.data) == payload.data
