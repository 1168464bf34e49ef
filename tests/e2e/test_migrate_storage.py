"""`bindle-server migrate-storage` moves a disk store into a bucket, verified; `migrate`
brings a PostgreSQL index's schema up to date. The migrated store is then served."""

from __future__ import annotations

import os
from collections.abc import AsyncIterable, AsyncIterator, Callable
from pathlib import Path

import anyio
import httpx
import pytest
import tomli

from bindle_server.migrate import copy_store
from bindle_server.model import BindleId
from bindle_server.storage import open_stores
from bindle_server.storage.s3 import PART_SIZE
from tests.factories import ParcelData, make_invoice, parcel
from tests.rgw import S3Server
from tests.servers import ServerProcess, run_command

ServerFactory = Callable[..., ServerProcess]


def _fill_disk_store(
    server_factory: ServerFactory, data_dir: Path
) -> tuple[list[str], list[ParcelData]]:
    """Push three bindles through a server on disk, yank one, and stop it."""
    small = parcel(b"small parcel " * 100)
    shared = parcel(b"shared by two invoices " * 1000)
    # Over one part: the bucket receives it as a multipart upload.
    large = parcel(os.urandom(PART_SIZE + 4321))
    server = server_factory(data_dir)
    bindles = []
    for version, parcels in (("1.0.0", [small, shared]), ("1.1.0", [shared, large])):
        doc = make_invoice("example.com/migrated", version, parcels=parcels)
        assert httpx.post(f"{server.url}/_i", content=doc.toml()).status_code in (201, 202)
        for item in parcels:
            response = httpx.post(
                f"{server.url}/_i/{doc.bindle_id}@{item.sha256}", content=item.data, timeout=60
            )
            assert response.status_code in (200, 409)
        bindles.append(doc.bindle_id)
    yanked = make_invoice("example.com/old", "0.1.0", parcels=[small])
    assert httpx.post(f"{server.url}/_i", content=yanked.toml()).status_code in (201, 202)
    assert httpx.delete(f"{server.url}/_i/{yanked.bindle_id}").status_code == 200
    server.stop()
    return [*bindles, yanked.bindle_id], [small, shared, large]


def test_disk_store_migrates_into_a_bucket_and_is_served_from_it(
    server_factory: ServerFactory,
    tmp_path: Path,
    s3_server: S3Server,
    s3_url: str,
    postgres_url: str,
) -> None:
    data_dir = tmp_path / "disk"
    bindles, parcels = _fill_disk_store(server_factory, data_dir)
    env = s3_server.environment

    first = run_command(
        "migrate-storage", "--from", f"file://{data_dir}", "--to", s3_url,
        "--index", postgres_url, env=env,
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    assert "parcels: 3 copied" in first.stdout
    assert "invoices: 3 copied" in first.stdout
    assert "rebuilt the destination's index: 3 invoice(s)" in first.stdout

    again = run_command("migrate-storage", "--from", str(data_dir), "--to", s3_url, env=env)
    assert again.returncode == 0, again.stderr
    assert "parcels: 0 copied (0 bytes), 3 already there" in again.stdout
    assert "invoices: 0 copied, 3 already there" in again.stdout

    # The migrated store, served from the bucket and the rebuilt index, is the same store.
    signing_keys = data_dir / "signing-keys.toml"
    node = server_factory(
        tmp_path / "node", "--storage", s3_url, "--index", postgres_url,
        "--signing-keys", str(signing_keys), env=env,
    )  # fmt: skip
    local = server_factory(data_dir)
    for bindle_id in bindles:
        moved = httpx.get(f"{node.url}/_i/{bindle_id}", params={"yanked": "true"})
        original = httpx.get(f"{local.url}/_i/{bindle_id}", params={"yanked": "true"})
        assert moved.status_code == original.status_code == 200
        assert moved.content == original.content
    assert httpx.get(f"{node.url}/_i/{bindles[2]}").status_code == 403  # still yanked
    for item, bindle_id in ((parcels[0], bindles[0]), (parcels[2], bindles[1])):
        got = httpx.get(f"{node.url}/_i/{bindle_id}@{item.sha256}", timeout=60)
        assert got.status_code == 200
        assert got.content == item.data
    found = tomli.loads(httpx.get(f"{node.url}/_q", params={"q": "migrated"}).text)
    assert sorted(i["bindle"]["version"] for i in found["invoices"]) == ["1.0.0", "1.1.0"]


def test_yank_at_the_source_after_a_copy_is_carried_over_on_the_next_run(
    server_factory: ServerFactory, tmp_path: Path, s3_server: S3Server, s3_url: str
) -> None:
    data_dir = tmp_path / "disk"
    bindles, _ = _fill_disk_store(server_factory, data_dir)
    env = s3_server.environment
    assert (
        run_command("migrate-storage", "--from", str(data_dir), "--to", s3_url, env=env).returncode
        == 0
    )

    server = server_factory(data_dir)
    assert httpx.delete(f"{server.url}/_i/{bindles[0]}").status_code == 200
    server.stop()

    rerun = run_command("migrate-storage", "--from", str(data_dir), "--to", s3_url, env=env)
    assert rerun.returncode == 0, rerun.stderr
    assert "1 yank(s) carried over" in rerun.stdout
    key = BindleId.parse(bindles[0]).key
    client = s3_server.client()
    try:
        stored = client.get_object(
            Bucket=s3_url.split("/")[2], Key=f"bindle/invoices/{key}/invoice.toml"
        )["Body"].read()
    finally:
        client.close()
    assert stored == (data_dir / "invoices" / key / "invoice.toml").read_bytes()
    assert tomli.loads(stored.decode())["yanked"] is True


def test_damaged_source_parcel_is_reported_not_copied_and_exits_1(
    server_factory: ServerFactory, tmp_path: Path, s3_server: S3Server, s3_url: str
) -> None:
    data_dir = tmp_path / "disk"
    _, parcels = _fill_disk_store(server_factory, data_dir)
    victim = data_dir / "parcels" / parcels[1].sha256 / "parcel.dat"
    damaged = bytearray(victim.read_bytes())
    damaged[7] ^= 0x01
    victim.write_bytes(bytes(damaged))

    result = run_command(
        "migrate-storage", "--from", str(data_dir), "--to", s3_url, env=s3_server.environment
    )
    assert result.returncode == 1
    assert f"parcel {parcels[1].sha256}: the source's bytes do not match it" in result.stderr
    assert "parcels: 2 copied" in result.stdout
    client = s3_server.client()
    try:
        listed = client.list_objects_v2(Bucket=s3_url.split("/")[2], Prefix="bindle/parcels/")
        keys = {item["Key"] for item in listed.get("Contents", [])}
        assert client.list_multipart_uploads(Bucket=s3_url.split("/")[2]).get("Uploads", []) == []
    finally:
        client.close()
    assert f"bindle/parcels/{parcels[1].sha256}/parcel.dat" not in keys
    assert len(keys) == 2


@pytest.mark.anyio
async def test_different_invoice_at_the_destination_is_left_alone_and_reported(
    tmp_path: Path,
) -> None:
    source, target = open_stores(str(tmp_path / "a")), open_stores(str(tmp_path / "b"))
    await source.invoices.create("k", b"the source's document")
    await target.invoices.create("k", b"someone else's document")
    report = await copy_store(source, target)
    assert report.problems == [
        "invoice k: the destination holds a different document; left as it is"
    ]
    assert await target.invoices.read("k") == b"someone else's document"


def test_bad_arguments_are_one_line_errors(tmp_path: Path) -> None:
    not_a_store = run_command("migrate-storage", "--from", str(tmp_path), "--to", "memory://")
    assert not_a_store.returncode == 2
    assert "is not a Bindle data directory" in not_a_store.stderr
    relative = run_command("migrate-storage", "--from", "file://./storage", "--to", "memory://")
    assert relative.returncode == 2
    assert "file:///absolute/path, or just the path" in relative.stderr
    bad_target = run_command("migrate-storage", "--from", str(tmp_path), "--to", "s3://")
    assert bad_target.returncode == 2
    assert "s3://BUCKET" in bad_target.stderr


def test_migrate_applies_the_index_schema_once(postgres_url: str) -> None:
    first = run_command("migrate", "--index", postgres_url)
    assert first.returncode == 0, first.stderr
    assert "applied migration(s) 1" in first.stdout
    second = run_command("migrate", "--index", postgres_url)
    assert second.returncode == 0, second.stderr
    assert "up to date" in second.stdout
    embedded = run_command("migrate")
    assert embedded.returncode == 0
    assert "SQLite" in embedded.stdout


@pytest.mark.anyio
async def test_the_listing_runs_no_further_ahead_of_finished_copies_than_jobs(
    tmp_path: Path,
) -> None:
    # Each digest listed becomes a task; with millions of parcels, listing far ahead of
    # the copies would hold millions of waiting tasks.
    source, target = open_stores(str(tmp_path / "a")), open_stores(str(tmp_path / "b"))
    items = [parcel(f"parcel {n}".encode() * 500) for n in range(12)]
    for item in items:
        await source.parcels.write(item.sha256, item.size, _chunks(item.data))
    listed = finished = ahead = 0
    real_digests, real_write = source.parcels.digests, target.parcels.write

    async def counting_digests() -> AsyncIterator[str]:
        nonlocal listed, ahead
        async for sha256 in real_digests():
            listed += 1
            ahead = max(ahead, listed - finished)
            yield sha256

    async def counting_write(sha256: str, size: int, chunks: AsyncIterable[bytes]) -> bool:
        nonlocal finished
        await anyio.sleep(0.01)  # a copy takes a while; the listing must wait for it
        stored = await real_write(sha256, size, chunks)
        finished += 1
        return stored

    source.parcels.digests = counting_digests  # type: ignore[method-assign]
    target.parcels.write = counting_write  # type: ignore[method-assign]
    report = await copy_store(source, target, jobs=2)
    assert report.parcels_copied == 12
    assert ahead <= 3  # the two copies under way, and the digest waiting for a slot


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data
