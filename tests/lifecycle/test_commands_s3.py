"""`bindle-server purge` and `gc` on the scale-out backend, beside a serving node."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import httpx

from tests.factories import make_invoice, parcel
from tests.rgw import S3Server
from tests.servers import ServerProcess, run_command


def test_purge_and_gc_on_a_bucket_while_a_node_serves_it(
    server_factory: Callable[..., ServerProcess],
    s3_server: S3Server,
    s3_bucket: str,
    s3_url: str,
    postgres_url: str,
) -> None:
    env = s3_server.environment
    backend = ["--storage", s3_url, "--index", postgres_url]
    shared, own = parcel(b"shared" * 500), parcel(b"own" * 500)
    doomed = make_invoice("example.com/doomed", "1.0.0", parcels=[shared, own])
    kept = make_invoice("example.com/kept", "1.0.0", parcels=[shared])
    server = server_factory(None, *backend, env=env)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for doc in (doomed, kept):
            client.post("/_i", content=doc.toml())
            for item in doc.parcels:
                client.post(f"/_i/{doc.bindle_id}@{item.sha256}", content=item.data)

        purged = run_command("purge", doomed.bindle_id, *backend, env=env)
        assert purged.returncode == 0, purged.stderr
        assert client.get(f"/_i/{doomed.bindle_id}").status_code == 404
        time.sleep(1.1)  # older than the grace below
        report = run_command("gc", "--gc-grace", "1s", "--format", "json", *backend, env=env)
        assert report.returncode == 0, report.stderr
        figures = json.loads(report.stdout)
        assert (figures["parcels_removed"], figures["bytes_freed"]) == (1, own.size)

        assert client.get(f"/_i/{kept.bindle_id}@{shared.sha256}").content == shared.data
        # The node learns from the shared index that the parcel is gone: it is missing.
        again = client.post("/_i", content=make_invoice("example.com/again", parcels=[own]).toml())
        assert again.status_code == 202
        assert own.sha256 in again.text
    s3 = s3_server.client()
    try:
        keys = {item["Key"] for item in s3.list_objects_v2(Bucket=s3_bucket)["Contents"]}
    finally:
        s3.close()
    assert f"bindle/parcels/{own.sha256}/parcel.dat" not in keys
    assert f"bindle/parcels/{shared.sha256}/parcel.dat" in keys
    assert any(key.startswith("bindle/tombstones/") for key in keys)
