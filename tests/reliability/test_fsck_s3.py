"""`bindle-server fsck` and `reindex` on the scale-out backend (S3 bucket + PostgreSQL index)."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from tests.factories import make_invoice, parcel
from tests.rgw import S3Server
from tests.servers import ServerProcess, run_command

ServerFactory = Callable[..., ServerProcess]


def test_fsck_finds_and_quarantines_a_damaged_object_and_reindex_rebuilds(
    server_factory: ServerFactory,
    s3_server: S3Server,
    s3_bucket: str,
    s3_url: str,
    postgres_url: str,
) -> None:
    env = s3_server.environment
    backend = ["--storage", s3_url, "--index", postgres_url]
    good, victim = parcel(b"good bytes" * 1000), parcel(b"victim bytes" * 1000)
    doc = make_invoice("example.com/fsck", "1.0.0", parcels=[good, victim])
    server = server_factory(None, *backend, env=env)
    assert httpx.post(f"{server.url}/_i", content=doc.toml()).status_code == 202
    for item in (good, victim):
        url = f"{server.url}/_i/{doc.bindle_id}@{item.sha256}"
        assert httpx.post(url, content=item.data).status_code == 200
    server.stop()
    assert run_command("fsck", *backend, env=env).returncode == 0

    key = f"bindle/parcels/{victim.sha256}/parcel.dat"
    client = s3_server.client()
    try:
        damaged = bytearray(victim.data)
        damaged[3] ^= 0xFF  # what a faulty disk under the store would serve
        client.put_object(Bucket=s3_bucket, Key=key, Body=bytes(damaged))
        report = run_command("fsck", *backend, env=env)
        assert report.returncode == 1
        assert f"parcel {victim.sha256}" in report.stdout
        assert good.sha256 not in report.stdout

        repaired = run_command("fsck", *backend, "--repair", env=env)
        assert repaired.returncode == 0, repaired.stdout + repaired.stderr
        keys = {item["Key"] for item in client.list_objects_v2(Bucket=s3_bucket)["Contents"]}
    finally:
        client.close()
    assert key not in keys
    assert any(k.startswith(f"bindle/quarantine/{victim.sha256}.") for k in keys)

    rebuilt = run_command("reindex", *backend, env=env)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "indexed 1 invoice(s)" in rebuilt.stdout

    server = server_factory(None, *backend, env=env)
    url = f"{server.url}/_i/{doc.bindle_id}@{victim.sha256}"
    assert httpx.get(url).status_code == 404  # quarantined: missing until re-uploaded
    assert httpx.post(url, content=victim.data).status_code == 200
    assert httpx.get(url).content == victim.data
