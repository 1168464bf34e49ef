"""`bindle-server fsck` finds damaged parcels and index drift, and `--repair` heals them."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import anyio
import httpx
import tomli

from bindle_server.model import BindleId
from bindle_server.search import SqliteIndex
from tests.factories import make_invoice, parcel
from tests.servers import ServerProcess

ServerFactory = Callable[..., ServerProcess]


def _fsck(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bindle_server", "fsck", "--directory", str(data_dir), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_fsck_quarantines_a_corrupt_parcel_and_the_right_bytes_heal_it(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    good, victim = parcel(b"good bytes" * 1000), parcel(b"victim bytes" * 1000)
    doc = make_invoice(parcels=[good, victim])
    server = server_factory(data_dir)
    httpx.post(f"{server.url}/_i", content=doc.toml())
    for p in (good, victim):
        assert httpx.post(f"{server.url}/_i/{doc.bindle_id}@{p.sha256}", content=p.data)
    server.stop()
    assert _fsck(data_dir).returncode == 0

    stored = data_dir / "parcels" / victim.sha256 / "parcel.dat"
    damaged = bytearray(stored.read_bytes())
    damaged[100] ^= 0xFF  # bit rot
    stored.write_bytes(bytes(damaged))

    report = _fsck(data_dir)
    assert report.returncode == 1
    assert f"parcel {victim.sha256}" in report.stdout
    assert good.sha256 not in report.stdout
    assert stored.exists()  # reporting changes nothing

    repaired = _fsck(data_dir, "--repair")
    assert repaired.returncode == 0, repaired.stdout
    assert "quarantine" in repaired.stdout
    assert not stored.exists()
    (quarantined,) = (data_dir / "quarantine").iterdir()
    assert quarantined.read_bytes() == bytes(damaged)

    server = server_factory(data_dir)
    missing = tomli.loads(httpx.get(f"{server.url}/_r/missing/{doc.bindle_id}").text)
    assert [label["sha256"] for label in missing["missing"]] == [victim.sha256]
    url = f"{server.url}/_i/{doc.bindle_id}@{victim.sha256}"
    assert httpx.get(url).status_code == 404
    assert httpx.post(url, content=victim.data).status_code == 200
    assert httpx.get(url).content == victim.data
    server.stop()
    assert _fsck(data_dir).returncode == 0


def test_fsck_repairs_index_drift_and_reports_unreadable_invoices(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    server = server_factory(data_dir)
    docs = [make_invoice("example.com/drift", f"1.{n}.0") for n in range(3)]
    for doc in docs:
        assert httpx.post(f"{server.url}/_i", content=doc.toml()).status_code == 201
    server.stop()

    lost = BindleId.parse(docs[1].bindle_id).key

    async def lose_an_entry() -> None:
        index = SqliteIndex(str(data_dir / "index.sqlite3"))
        await index.settle(lost, None)
        await index.close()

    anyio.run(lose_an_entry)
    broken = data_dir / "invoices" / ("f" * 64)
    broken.mkdir()
    (broken / "invoice.toml").write_text("not an [invoice")

    report = _fsck(data_dir)
    assert report.returncode == 1
    assert "example.com/drift/1.1.0: missing from the index" in report.stdout
    assert "unreadable" in report.stdout

    repaired = _fsck(data_dir, "--repair")
    assert "missing from the index (repaired)" in repaired.stdout
    assert repaired.returncode == 1  # the unreadable invoice is reported, never changed
    assert "0 unrepaired" not in repaired.stdout

    server = server_factory(data_dir)
    query = tomli.loads(httpx.get(f"{server.url}/_q", params={"q": "drift"}).text)
    assert query["total"] == 3


def test_maintenance_commands_refuse_a_directory_that_is_not_a_store(tmp_path: Path) -> None:
    typo = tmp_path / "no-such-store"
    for command in ("fsck", "reindex"):
        result = subprocess.run(
            [sys.executable, "-m", "bindle_server", command, "--directory", str(typo)],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert result.returncode != 0
        assert "not a Bindle data directory" in result.stderr
        assert not typo.exists()
