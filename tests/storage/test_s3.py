"""The storage contract on an S3-compatible store (Ceph RGW), plus what only S3 has."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest

from bindle_server.errors import DigestMismatch, StorageUnavailable
from bindle_server.storage import Stores, open_stores
from bindle_server.storage.s3 import PART_SIZE, S3Location, S3ParcelStore
from tests.rgw import S3Server
from tests.servers import free_port
from tests.storage.contract import (
    InvoiceStoreContract,
    ParcelStoreContract,
    chunks_of,
    read_all,
)


@pytest.fixture
async def s3_stores(s3_url: str) -> AsyncIterator[Stores]:
    stores = open_stores(s3_url)
    await stores.start()
    yield stores
    await stores.close()


class TestS3ParcelStore(ParcelStoreContract):
    @pytest.fixture
    def stores(self, s3_stores: Stores) -> Stores:
        return s3_stores


class TestS3InvoiceStore(InvoiceStoreContract):
    @pytest.fixture
    def stores(self, s3_stores: Stores) -> Stores:
        return s3_stores


# Three parts of the smallest part size, plus a tail: the multipart path.
LARGE = bytes(range(251)) * ((3 * PART_SIZE + 12345) // 251)
LARGE_SHA = hashlib.sha256(LARGE).hexdigest()


def _pending_uploads(s3_server: S3Server, bucket: str) -> list[dict[str, Any]]:
    client = s3_server.client()
    try:
        uploads: list[dict[str, Any]] = client.list_multipart_uploads(Bucket=bucket).get(
            "Uploads", []
        )
        return uploads
    finally:
        client.close()


@pytest.mark.anyio
async def test_large_parcel_goes_up_in_parts_and_reads_back_in_ranges(
    s3_stores: Stores, s3_server: S3Server, s3_bucket: str
) -> None:
    assert await s3_stores.parcels.write(LARGE_SHA, len(LARGE), chunks_of(LARGE, 1 << 20))
    assert await s3_stores.parcels.size(LARGE_SHA) == len(LARGE)
    assert await read_all(s3_stores, LARGE_SHA) == LARGE
    middle = (PART_SIZE - 10, 2 * PART_SIZE + 10)  # across part boundaries
    assert await read_all(s3_stores, LARGE_SHA, *middle) == LARGE[middle[0] : middle[1]]
    assert _pending_uploads(s3_server, s3_bucket) == []
    # The object sits where the disk layout puts the file.
    client = s3_server.client()
    try:
        head = client.head_object(Bucket=s3_bucket, Key=f"bindle/parcels/{LARGE_SHA}/parcel.dat")
    finally:
        client.close()
    assert head["ContentLength"] == len(LARGE)


@pytest.mark.anyio
async def test_large_parcel_with_wrong_bytes_leaves_no_object_and_no_pending_upload(
    s3_stores: Stores, s3_server: S3Server, s3_bucket: str
) -> None:
    damaged = bytearray(LARGE)
    damaged[PART_SIZE + 1] ^= 0xFF
    with pytest.raises(DigestMismatch):
        await s3_stores.parcels.write(LARGE_SHA, len(LARGE), chunks_of(bytes(damaged), 1 << 20))
    assert not await s3_stores.parcels.exists(LARGE_SHA)
    assert _pending_uploads(s3_server, s3_bucket) == []


@pytest.mark.anyio
async def test_cancelled_large_upload_is_aborted(
    s3_stores: Stores, s3_server: S3Server, s3_bucket: str
) -> None:
    async def stalls_after_two_parts() -> AsyncIterator[bytes]:
        async for chunk in chunks_of(LARGE[: 2 * PART_SIZE + 5], 1 << 20):
            yield chunk
        await anyio.sleep(3600)

    with anyio.move_on_after(5) as scope:
        await s3_stores.parcels.write(LARGE_SHA, len(LARGE), stalls_after_two_parts())
    assert scope.cancelled_caught
    assert not await s3_stores.parcels.exists(LARGE_SHA)
    assert _pending_uploads(s3_server, s3_bucket) == []


@pytest.mark.anyio
async def test_abandoned_uploads_are_swept_but_recent_ones_kept(
    s3_stores: Stores, s3_server: S3Server, s3_bucket: str
) -> None:
    # What a node killed mid-upload leaves: a multipart upload nobody will complete.
    client = s3_server.client()
    try:
        key = f"bindle/parcels/{LARGE_SHA}/parcel.dat"
        client.create_multipart_upload(Bucket=s3_bucket, Key=key)
    finally:
        client.close()
    parcels = s3_stores.parcels
    assert isinstance(parcels, S3ParcelStore)
    assert await parcels.sweep_abandoned_uploads() == 0  # too recent: maybe a live node's
    assert len(_pending_uploads(s3_server, s3_bucket)) == 1
    assert await parcels.sweep_abandoned_uploads(older_than=timedelta(0)) == 1
    assert _pending_uploads(s3_server, s3_bucket) == []


@pytest.mark.anyio
async def test_missing_bucket_is_refused_at_start_in_one_line(
    s3_server: S3Server, s3_bucket: str
) -> None:
    stores = open_stores(s3_server.url(f"{s3_bucket}-absent"))
    try:
        with pytest.raises(StorageUnavailable, match="does not exist"):
            await stores.start()
    finally:
        await stores.close()


@pytest.mark.anyio
async def test_unreachable_store_is_storage_unavailable(s3_bucket: str) -> None:
    stores = open_stores(f"s3://{s3_bucket}?endpoint=http://127.0.0.1:{free_port()}")
    try:
        with pytest.raises(StorageUnavailable, match="cannot be reached"):
            await stores.start()
    finally:
        await stores.close()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("s3://", "s3://BUCKET"),
        ("s3://bucket?endpont=http://x", "unknown option"),
        ("s3://bucket?addressing=sideways", "addressing"),
    ],
)
def test_bad_s3_urls_say_what_is_wrong(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        open_stores(url)


def test_url_options_and_defaults() -> None:
    location = S3Location.from_url("s3://b/some/prefix/?endpoint=http://h:1&region=eu-1")
    assert (location.bucket, location.prefix) == ("b", "some/prefix/")
    assert (location.endpoint, location.region, location.addressing) == (
        "http://h:1",
        "eu-1",
        "path",
    )
    assert S3Location.from_url("s3://b").prefix == ""


def test_a_missing_aiobotocore_names_the_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    for module in ("s3", "s3_bucket", "s3_invoices"):
        monkeypatch.delitem(sys.modules, f"bindle_server.storage.{module}", raising=False)
    monkeypatch.setitem(sys.modules, "aiobotocore.session", None)  # `import` now fails
    with pytest.raises(ValueError, match=r"pip install 'bindle-server\[s3\]'"):
        open_stores("s3://bucket/prefix")


def test_serve_refuses_an_s3_url_without_the_extra_in_one_line(tmp_path: Path) -> None:
    blocked = (
        "import sys; sys.modules['aiobotocore.session'] = None; "
        "from bindle_server.cli.server import main; main()"
    )
    result = subprocess.run(
        [sys.executable, "-c", blocked, "--directory", str(tmp_path), "--storage", "s3://b"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "pip install 'bindle-server[s3]'" in result.stderr
    assert "Traceback" not in result.stderr
