"""The reference `bindle` CLI 0.8.2 (what Spin 1.x and hippo-cli used) against a live server."""

from __future__ import annotations

import hashlib
import tarfile
from pathlib import Path

import httpx
import pytest
import tomli

from tests.e2e.refclient import ReferenceClient, reference_client
from tests.factories import ParcelData, make_invoice, parcel, spin_invoice, spin_invoice_toml
from tests.servers import ServerProcess


@pytest.fixture
def bindle(live_server: ServerProcess, tmp_path: Path) -> ReferenceClient:
    work = tmp_path / "client"
    work.mkdir()
    return ReferenceClient(reference_client("0.8.2"), live_server.url, work)


def _write_standalone(
    root: Path, bindle_id: str, invoice: bytes, parcels: list[ParcelData]
) -> Path:
    """The standalone layout: <sha256 of id>/invoice.toml and parcels/<sha>.dat."""
    folder = root / hashlib.sha256(bindle_id.encode()).hexdigest()
    (folder / "parcels").mkdir(parents=True)
    (folder / "invoice.toml").write_bytes(invoice)
    for p in parcels:
        (folder / "parcels" / f"{p.sha256}.dat").write_bytes(p.data)
    return folder


def test_reference_client_pushes_fetches_searches_and_yanks_a_spin_bindle(
    bindle: ReferenceClient, live_server: ServerProcess, tmp_path: Path
) -> None:
    doc, parcels = spin_invoice("1.0.0+build.7")
    bindle_id = doc.bindle_id
    standalone = tmp_path / "standalone"
    _write_standalone(standalone, bindle_id, spin_invoice_toml(doc), parcels)

    # push: invoice, then every parcel (chunked uploads, '+' unescaped in the path)
    bindle.run("push", "-p", str(standalone), bindle_id)
    stored = httpx.get(f"{live_server.url}/_r/missing/{bindle_id}")
    assert tomli.loads(stored.text) == {"missing": []}
    for p in parcels:
        assert httpx.get(f"{live_server.url}/_i/{bindle_id}@{p.sha256}").content == p.data

    info = bindle.run("info", bindle_id)
    assert tomli.loads(info.stdout)["bindle"]["name"] == "spin-hello-world"

    wasm = parcels[1]
    out = tmp_path / "hello.wasm"
    bindle.run("get-parcel", bindle_id, wasm.sha256, "-o", str(out))
    assert out.read_bytes() == wasm.data

    export = tmp_path / "export"
    export.mkdir()
    bindle.run("get", bindle_id, "-e", str(export))
    (tarball,) = export.glob("*.tar.gz")
    with tarfile.open(tarball) as archive:
        names = archive.getnames()
    for p in parcels:
        assert any(name.endswith(f"parcels/{p.sha256}.dat") for name in names)

    search = bindle.run("search", "-q", "spin-hello")
    assert bindle_id in search.stdout

    bindle.run("yank", bindle_id)
    assert httpx.get(f"{live_server.url}/_i/{bindle_id}").status_code == 403
    # 0.8.2 swaps its -y flag (bin/client/main.rs at v0.8.2: `true => get_invoice`,
    # `false => get_yanked_invoice`): plain `info` asks with ?yanked=true and shows the
    # yanked invoice, `info -y` asks without it and is refused by the server's 403.
    shown = bindle.run("info", bindle_id)
    assert tomli.loads(shown.stdout)["yanked"] is True
    refused = bindle.run("info", "-y", bindle_id, check=False)
    assert refused.returncode != 0
    assert "yanked" in refused.stderr.lower()
    assert "[bindle]" not in refused.stdout


def test_reference_client_push_invoice_then_push_file(
    bindle: ReferenceClient, live_server: ServerProcess, tmp_path: Path
) -> None:
    payload = parcel(b"artifact bytes " * 1000, media_type="application/gzip", name="build.tgz")
    doc = make_invoice("example.com/ci/artifacts", "3.1.4", parcels=[payload])
    invoice_file = tmp_path / "invoice.toml"
    invoice_file.write_bytes(doc.toml())
    artifact = tmp_path / "build.tgz"
    artifact.write_bytes(payload.data)

    bindle.run("push-invoice", str(invoice_file))
    missing = tomli.loads(httpx.get(f"{live_server.url}/_r/missing/{doc.bindle_id}").text)
    assert [label["sha256"] for label in missing["missing"]] == [payload.sha256]

    bindle.run(
        "push-file", doc.bindle_id, str(artifact), "-n", "build.tgz", "-m", "application/gzip"
    )
    download = httpx.get(f"{live_server.url}/_i/{doc.bindle_id}@{payload.sha256}")
    assert download.content == payload.data
    assert download.headers["content-type"] == "application/gzip"


def test_reference_client_repush_of_existing_bindle_uploads_only_missing_parcels(
    bindle: ReferenceClient, live_server: ServerProcess, tmp_path: Path
) -> None:
    doc, parcels = spin_invoice("2.0.0")
    invoice = spin_invoice_toml(doc)
    assert httpx.post(f"{live_server.url}/_i", content=invoice).status_code == 202
    first = parcels[0]
    url = f"{live_server.url}/_i/{doc.bindle_id}@{first.sha256}"
    assert httpx.post(url, content=first.data).status_code == 200

    standalone = tmp_path / "standalone"
    _write_standalone(standalone, doc.bindle_id, invoice, parcels)
    bindle.run("push", "-p", str(standalone), doc.bindle_id)
    missing = tomli.loads(httpx.get(f"{live_server.url}/_r/missing/{doc.bindle_id}").text)
    assert missing == {"missing": []}
