"""Stock clients against a server with atomic pushes: they work unchanged."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import tomli

from tests.e2e.refclient import ReferenceClient, reference_client
from tests.factories import spin_invoice, spin_invoice_toml
from tests.servers import ServerProcess

Start = Callable[..., ServerProcess]


@pytest.fixture
def atomic_server(server_factory: Start) -> ServerProcess:
    return server_factory(None, "--atomic-push")


def _client(version: str, server: ServerProcess, tmp_path: Path) -> ReferenceClient:
    work = tmp_path / f"client-{version}"
    work.mkdir()
    extra = ["-r", str(work / "keyring.toml")] if version == "0.9.1" else []
    client = ReferenceClient(reference_client(version), server.url, work, extra, home=work / "home")
    if version == "0.9.1":
        client.run("keys", "fetch")  # 0.9 verifies the host signature of what it reads
    return client


@pytest.mark.parametrize("version", ["0.8.2", "0.9.1"])
def test_reference_client_push_of_a_standalone_bindle_in_atomic_mode(
    version: str, atomic_server: ServerProcess, tmp_path: Path
) -> None:
    bindle = _client(version, atomic_server, tmp_path)
    doc, parcels = spin_invoice("1.0.0")
    folder = tmp_path / "standalone" / hashlib.sha256(doc.bindle_id.encode()).hexdigest()
    (folder / "parcels").mkdir(parents=True)
    (folder / "invoice.toml").write_bytes(spin_invoice_toml(doc))
    for p in parcels:
        (folder / "parcels" / f"{p.sha256}.dat").write_bytes(p.data)

    bindle.run("push", "-p", str(tmp_path / "standalone"), doc.bindle_id)
    assert httpx.get(f"{atomic_server.url}/_i/{doc.bindle_id}").status_code == 200
    info = bindle.run("info", doc.bindle_id)
    assert tomli.loads(info.stdout)["bindle"]["name"] == "spin-hello-world"


@pytest.mark.parametrize("version", ["0.8.2", "0.9.1"])
def test_reference_client_push_invoice_then_push_file_in_atomic_mode(
    version: str, atomic_server: ServerProcess, tmp_path: Path
) -> None:
    bindle = _client(version, atomic_server, tmp_path)
    doc, parcels = spin_invoice("2.0.0")
    invoice = tmp_path / "invoice.toml"
    invoice.write_bytes(spin_invoice_toml(doc))
    bindle.run("push-invoice", str(invoice))
    hidden = httpx.get(f"{atomic_server.url}/_i/{doc.bindle_id}")
    assert hidden.status_code == 404
    assert "pending" in tomli.loads(hidden.text)["error"]

    for p in parcels:
        path = tmp_path / (p.name or p.sha256)
        path.write_bytes(p.data)
        bindle.run("push-file", doc.bindle_id, str(path), "-m", p.media_type)
    assert httpx.get(f"{atomic_server.url}/_i/{doc.bindle_id}").status_code == 200
    assert tomli.loads(bindle.run("info", doc.bindle_id).stdout)["bindle"]["version"] == "2.0.0"


def test_spin_wire_sequence_in_atomic_mode(atomic_server: ServerProcess) -> None:
    doc, parcels = spin_invoice("3.0.0")
    body = spin_invoice_toml(doc)
    toml = {"Content-Type": "application/toml"}
    with httpx.Client(base_url=atomic_server.url, timeout=30) as client:
        assert client.post("/_i", content=body, headers=toml).status_code == 202
        assert client.get(f"/_i/{doc.bindle_id}").status_code == 404
        for p in parcels[:-1]:
            assert client.post(f"/_i/{doc.bindle_id}@{p.sha256}", content=p.data).status_code == 200
        # A push that died here resumes with a re-POST: 202 and what is still missing.
        resumed = client.post("/_i", content=body, headers=toml)
        assert resumed.status_code == 202
        assert [m["sha256"] for m in tomli.loads(resumed.text)["missing"]] == [parcels[-1].sha256]
        last = parcels[-1]
        assert (
            client.post(f"/_i/{doc.bindle_id}@{last.sha256}", content=last.data).status_code == 200
        )
        assert tomli.loads(client.get(f"/_r/missing/{doc.bindle_id}").text) == {"missing": []}
        assert client.get(f"/_i/{doc.bindle_id}").status_code == 200
        for p in parcels:
            assert client.get(f"/_i/{doc.bindle_id}@{p.sha256}").content == p.data
