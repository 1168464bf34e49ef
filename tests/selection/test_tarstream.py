"""TarStream: parcels are read lazily, chunk by chunk, and any byte range equals its slice."""

from __future__ import annotations

import asyncio
import hashlib
import io
import tarfile
from collections.abc import AsyncIterator

import pytest

from bindle_server.errors import StoredParcelDamaged
from bindle_server.model import Label
from bindle_server.service.tarstream import TarStream, bytes_entry, parcel_entry

MIB = 1024 * 1024


def _label(size: int, seed: bytes = b"x") -> Label:
    return Label.model_validate(
        {"sha256": hashlib.sha256(seed).hexdigest(), "mediaType": "x/y", "size": size}
    )


class _LazyZeros:
    """A parcel of `size` zero bytes, made 1 MiB at a time as the stream asks for them."""

    def __init__(self) -> None:
        self.produced = 0

    async def read(self, sha256: str, start: int, end: int) -> AsyncIterator[bytes]:
        position = start
        while position < end:
            chunk = bytes(min(MIB, end - position))
            self.produced += len(chunk)
            position += len(chunk)
            yield chunk


async def _collect(chunks: AsyncIterator[bytes], limit: int | None = None) -> bytes:
    parts: list[bytes] = []
    total = 0
    async for chunk in chunks:
        parts.append(chunk)
        total += len(chunk)
        if limit is not None and total >= limit:
            break
    return b"".join(parts)


def test_huge_parcel_is_read_only_as_far_as_the_stream_is_consumed() -> None:
    # A 64 GiB parcel: buffering it, or reading ahead of the consumer, could not pass.
    huge = _label(64 * 1024 * MIB)
    zeros = _LazyZeros()
    tar = TarStream(
        [bytes_entry("invoice.toml", b"x = 1\n", 0), parcel_entry("big", huge, 0)], zeros.read
    )
    assert tar.size > huge.size

    async def consume() -> bytes:
        stream = tar.stream()
        try:
            return await _collect(stream, limit=3 * MIB)
        finally:
            await stream.aclose()  # type: ignore[attr-defined]  # an async generator

    got = asyncio.run(consume())
    assert len(got) >= 3 * MIB
    assert zeros.produced <= 4 * MIB


def test_range_from_the_middle_of_a_huge_parcel_reads_only_that_part() -> None:
    huge = _label(64 * 1024 * MIB)
    zeros = _LazyZeros()
    tar = TarStream([parcel_entry("big", huge, 0)], zeros.read)
    start = 40 * 1024 * MIB
    got = asyncio.run(_collect(tar.stream(start, start + 2 * MIB)))
    assert got == bytes(2 * MIB)
    assert zeros.produced == 2 * MIB


def _small_tar() -> tuple[TarStream, dict[str, bytes]]:
    contents = {"a.txt": b"a" * 700, "dir/b.bin": bytes(range(256)) * 5, "empty": b""}
    labels = {name: _label(len(data), name.encode()) for name, data in contents.items()}
    by_sha = {labels[name].sha256: data for name, data in contents.items()}

    async def read(sha256: str, start: int, end: int) -> AsyncIterator[bytes]:
        yield by_sha[sha256][start:end]

    entries = [bytes_entry("invoice.toml", b'name = "x"\n', 1_700_000_000)]
    entries += [parcel_entry(name, labels[name], 1_700_000_000) for name in sorted(contents)]
    return TarStream(entries, read), contents


def test_whole_stream_is_a_tar_of_the_entries_padded_to_records() -> None:
    tar, contents = _small_tar()
    whole = asyncio.run(_collect(tar.stream()))
    assert len(whole) == tar.size and tar.size % tarfile.RECORDSIZE == 0
    with tarfile.open(fileobj=io.BytesIO(whole), mode="r:") as archive:
        names = archive.getnames()
        assert names == ["invoice.toml", *sorted(contents)]
        for name, data in contents.items():
            extracted = archive.extractfile(name)
            assert extracted is not None and extracted.read() == data
            member = archive.getmember(name)
            assert (member.mtime, member.uid, member.mode) == (1_700_000_000, 0, 0o644)


@pytest.mark.parametrize(
    ("start", "end"), [(0, 1), (511, 1537), (1000, 2500), (2000, None), (0, None), (1536, 1537)]
)
def test_every_byte_range_equals_the_slice_of_the_whole(start: int, end: int | None) -> None:
    tar, _ = _small_tar()
    whole = asyncio.run(_collect(tar.stream()))
    assert asyncio.run(_collect(tar.stream(start, end))) == whole[start:end]


def test_parcel_shorter_than_its_label_breaks_the_stream() -> None:
    label = _label(100)

    async def short(sha256: str, start: int, end: int) -> AsyncIterator[bytes]:
        yield bytes(10)

    tar = TarStream([parcel_entry("p", label, 0)], short)
    with pytest.raises(StoredParcelDamaged):
        asyncio.run(_collect(tar.stream()))
