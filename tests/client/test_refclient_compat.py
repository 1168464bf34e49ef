"""Standalone bindles move between this client and the reference CLI 0.8.2, both ways.

Skipped unless BINDLE_REFERENCE_CLIENTS points at the reference binaries.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx

from bindle_server.client import BindleClient
from tests.client.cli import BindleCli
from tests.client.standalones import write_standalone
from tests.e2e.refclient import ReferenceClient, reference_client
from tests.factories import ParcelData, spin_invoice, spin_invoice_toml
from tests.servers import ServerProcess


def _assert_complete(server: ServerProcess, bindle_id: str, parcels: list[ParcelData]) -> None:
    with BindleClient(server.url) as client:
        assert client.missing_parcels(bindle_id) == []
    for p in parcels:
        assert httpx.get(f"{server.url}/_i/{bindle_id}@{p.sha256}").content == p.data


def test_an_export_of_this_client_is_pushed_by_the_reference_client(
    server_factory: Callable[..., ServerProcess], work: Path
) -> None:
    binary = reference_client("0.8.2")
    origin, mirror = server_factory(), server_factory()
    doc, parcels = spin_invoice("1.0.0+build.1")
    write_standalone(work / "source", doc, parcels, spin_invoice_toml(doc))
    ours = BindleCli(origin.url, work)
    ours.run("push", doc.bindle_id, "-p", "source")
    ours.run("get", doc.bindle_id, "-e", "export")

    reference_work = work / "reference"
    reference_work.mkdir()
    reference = ReferenceClient(binary, mirror.url, reference_work)
    reference.run("push", "-p", str(work / "export"), doc.bindle_id)
    _assert_complete(mirror, doc.bindle_id, parcels)


def test_an_export_of_the_reference_client_is_pushed_by_this_client(
    server_factory: Callable[..., ServerProcess], work: Path
) -> None:
    binary = reference_client("0.8.2")
    origin, mirror = server_factory(), server_factory()
    doc, parcels = spin_invoice("3.0.0")
    write_standalone(work / "source", doc, parcels, spin_invoice_toml(doc))
    reference_work = work / "reference"
    reference_work.mkdir()
    reference = ReferenceClient(binary, origin.url, reference_work)
    reference.run("push", "-p", str(work / "source"), doc.bindle_id)
    (work / "export").mkdir()
    reference.run("get", doc.bindle_id, "-e", str(work / "export"))

    pushed = BindleCli(mirror.url, work).run("push", doc.bindle_id, "-p", "export")
    assert "3 parcel(s) uploaded" in pushed.stdout
    _assert_complete(mirror, doc.bindle_id, parcels)
