"""The reference `bindle` CLI 0.9.1, which signs and verifies, against a live server.

0.9.1 verifies the host signature of every invoice it fetches with its default strategy
MultipleAttestationGreedy[Host], against a keyring it fills from `/bindle-keys`.
"""

from __future__ import annotations

import hashlib
import tarfile
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import tomli

from bindle_server.model import SignatureRole, parse_invoice
from bindle_server.signing import KeyRing, signature_verifies
from tests.e2e.refclient import ReferenceClient, reference_client
from tests.factories import make_invoice, spin_invoice, spin_invoice_toml
from tests.servers import ServerProcess


@pytest.fixture
def client_091(tmp_path: Path) -> Callable[[ServerProcess], ReferenceClient]:
    binary = reference_client("0.9.1")
    work = tmp_path / "client"
    work.mkdir()

    def make(server: ServerProcess) -> ReferenceClient:
        return ReferenceClient(
            binary, server.url, work, ["-r", str(work / "keyring.toml")], home=work / "home"
        )

    return make


def test_signed_push_fetch_and_verified_reads_with_the_091_client(
    client_091: Callable[[ServerProcess], ReferenceClient],
    server_factory: Callable[..., ServerProcess],
    tmp_path: Path,
) -> None:
    work = tmp_path / "client"
    secrets = work / "secrets.toml"
    # A placeholder server lets the client run its offline commands first.
    offline = client_091(server_factory())
    offline.run("keys", "create", "Creator <creator@example.com>", "-f", str(secrets))
    creator_keyring = work / "server-keyring.toml"
    creator_keyring.write_text(offline.run("keys", "print", "-f", str(secrets)).stdout)

    server = server_factory(None, "--keyring", str(creator_keyring), "--require-signatures")
    bindle = client_091(server)
    doc, parcels = spin_invoice("2.1.0+build.3")
    unsigned = work / "invoice.toml"
    unsigned.write_bytes(spin_invoice_toml(doc))
    signed = work / "signed.toml"
    bindle.run("sign-invoice", str(unsigned), "-f", str(secrets), "-o", str(signed))

    folder = work / "standalone" / hashlib.sha256(doc.bindle_id.encode()).hexdigest()
    (folder / "parcels").mkdir(parents=True)
    (folder / "invoice.toml").write_bytes(signed.read_bytes())
    for p in parcels:
        (folder / "parcels" / f"{p.sha256}.dat").write_bytes(p.data)
    bindle.run("push", "-p", str(work / "standalone"), doc.bindle_id)

    stored = parse_invoice(httpx.get(f"{server.url}/_i/{doc.bindle_id}").content)
    roles = [s.role for s in stored.signature or []]
    assert roles == [SignatureRole.CREATOR, SignatureRole.HOST]
    assert all(signature_verifies(stored, s) for s in stored.signature or [])

    bindle.run("keys", "fetch")
    client_keyring = KeyRing.load(work / "keyring.toml")
    assert client_keyring.trusts(stored.signature[-1].key, SignatureRole.HOST)  # type: ignore[index]

    info = bindle.run("info", doc.bindle_id)
    assert tomli.loads(info.stdout)["bindle"]["version"] == "2.1.0+build.3"
    export = work / "export"
    export.mkdir()
    bindle.run("get", doc.bindle_id, "-e", str(export))
    (tarball,) = export.glob("*.tar.gz")
    with tarfile.open(tarball) as archive:
        names = archive.getnames()
    assert all(any(n.endswith(f"{p.sha256}.dat") for n in names) for p in parcels)

    tampered = work / "tampered.toml"
    tampered.write_text(signed.read_text().replace("spin-hello-world", "spin-hello-evil"))
    refused = bindle.run("push-invoice", str(tampered), check=False)
    assert refused.returncode != 0
    assert "bad signature" in refused.stderr
    assert httpx.get(f"{server.url}/_i/spin-hello-evil/2.1.0+build.3").status_code == 404

    unsigned_push = bindle.run("push-invoice", str(unsigned), check=False)
    assert unsigned_push.returncode != 0
    assert "no signatures" in unsigned_push.stderr


def test_the_091_client_refuses_an_invoice_whose_host_key_it_does_not_trust(
    client_091: Callable[[ServerProcess], ReferenceClient],
    server_factory: Callable[..., ServerProcess],
) -> None:
    """The other side of verification: without `keys fetch`, the host is unknown."""
    server = server_factory()
    doc = make_invoice("example.com/untrusted", "1.0.0")
    assert httpx.post(f"{server.url}/_i", content=doc.toml()).status_code == 201
    bindle = client_091(server)
    result = bindle.run("info", doc.bindle_id, check=False)
    assert result.returncode != 0
    bindle.run("keys", "fetch")
    assert tomli.loads(bindle.run("info", doc.bindle_id).stdout)["bindle"]["name"] == doc.name
