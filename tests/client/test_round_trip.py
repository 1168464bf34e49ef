"""A bindle travels: push to one server, get and export it, push the export to another."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import tomli

from bindle_server.client import BindleClient
from bindle_server.model import BindleId, SignatureRole, parse_invoice
from bindle_server.signing import signature_verifies
from tests.client.cli import BindleCli
from tests.client.standalones import tar_members, write_standalone
from tests.factories import as_submitted, spin_invoice, spin_invoice_toml
from tests.servers import ServerProcess


def test_push_get_export_and_push_to_a_second_server(
    server_factory: Callable[..., ServerProcess], work: Path
) -> None:
    origin, mirror = server_factory(), server_factory()
    doc, parcels = spin_invoice("1.2.0+build.9")
    write_standalone(work / "source", doc, parcels, spin_invoice_toml(doc))
    to_origin = BindleCli(origin.url, work)
    to_mirror = BindleCli(mirror.url, work)

    to_origin.run("push", doc.bindle_id, "-p", "source")
    fetched = to_origin.run("get", doc.bindle_id, "-e", "export")
    assert "3 parcel(s) downloaded" in fetched.stdout
    (tarball,) = (work / "export").iterdir()
    assert tarball.name == f"{BindleId.parse(doc.bindle_id).key}.tar.gz"
    assert len(tar_members(tarball)) == 6  # dir, invoice, parcels dir, three parcels

    pushed = to_mirror.run("push", doc.bindle_id, "-p", "export")
    assert "3 parcel(s) uploaded" in pushed.stdout

    stored = {}
    for server in (origin, mirror):
        document = tomli.loads(httpx.get(f"{server.url}/_i/{doc.bindle_id}").text)
        assert as_submitted(document) == tomli.loads(spin_invoice_toml(doc).decode())
        invoice = parse_invoice(httpx.get(f"{server.url}/_i/{doc.bindle_id}").content)
        (host,) = invoice.signature or []
        assert host.role is SignatureRole.HOST and signature_verifies(invoice, host)
        stored[server.url] = host.key
        for p in parcels:
            assert httpx.get(f"{server.url}/_i/{doc.bindle_id}@{p.sha256}").content == p.data
    assert stored[origin.url] != stored[mirror.url]  # each server signed as itself

    # The second get is answered from the bindle directory, verified, not downloaded again.
    again = to_origin.run("get", doc.bindle_id)
    assert "0 parcel(s) downloaded, 3 already there" in again.stdout


def test_a_standalone_carrying_a_foreign_host_signature_is_pushed_without_it(
    server_factory: Callable[..., ServerProcess], work: Path
) -> None:
    origin, mirror = server_factory(), server_factory()
    doc, parcels = spin_invoice("2.0.0")
    with BindleClient(origin.url) as client:
        client.create_invoice(spin_invoice_toml(doc))
        stored = httpx.get(f"{origin.url}/_i/{doc.bindle_id}").content
    # What the reference client's `get -e` writes: the invoice as the origin stores it.
    write_standalone(work / "export", doc, parcels, stored)
    result = BindleCli(mirror.url, work).run("push", doc.bindle_id, "-p", "export")
    assert "leaving out 1 host signature" in result.stderr
    with BindleClient(mirror.url) as client:
        mirrored = client.get_invoice(doc.bindle_id)
        assert [s.key for s in mirrored.signature or []] == [client.host_keys().entries[0].key]
        assert client.missing_parcels(doc.bindle_id) == []


def test_a_partially_uploaded_bindle_exports_and_travels_as_a_partial_standalone(
    server_factory: Callable[..., ServerProcess], work: Path
) -> None:
    origin, mirror = server_factory(), server_factory()
    doc, parcels = spin_invoice("4.0.0")
    manifest, wasm, asset = parcels
    with BindleClient(origin.url) as client:
        client.create_invoice(spin_invoice_toml(doc))
        client.upload_parcel(doc.bindle_id, manifest.sha256, manifest.data)

    fetched = BindleCli(origin.url, work).run("get", doc.bindle_id, "-e", "export")
    assert "2 parcel(s) have not been uploaded" in fetched.stdout
    (tarball,) = (work / "export").iterdir()
    dat_files = [name for name in tar_members(tarball) if name.endswith(".dat")]
    assert [name.rsplit("/", 1)[1] for name in dat_files] == [f"{manifest.sha256}.dat"]

    pushed = BindleCli(mirror.url, work).run("push", doc.bindle_id, "-p", str(tarball))
    assert "1 parcel(s) uploaded" in pushed.stdout
    assert "2 parcel(s) are still missing" in pushed.stdout
    with BindleClient(mirror.url) as client:
        missing = [label.sha256 for label in client.missing_parcels(doc.bindle_id)]
    assert missing == [wasm.sha256, asset.sha256]
