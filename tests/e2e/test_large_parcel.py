"""A 1 GiB parcel streams up and down through a live server with flat server memory."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from tests.factories import make_invoice
from tests.servers import ServerProcess, rss_bytes

MiB = 1024 * 1024
PARCEL_SIZE = 1024 * MiB
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
    block = os.urandom(MiB)
    expected = hashlib.sha256()
    for _ in range(PARCEL_SIZE // MiB):
        expected.update(block)
    digest = expected.hexdigest()

    def body() -> Iterator[bytes]:
        for _ in range(PARCEL_SIZE // MiB):
            yield block

    doc = make_invoice("example.com/big", "1.0.0")
    doc.extra["parcel"] = [
        {"label": {"sha256": digest, "mediaType": "application/octet-stream", "size": PARCEL_SIZE}}
    ]
    url = f"/_i/{doc.bindle_id}@{digest}"
    with httpx.Client(base_url=live_server.url, timeout=300) as client:
        assert client.post("/_i", content=doc.toml()).status_code == 202
        with _watch_rss(live_server.pid) as upload_rss:
            upload = client.post(url, content=body(), headers={"Content-Length": str(PARCEL_SIZE)})
        assert upload.status_code == 200, upload.text
        assert upload_rss.growth < MAX_RSS_GROWTH, f"upload grew RSS by {upload_rss.growth}"

        received = hashlib.sha256()
        size = 0
        with _watch_rss(live_server.pid) as download_rss, client.stream("GET", url) as download:
            assert download.status_code == 200
            assert download.headers["content-length"] == str(PARCEL_SIZE)
            for chunk in download.iter_raw(MiB):
                received.update(chunk)
                size += len(chunk)
        assert size == PARCEL_SIZE
        assert received.hexdigest() == digest
        assert download_rss.growth < MAX_RSS_GROWTH, f"download grew RSS by {download_rss.growth}"
