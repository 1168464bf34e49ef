"""A client that vanishes mid-upload leaves nothing behind, and the retry succeeds."""

from __future__ import annotations

import socket
import time

import httpx
import tomli

from tests.factories import make_invoice, parcel
from tests.servers import ServerProcess


def test_upload_cut_off_by_the_client_leaves_parcel_missing_and_retry_succeeds(
    live_server: ServerProcess,
) -> None:
    payload = parcel(bytes(range(256)) * 8192)  # 2 MiB
    doc = make_invoice("example.com/cut", "1.0.0", parcels=[payload])
    assert httpx.post(f"{live_server.url}/_i", content=doc.toml()).status_code == 202
    path = f"/v1/_i/{doc.bindle_id}@{payload.sha256}"

    with socket.create_connection(("127.0.0.1", live_server.port), timeout=10) as sock:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {payload.size}\r\n\r\n"
        ).encode()
        sock.sendall(head + payload.data[: payload.size // 2])
        time.sleep(0.3)  # let the server start writing the temp file
    # The connection is closed with half the body sent.

    deadline = time.monotonic() + 10
    staging = live_server.data_dir / "tmp"
    while any(staging.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list(staging.iterdir()) == []
    missing = tomli.loads(httpx.get(f"{live_server.url}/_r/missing/{doc.bindle_id}").text)
    assert [label["sha256"] for label in missing["missing"]] == [payload.sha256]
    assert not (live_server.data_dir / "parcels" / payload.sha256).exists()

    retry = httpx.post(f"{live_server.url}{path.removeprefix('/v1')}", content=payload.data)
    assert retry.status_code == 200
    assert "failed unexpectedly" not in live_server.log()
