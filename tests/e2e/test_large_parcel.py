"""Large parcels stream up and down through a live server with flat server memory, on
disk and through an S3 bucket."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx
import pytest

from tests.factories import make_invoice
from tests.rgw import S3Server
from tests.servers import ServerProcess, rss_bytes

MiB = 1024 * 1024
PARCEL_SIZE = 1024 * MiB
S3_PARCEL_SIZE = 512 * MiB
MAX_RSS_GROWTH = 100 * MiB


class _PeakRss:
    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.baseline = rss_bytes(pid)
        self.peak = self.baseline

    @property
    def growth(self) -> int:
        return self.peak - self.baseline


@contextmanager
def _watch_rss(pid: int) -> Iterator[_PeakRss]:
    watch = _PeakRss(pid)
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.02):
            watch.peak = max(watch.peak, rss_bytes(pid))

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield watch
    finally:
        stop.set()
        thread.join(5)


@pytest.mark.slow
def test_one_gib_parcel_streams_up_and_down_with_flat_server_memory(
    live_server: ServerProcess,
) -> None:
    _round_trip_with_flat_memory(live_server, PARCEL_SIZE)


@pytest.mark.slow
def test_large_parcel_streams_through_a_bucket_with_flat_server_memory(
    server_factory: Callable[..., ServerProcess],
    s3_server: S3Server,
    s3_bucket: str,
    s3_url: str,
    postgres_url: str,
) -> None:
    # Multipart up (parts sent while the next is received), one streamed GET down. Half
    # the disk test's size: the throwaway RGW keeps objects in memory.
    server = server_factory(
        None, "--storage", s3_url, "--index", postgres_url, env=s3_server.environment
    )
    _round_trip_with_flat_memory(server, S3_PARCEL_SIZE)
    client = s3_server.client()
    try:
        assert client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []
    finally:
        client.close()


def _round_trip_with_flat_memory(server: ServerProcess, parcel_size: int) -> None:
    block = os.urandom(MiB)
    expected = hashlib.sha256()
    for _ in range(parcel_size // MiB):
        expected.update(block)
    digest = expected.hexdigest()

    def body() -> Iterator[bytes]:
        for _ in range(parcel_size // MiB):
            yield block

    doc = make_invoice("example.com/big", "1.0.0")
    doc.extra["parcel"] = [
        {"label": {"sha256": digest, "mediaType": "application/octet-stream", "size": parcel_size}}
    ]
    url = f"/_i/{doc.bindle_id}@{digest}"
    with httpx.Client(base_url=server.url, timeout=300) as client:
        assert client.post("/_i", content=doc.toml()).status_code == 202
        with _watch_rss(server.pid) as upload_rss:
            upload = client.post(url, content=body(), headers={"Content-Length": str(parcel_size)})
        assert upload.status_code == 200, upload.text
        assert upload_rss.growth < MAX_RSS_GROWTH, f"upload grew RSS by {upload_rss.growth}"

        received = hashlib.sha256()
        size = 0
        with _watch_rss(server.pid) as download_rss, client.stream("GET", url) as download:
            assert download.status_code == 200
            assert download.headers["content-length"] == str(parcel_size)
            for chunk in download.iter_raw(MiB):
                received.update(chunk)
                size += len(chunk)
        assert size == parcel_size
        assert received.hexdigest() == digest
        assert download_rss.growth < MAX_RSS_GROWTH, f"download grew RSS by {download_rss.growth}"
