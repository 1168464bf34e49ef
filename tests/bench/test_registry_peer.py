"""The bench's peer, docker-registry, driven as `bench/run.py --peer docker-registry` does:
started with the throwaway configuration, blobs uploaded once, new manifests PUT and read
back with the rate phases' raw client."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from bindle_bench.common import LOOPBACK
from bindle_bench.rawhttp import RawConnection, RawResponse
from bindle_bench.registry import (
    MANIFEST_TYPE,
    ManifestTemplate,
    Registry,
    get_request,
    registry_binary,
)

BINARY = registry_binary()
pytestmark = pytest.mark.skipif(BINARY is None, reason="docker-registry is not installed")


def _exchange(port: int, requests: list[bytes]) -> list[RawResponse]:
    async def send() -> list[RawResponse]:
        connection = RawConnection(port, timeout=30.0)
        try:
            return [await connection.request(data) for data in requests]
        finally:
            connection.drop(graceful=True)

    return asyncio.run(send())


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    assert BINARY is not None
    started = Registry(BINARY, tmp_path / "registry", start_timeout=30.0)
    started.start()
    yield started
    started.stop()


def test_each_put_is_a_new_manifest_that_reads_back_byte_for_byte(registry: Registry) -> None:
    template = registry.upload_blobs()
    puts = template.put_requests(registry.port, range(3))
    responses = _exchange(
        registry.port,
        [data for _, data in puts] + [get_request(registry.port, index) for index in range(3)],
    )
    assert [response.status for response in responses] == [201] * 3 + [200] * 3
    bodies = [response.body for response in responses[3:]]
    assert bodies == [template.manifest(index) for index in range(3)]
    assert len(set(bodies)) == 3  # a new tag and annotation each: no PUT repeats another
    assert json.loads(bodies[0])["mediaType"] == MANIFEST_TYPE


def test_manifests_name_blobs_the_registry_holds(registry: Registry) -> None:
    """The uploaded blobs are what makes a PUT succeed: the same manifest naming blobs
    that were never uploaded is refused."""
    missing = ManifestTemplate(("sha256:" + "0" * 64, 2), ("sha256:" + "1" * 64, 1024))
    [data] = [data for _, data in missing.put_requests(registry.port, range(1))]
    [response] = _exchange(registry.port, [data])
    assert response.status == 400
    assert b"MANIFEST_BLOB_UNKNOWN" in response.body


def test_stop_ends_the_process(registry: Registry) -> None:
    port = registry.port
    assert registry.stop() is not None
    assert registry.process is None
    with pytest.raises(OSError):
        socket.create_connection((LOOPBACK, port), timeout=5.0).close()
