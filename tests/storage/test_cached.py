"""Small files read on the event loop only from the kernel's caches (storage/cached.py), and
the local invoice store reading that way without a worker-thread hop."""

from __future__ import annotations

import os
import platform
import re
import sys
from pathlib import Path

import pytest

from bindle_server.storage import ParcelStore, open_stores
from bindle_server.storage.base import RecordKind
from bindle_server.storage.cached import read_cached, stat_cached, usable
from tests.hops import CountingExecutor
from tests.storage.contract import DATA, SHA, chunks_of

DOCUMENT = b'bindleVersion = "1.0.0"\n' * 40


def _kernel_at_least(major: int, minor: int) -> bool:
    found = re.match(r"(\d+)\.(\d+)", platform.release())
    return found is not None and (int(found[1]), int(found[2])) >= (major, minor)


# RESOLVE_CACHED came with Linux 5.12; RWF_NOWAIT on buffered ext4 reads before that.
pytestmark = pytest.mark.skipif(
    sys.platform != "linux" or not _kernel_at_least(5, 12), reason="needs Linux 5.12"
)


def _written(path: Path, data: bytes) -> Path:
    with path.open("wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    return path


def _drop_cached_pages(path: Path) -> None:
    """Evict the file's (clean, fsynced) pages from the page cache."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def test_cached_reads_work_on_this_system() -> None:
    assert usable()


def test_a_file_just_written_is_read_from_the_cache(tmp_path: Path) -> None:
    path = _written(tmp_path / "invoice.toml", DOCUMENT)
    assert read_cached(path, 1024 * 1024) == DOCUMENT


def test_an_empty_file_reads_as_no_bytes(tmp_path: Path) -> None:
    assert read_cached(_written(tmp_path / "empty", b""), 1024) == b""


def test_a_file_whose_pages_are_not_cached_is_left_to_a_thread(tmp_path: Path) -> None:
    path = _written(tmp_path / "invoice.toml", DOCUMENT)
    _drop_cached_pages(path)
    assert read_cached(path, 1024 * 1024) is None  # reading would wait for the disk
    assert path.read_bytes() == DOCUMENT  # a blocking read brings the pages back
    assert read_cached(path, 1024 * 1024) == DOCUMENT


def test_a_file_larger_than_the_limit_is_left_to_a_thread(tmp_path: Path) -> None:
    path = _written(tmp_path / "invoice.toml", DOCUMENT)
    assert read_cached(path, len(DOCUMENT) - 1) is None
    assert read_cached(path, len(DOCUMENT)) == DOCUMENT


def test_a_file_known_to_be_missing_raises_and_an_unknown_one_is_left_to_a_thread(
    tmp_path: Path,
) -> None:
    path = tmp_path / "never-written"
    try:
        first = read_cached(path, 1024)
    except FileNotFoundError:
        first = b"raised"
    # Whether the kernel cached the first lookup's miss is up to it; a lookup that had to
    # search the directory leaves that miss cached, and from then on the answer is known.
    assert first in (None, b"raised")
    assert not path.exists()
    with pytest.raises(FileNotFoundError):
        read_cached(path, 1024)


@pytest.mark.anyio
async def test_the_invoice_store_reads_cached_invoices_without_a_thread(
    data_dir: Path, hops: CountingExecutor
) -> None:
    invoices = open_stores(str(data_dir)).invoices
    assert await invoices.create("abc", DOCUMENT)
    before = hops.submitted
    assert await invoices.read("abc") == DOCUMENT
    assert hops.submitted == before

    _drop_cached_pages(data_dir / "invoices" / "abc" / "invoice.toml")
    assert await invoices.read("abc") == DOCUMENT
    assert hops.submitted == before + 1  # read in a worker thread, not on the loop


@pytest.mark.anyio
async def test_missing_invoices_and_records_read_as_none(
    data_dir: Path, hops: CountingExecutor
) -> None:
    invoices = open_stores(str(data_dir)).invoices
    for _ in range(2):  # the second time, the kernel knows them to be missing
        assert await invoices.read("nothing-here") is None
        assert await invoices.read_record(RecordKind.TOMBSTONE, "nothing-here") is None
    before = hops.submitted
    assert await invoices.read("nothing-here") is None
    assert await invoices.read_record(RecordKind.TOMBSTONE, "nothing-here") is None
    assert hops.submitted == before

    assert await invoices.put_record(RecordKind.TOMBSTONE, "gone", b"record", replace=False)
    assert await invoices.read_record(RecordKind.TOMBSTONE, "gone") == b"record"


def test_a_file_status_comes_from_the_cache(tmp_path: Path) -> None:
    path = _written(tmp_path / "parcel.dat", DOCUMENT)
    stat = stat_cached(path)
    assert stat is not None and stat.st_size == len(DOCUMENT)
    assert not (tmp_path / "other.dat").exists()
    with pytest.raises(FileNotFoundError):
        stat_cached(tmp_path / "other.dat")


@pytest.fixture
async def parcels(data_dir: Path) -> ParcelStore:
    """The local parcel store, holding DATA."""
    store = open_stores(str(data_dir)).parcels
    assert await store.write(SHA, len(DATA), chunks_of(DATA))
    return store


@pytest.mark.anyio
async def test_the_parcel_store_looks_up_cached_parcels_without_a_thread(
    parcels: ParcelStore, hops: CountingExecutor
) -> None:
    absent = "0" * 64
    assert await parcels.missing([absent]) == {absent}  # the kernel learns it is missing
    before = hops.submitted
    assert await parcels.exists(SHA)
    assert await parcels.size(SHA) == len(DATA)
    assert not await parcels.exists(absent)
    assert await parcels.size(absent) is None
    assert await parcels.stored_sizes([SHA, absent]) == {SHA: len(DATA)}
    assert await parcels.missing([SHA, absent]) == {absent}
    assert hops.submitted == before


@pytest.mark.anyio
async def test_many_parcels_are_looked_up_in_one_thread_hop(
    parcels: ParcelStore, hops: CountingExecutor
) -> None:
    absent = [f"{n:064x}" for n in range(100)]
    before = hops.submitted
    assert await parcels.stored_sizes([SHA, *absent]) == {SHA: len(DATA)}
    assert await parcels.missing([SHA, *absent]) == set(absent)
    assert hops.submitted == before + 2
