"""Damaged bytes are caught wherever they are read: downloads, local parcel files, packing."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from bindle_server.client import BindleClient, DigestMismatch, RetryPolicy, SizeMismatch
from tests.client.cli import BindleCli
from tests.client.standalones import write_standalone
from tests.factories import make_invoice, parcel
from tests.servers import ServerProcess


def _corrupt_on_server(server: ServerProcess, sha256: str, keep_size: bool = True) -> None:
    """Change the stored bytes behind the server's back (a disk fault, a bad restore)."""
    stored = server.data_dir / "parcels" / sha256 / "parcel.dat"
    os.chmod(stored, 0o644)
    data = bytearray(stored.read_bytes())
    if keep_size:
        data[len(data) // 2] ^= 0xFF
    else:
        data = data[:-1]
    stored.write_bytes(bytes(data))


def test_a_corrupted_stored_parcel_fails_the_download_and_leaves_no_file(
    live_server: ServerProcess, bindle: BindleCli, work: Path
) -> None:
    payload = parcel(b"important bytes " * 4096, name="important.bin")
    doc = make_invoice("example.com/corrupt", "1.0.0", parcels=[payload])
    with BindleClient(live_server.url) as client:
        client.create_invoice(doc.toml())
        client.upload_parcel(doc.bindle_id, payload.sha256, payload.data)
        _corrupt_on_server(live_server, payload.sha256)
        with pytest.raises(DigestMismatch, match=payload.sha256):
            client.download_parcel(doc.bindle_id, payload.sha256, io.BytesIO())

    result = bindle.run("get-parcel", doc.bindle_id, payload.sha256, "-o", "x.bin", check=False)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("DigestMismatch: ")
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in work.iterdir() if p.is_file()) == []

    pulled = bindle.run("pull", doc.bindle_id, "out", check=False)
    assert pulled.returncode == 1 and "DigestMismatch" in pulled.stderr
    assert list((work / "out").iterdir()) == []


def test_a_stored_parcel_of_the_wrong_size_fails_the_download(
    live_server: ServerProcess,
) -> None:
    payload = parcel(b"0123456789" * 1000)
    doc = make_invoice("example.com/short", "1.0.0", parcels=[payload])
    fast = RetryPolicy(attempts=2, backoff=0.01)
    with BindleClient(live_server.url, retry=fast) as client:
        client.create_invoice(doc.toml())
        client.upload_parcel(doc.bindle_id, payload.sha256, payload.data)
        _corrupt_on_server(live_server, payload.sha256, keep_size=False)
        # The server serves what it holds (one byte short, with that true length); the
        # client checks it against the label: a loud failure, never short data.
        with pytest.raises(SizeMismatch):
            client.download_parcel(doc.bindle_id, payload.sha256, io.BytesIO())


def test_pushing_a_standalone_with_a_damaged_parcel_file_names_the_file(
    bindle: BindleCli, work: Path
) -> None:
    good, bad = parcel("good parcel"), parcel("bad parcel")
    doc = make_invoice("example.com/damaged", "1.0.0", parcels=[good, bad])
    folder = write_standalone(work / "standalone", doc, [good, bad])
    damaged = folder / "parcels" / f"{bad.sha256}.dat"
    damaged.write_bytes(b"BAD parcel")  # same size, other bytes

    result = bindle.run("push", doc.bindle_id, "-p", str(work / "standalone"), check=False)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("DigestMismatch: ") and str(damaged) in last

    packed = bindle.run("package", doc.bindle_id, "-p", "standalone", "-e", "out", check=False)
    assert packed.returncode == 1 and "DigestMismatch" in packed.stderr
    assert not (work / "out").exists() or list((work / "out").iterdir()) == []
