"""The server verifies submitted signatures, signs as host, signs yanks, publishes its keys."""

from __future__ import annotations

import base64
import os
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import tomli
import tomli_w
from fastapi.testclient import TestClient
from nacl.signing import VerifyKey

from bindle_server.api.app import create_app
from bindle_server.config import Settings
from bindle_server.model import SignatureRole, parse_invoice
from bindle_server.signing import (
    KeyRing,
    signature_verifies,
    yank_signature_verifies,
)
from tests.factories import make_invoice, parcel
from tests.servers import ServerProcess
from tests.signing.keys import Signer, make_key, signed_toml, write_keyring

CREATOR = SignatureRole.CREATOR
TRUSTED = make_key("Trusted Creator <tc@example.com>", CREATOR)
STRANGER = make_key("Stranger <s@example.com>", CREATOR)
ID = "example.com/signed/1.0.0"


@pytest.fixture
def keyring_file(tmp_path: Path) -> Path:
    return write_keyring(tmp_path / "keyring.toml", [TRUSTED.key_entry()])


@pytest.fixture
def signing_api(
    settings_factory: Callable[..., Settings], keyring_file: Path
) -> Iterator[TestClient]:
    app = create_app(settings_factory(keyring=keyring_file))
    with TestClient(app, base_url="http://testserver/v1") as client:
        yield client


def _signed() -> bytes:
    doc = make_invoice("example.com/signed", "1.0.0", parcels=[parcel("a"), parcel("b")])
    return signed_toml(doc, Signer(TRUSTED, CREATOR))


def _host_keyring(client: TestClient) -> KeyRing:
    return KeyRing.loads(client.get("/bindle-keys").text)


def test_stored_invoice_keeps_submitted_signatures_and_adds_a_verifying_host_signature(
    signing_api: TestClient,
) -> None:
    body = _signed()
    assert signing_api.post("/_i", content=body).status_code == 202
    stored = parse_invoice(signing_api.get(f"/_i/{ID}").content)
    submitted = parse_invoice(body)
    signatures = stored.signature or []
    assert signatures[:-1] == submitted.signature  # byte-identical submitted blocks
    host = signatures[-1]
    assert host.role is SignatureRole.HOST
    assert all(signature_verifies(stored, s) for s in signatures)
    assert _host_keyring(signing_api).trusts(host.key, SignatureRole.HOST)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ('version = "1.0.0"', 'version = "1.0.1"'),
        ('name = "example.com/signed"', 'name = "example.com/signet"'),
    ],
)
def test_tampered_name_or_version_is_refused_naming_the_signer(
    signing_api: TestClient, old: str, new: str
) -> None:
    tampered = _signed().decode().replace(old, new, 1).encode()
    response = signing_api.post("/_i", content=tampered)
    assert response.status_code == 400
    error = tomli.loads(response.text)["error"]
    assert "bad signature" in error
    assert TRUSTED.label in error
    assert TRUSTED.public_key in error
    assert "creator" in error


def test_tampered_parcel_list_is_refused(signing_api: TestClient) -> None:
    document = tomli.loads(_signed().decode())
    document["parcel"].pop()
    response = signing_api.post("/_i", content=tomli_w.dumps(document).encode())
    assert response.status_code == 400
    assert "bad signature" in tomli.loads(response.text)["error"]


def test_unknown_key_is_refused_with_a_reason(signing_api: TestClient) -> None:
    doc = make_invoice("example.com/signed", "1.0.0")
    response = signing_api.post("/_i", content=signed_toml(doc, Signer(STRANGER, CREATOR)))
    assert response.status_code == 400
    error = tomli.loads(response.text)["error"]
    assert "unknown key" in error
    assert STRANGER.label in error


def test_a_key_signing_twice_is_refused(signing_api: TestClient) -> None:
    doc = make_invoice("example.com/signed", "1.0.0")
    body = signed_toml(doc, Signer(TRUSTED, CREATOR), Signer(TRUSTED, SignatureRole.APPROVER))
    response = signing_api.post("/_i", content=body)
    assert response.status_code == 400
    assert "more than once" in tomli.loads(response.text)["error"]


def test_unsigned_invoices_are_accepted_and_host_signed_by_default(
    signing_api: TestClient,
) -> None:
    response = signing_api.post("/_i", content=make_invoice("example.com/plain").toml())
    assert response.status_code == 201
    stored = parse_invoice(signing_api.get("/_i/example.com/plain/1.0.0").content)
    (host,) = stored.signature or []
    assert host.role is SignatureRole.HOST
    assert signature_verifies(stored, host)


def test_unsigned_invoices_are_refused_when_signatures_are_required(
    settings_factory: Callable[..., Settings], keyring_file: Path
) -> None:
    settings = settings_factory(keyring=keyring_file, require_signatures=True)
    with TestClient(create_app(settings), base_url="http://testserver/v1") as client:
        unsigned = client.post("/_i", content=make_invoice("example.com/plain").toml())
        assert unsigned.status_code == 400
        assert "no signatures" in tomli.loads(unsigned.text)["error"]
        assert client.post("/_i", content=_signed()).status_code == 202


def test_yank_adds_a_verifying_host_yank_signature(signing_api: TestClient) -> None:
    signing_api.post("/_i", content=_signed())
    assert signing_api.delete(f"/_i/{ID}").status_code == 200
    yanked = parse_invoice(signing_api.get(f"/_i/{ID}", params={"yanked": "true"}).content)
    assert yanked.yanked is True
    (block,) = yanked.yanked_signature or []
    assert block.role is SignatureRole.HOST
    assert yank_signature_verifies(yanked, block)
    assert _host_keyring(signing_api).trusts(block.key, SignatureRole.HOST)
    # The invoice signatures still verify: a yank changes nothing they cover.
    assert all(signature_verifies(yanked, s) for s in yanked.signature or [])


def test_bindle_keys_publishes_signed_host_keys_in_toml_and_json(signing_api: TestClient) -> None:
    as_toml = signing_api.get("/bindle-keys")
    assert as_toml.status_code == 200
    assert as_toml.headers["content-type"] == "application/toml"
    document = tomli.loads(as_toml.text)
    assert document["version"] == "1.0"
    (entry,) = document["key"]
    assert entry["roles"] == ["host"]
    key = VerifyKey(base64.b64decode(entry["key"]))
    key.verify(entry["label"].encode(), base64.b64decode(entry["labelSignature"]))
    as_json = signing_api.get("/bindle-keys", headers={"Accept": "application/json"})
    assert as_json.json()["key"][0]["key"] == entry["key"]
    assert signing_api.head("/bindle-keys").status_code == 200


def test_bindle_keys_filters_by_role_and_refuses_unknown_roles(
    signing_api: TestClient,
) -> None:
    assert len(tomli.loads(signing_api.get("/bindle-keys?roles=host").text)["key"]) == 1
    assert len(tomli.loads(signing_api.get("/bindle-keys?roles=H,approver").text)["key"]) == 1
    assert tomli.loads(signing_api.get("/bindle-keys?roles=approver").text)["key"] == []
    assert signing_api.get("/bindle-keys?roles=janitor").status_code == 400
    assert signing_api.get("/bindle-keys?role=host").status_code == 400


def test_keys_of_every_role_the_server_holds_are_published(
    server_factory: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    created = subprocess.run(
        [sys.executable, "-m", "bindle_server", "keys", "create", "Approver bot",
         "--roles", "approver", "--directory", str(data_dir)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    # The key file now exists without a host key: the server must refuse to start.
    refused = subprocess.run(
        [sys.executable, "-m", "bindle_server", "--directory", str(data_dir)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert refused.returncode != 0
    assert "no key with the host role" in refused.stderr
    subprocess.run(
        [sys.executable, "-m", "bindle_server", "keys", "create", "Host",
         "--directory", str(data_dir)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    server = server_factory(data_dir)
    approvers = tomli.loads(httpx.get(f"{server.url}/bindle-keys?roles=approver").text)
    assert [entry["label"] for entry in approvers["key"]] == ["Approver bot"]
    everything = tomli.loads(httpx.get(f"{server.url}/bindle-keys").text)
    assert sorted(entry["label"] for entry in everything["key"]) == ["Approver bot", "Host"]


def test_host_key_is_created_once_private_and_reused_across_restarts(
    server_factory: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    first = server_factory(data_dir)
    key_before = tomli.loads(httpx.get(f"{first.url}/bindle-keys").text)["key"][0]["key"]
    httpx.post(f"{first.url}/_i", content=make_invoice("example.com/plain").toml())
    first.stop()
    key_file = data_dir / "signing-keys.toml"
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    second = server_factory(data_dir)
    key_after = tomli.loads(httpx.get(f"{second.url}/bindle-keys").text)["key"][0]["key"]
    assert key_after == key_before
    stored = parse_invoice(httpx.get(f"{second.url}/_i/example.com/plain/1.0.0").content)
    assert (stored.signature or [])[-1].key == key_after
