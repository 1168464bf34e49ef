"""`--read-only`: reads go on, every write is a 503 with Retry-After, nothing changes."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import tomli

from tests.factories import make_invoice, parcel
from tests.servers import ServerProcess


def test_a_read_only_server_serves_reads_and_refuses_every_write(
    server_factory: Callable[..., ServerProcess],
) -> None:
    item = parcel(b"kept as it was\n")
    invoice = make_invoice("example.com/frozen", parcels=[item])
    writable = server_factory()
    assert httpx.post(f"{writable.url}/_i", content=invoice.toml()).status_code == 202
    upload = httpx.post(
        f"{writable.url}/_i/example.com/frozen/1.0.0@{item.sha256}", content=item.data
    )
    assert upload.status_code == 200
    writable.stop()

    server = server_factory(writable.data_dir, "--read-only", "--gc-interval", "1s")
    assert "read-only" in server.log()
    bindle = f"{server.url}/_i/example.com/frozen/1.0.0"
    assert httpx.get(bindle).status_code == 200
    assert httpx.get(f"{bindle}@{item.sha256}").content == item.data
    assert "example.com/frozen" in httpx.get(f"{server.url}/_q").text

    other = make_invoice("example.com/other")
    writes = [
        httpx.post(f"{server.url}/_i", content=other.toml()),
        httpx.delete(bindle),
        httpx.delete(bindle, params={"purge": "true"}),
        httpx.post(f"{bindle}@{item.sha256}", content=item.data),
    ]
    for refused in writes:
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "300"
        assert refused.headers["content-type"] == "application/toml"
        assert "read-only" in tomli.loads(refused.text)["error"]
    assert httpx.get(bindle).status_code == 200  # not yanked
    assert httpx.get(f"{server.url}/_i/example.com/other/1.0.0").status_code == 404
    # With --gc-interval 1s, a writable server would have collected twice by now.
    time.sleep(2.5)
    assert "garbage collection:" not in server.log()
