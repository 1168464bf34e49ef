"""The storage contract on local disk, plus the file layout and temp-file discipline."""

from __future__ import annotations

import fcntl
import hashlib
import os
import time
from pathlib import Path

import pytest

from bindle_server.errors import DigestMismatch
from bindle_server.storage import Stores, open_stores
from bindle_server.storage.atomic import TEMP_PREFIX
from tests.storage.contract import DATA, SHA, InvoiceStoreContract, ParcelStoreContract, chunks_of


class TestLocalParcelStore(ParcelStoreContract):
    @pytest.fixture
    def stores(self, data_dir: Path) -> Stores:
        return open_stores(f"file://{data_dir}")


class TestLocalInvoiceStore(InvoiceStoreContract):
    @pytest.fixture
    def stores(self, data_dir: Path) -> Stores:
        return open_stores(str(data_dir))


@pytest.mark.anyio
async def test_parcels_and_invoices_use_the_reference_layout(data_dir: Path) -> None:
    stores = open_stores(str(data_dir))
    await stores.parcels.write(SHA, len(DATA), chunks_of(DATA))
    await stores.invoices.create("abc", b"doc")
    assert (data_dir / "parcels" / SHA / "parcel.dat").read_bytes() == DATA
    assert (data_dir / "invoices" / "abc" / "invoice.toml").read_bytes() == b"doc"


@pytest.mark.anyio
async def test_failed_write_leaves_no_temp_file_and_no_parcel_directory(data_dir: Path) -> None:
    stores = open_stores(str(data_dir))
    with pytest.raises(DigestMismatch):
        await stores.parcels.write(SHA, len(DATA), chunks_of(DATA[::-1]))
    assert list((data_dir / "tmp").iterdir()) == []
    assert list((data_dir / "parcels").iterdir()) == []


def test_stale_temp_files_are_swept_at_start_but_locked_ones_are_kept(data_dir: Path) -> None:
    open_stores(str(data_dir))
    staging = data_dir / "tmp"
    stale = staging / f"{TEMP_PREFIX}stale"
    stale.write_bytes(b"half an upload")
    live = staging / f"{TEMP_PREFIX}live"
    live.write_bytes(b"being written")
    old = time.time() - 3600
    for path in (stale, live):
        os.utime(path, (old, old))
    fd = os.open(live, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # what a writer in another process holds
        open_stores(str(data_dir))
        assert not stale.exists()
        assert live.exists()
    finally:
        os.close(fd)


@pytest.mark.anyio
async def test_stored_parcel_file_hashes_to_its_name(data_dir: Path) -> None:
    stores = open_stores(str(data_dir))
    await stores.parcels.write(SHA, len(DATA), chunks_of(DATA, 7777))
    stored = (data_dir / "parcels" / SHA / "parcel.dat").read_bytes()
    assert hashlib.sha256(stored).hexdigest() == SHA


def test_file_url_with_a_host_part_is_refused() -> None:
    with pytest.raises(ValueError, match="file:///"):
        open_stores("file://data")
