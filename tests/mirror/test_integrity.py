"""Only verified bytes are stored: an upstream that dies mid-stream, sends wrong bytes or
the wrong invoice leaves nothing behind, and the client sees an error, not a whole body."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import pytest
import tomli

from tests.factories import make_invoice, parcel
from tests.mirror.conftest import MirrorFactory, invoice_stored, kill_upstream, parcel_path, push
from tests.mirror.fake_upstream import FakeUpstream, fake_upstream
from tests.servers import ServerProcess, start_server

BIG = 64 * 1024 * 1024  # far more than the socket buffers between the servers and a client


def _read_until_broken(url: str, *, first_chunk_only: bool = False) -> bytes:
    """GET a body the server breaks off; what arrived before it did."""
    received = bytearray()
    with pytest.raises(httpx.RemoteProtocolError), httpx.stream("GET", url) as response:
        assert response.status_code == 200
        for chunk in response.iter_raw():
            received += chunk
    return bytes(received)


def _no_temp_files(server: ServerProcess) -> bool:
    """Whether the store's temp directory is empty, waiting (bounded) for a cleanup that
    runs after the failed request's connection is gone."""
    deadline = time.monotonic() + 10
    while True:
        temp = server.data_dir / "tmp"
        if not temp.exists() or not any(temp.iterdir()):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def _serve(fake: FakeUpstream, name: str, right: bytes, served: bytes) -> tuple[str, str]:
    """Make `fake` list a parcel of bytes `right` but serve `served`; (bindle id, digest)."""
    item = parcel(right)
    doc = make_invoice(name, "1.0.0", [item])
    fake.invoices[doc.bindle_id] = doc.toml()
    fake.parcels[item.sha256] = served
    return doc.bindle_id, item.sha256


def test_upstream_killed_mid_stream_stores_nothing_and_the_next_get_works_once_it_is_back(
    upstream: ServerProcess, mirror_factory: MirrorFactory, tmp_path: Path
) -> None:
    item = parcel(os.urandom(1024 * 1024) * (BIG // (1024 * 1024)))
    doc = make_invoice("example.com/big", "1.0.0", [item])
    push(upstream, doc, [item])
    mirror = mirror_factory(upstream.url)
    url = f"{mirror.url}/_i/{doc.bindle_id}@{item.sha256}"

    received = bytearray()
    with pytest.raises(httpx.RemoteProtocolError), httpx.stream("GET", url) as response:
        assert response.status_code == 200
        assert response.headers["content-length"] == str(item.size)
        chunks = response.iter_raw()
        received += next(chunks)
        kill_upstream(upstream)  # while the mirror is still reading from it
        for chunk in chunks:
            received += chunk
    assert 0 < len(received) < item.size
    assert not parcel_path(mirror, item.sha256).exists()
    assert _no_temp_files(mirror)

    restarted = start_server(upstream.data_dir, tmp_path / "upstream-again.log", port=upstream.port)
    try:
        again = httpx.get(url, timeout=60)
        assert again.status_code == 200
        assert again.content == item.data
        assert parcel_path(mirror, item.sha256).is_file()
    finally:
        restarted.stop()


def test_an_upstream_cut_off_mid_body_leaves_nothing_stored(
    mirror_factory: MirrorFactory,
) -> None:
    right = os.urandom(256 * 1024)
    with fake_upstream() as fake:
        bindle_id, sha256 = _serve(fake, "example.com/cut", right, right)
        fake.cut_after = 100 * 1024
        mirror = mirror_factory(fake.url)
        received = _read_until_broken(f"{mirror.url}/_i/{bindle_id}@{sha256}")
    assert len(received) < len(right)
    assert right.startswith(received)
    assert not parcel_path(mirror, sha256).exists()
    assert _no_temp_files(mirror)


def test_corrupted_upstream_bytes_are_refused_with_nothing_stored(
    mirror_factory: MirrorFactory,
) -> None:
    right = b"the bytes the invoice names\n" * 100
    wrong = right.replace(b"names", b"NAMES")
    with fake_upstream() as fake:
        bindle_id, sha256 = _serve(fake, "example.com/corrupt", right, wrong)
        mirror = mirror_factory(fake.url)
        url = f"{mirror.url}/_i/{bindle_id}@{sha256}"
        # The last piece is held back until the digest is checked: no whole wrong body.
        assert len(_read_until_broken(url)) < len(right)
        assert not parcel_path(mirror, sha256).exists()
        assert _no_temp_files(mirror)
        # Refused again next time: nothing wrong was kept to be served.
        assert len(_read_until_broken(url)) < len(right)
    assert not parcel_path(mirror, sha256).exists()
    assert "digest" in mirror.log()


def test_upstream_bytes_longer_than_the_label_are_refused_with_nothing_stored(
    mirror_factory: MirrorFactory,
) -> None:
    right = b"short\n" * 1000
    with fake_upstream() as fake:
        bindle_id, sha256 = _serve(fake, "example.com/long", right, right + b"and more")
        mirror = mirror_factory(fake.url)
        received = _read_until_broken(f"{mirror.url}/_i/{bindle_id}@{sha256}")
    assert len(received) < len(right)
    assert not parcel_path(mirror, sha256).exists()


def test_an_upstream_answering_another_invoice_is_refused_with_nothing_stored(
    mirror_factory: MirrorFactory,
) -> None:
    asked = make_invoice("example.com/asked", "1.0.0")
    other = make_invoice("example.com/other", "1.0.0")
    with fake_upstream() as fake:
        fake.invoices[asked.bindle_id] = other.toml()
        mirror = mirror_factory(fake.url)
        response = httpx.get(f"{mirror.url}/_i/{asked.bindle_id}")
    assert response.status_code == 503
    assert "example.com/other" in tomli.loads(response.text)["error"]
    assert not invoice_stored(mirror, asked)
    assert not invoice_stored(mirror, other)


def test_an_invalid_upstream_invoice_is_refused_with_nothing_stored(
    mirror_factory: MirrorFactory,
) -> None:
    asked = make_invoice("example.com/broken", "1.0.0")
    with fake_upstream() as fake:
        fake.invoices[asked.bindle_id] = b"this is = not [ an invoice"
        mirror = mirror_factory(fake.url)
        response = httpx.get(f"{mirror.url}/_i/{asked.bindle_id}")
    assert response.status_code == 503
    assert "not valid" in tomli.loads(response.text)["error"]
    assert not invoice_stored(mirror, asked)


def test_a_client_that_goes_away_mid_fetch_leaves_no_temp_file_and_the_next_get_works(
    upstream: ServerProcess, mirror_factory: MirrorFactory
) -> None:
    item = parcel(os.urandom(1024 * 1024) * (BIG // (1024 * 1024)))
    doc = make_invoice("example.com/abandoned", "1.0.0", [item])
    push(upstream, doc, [item])
    mirror = mirror_factory(upstream.url)
    url = f"{mirror.url}/_i/{doc.bindle_id}@{item.sha256}"
    with httpx.stream("GET", url) as response:
        assert response.status_code == 200
        next(response.iter_raw())
    # Closed after one chunk: the fetch is cancelled and its temp file removed.
    assert _no_temp_files(mirror)
    assert httpx.get(url, timeout=60).content == item.data
    assert parcel_path(mirror, item.sha256).read_bytes() == item.data
