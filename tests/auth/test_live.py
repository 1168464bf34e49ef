"""Authentication through real server processes: start-up, the token commands, stock clients."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import tomli

from tests.auth.conftest import basic, bcrypt_entry, bearer, write_policy
from tests.e2e.refclient import ReferenceClient, reference_client
from tests.factories import make_invoice, spin_invoice, spin_invoice_toml
from tests.servers import ServerProcess, run_command


def test_htpasswd_server_states_its_mode_and_checks_credentials(
    server_factory: Callable[..., ServerProcess], htpasswd_file: Path
) -> None:
    server = server_factory(None, "--htpasswd-file", str(htpasswd_file))
    log = server.log()
    assert "authentication: HTTP Basic (3 user(s)" in log
    assert "anonymous read: off" in log
    assert "no authentication" not in log
    invoice = make_invoice("example.com/live").toml()
    refused = httpx.post(f"{server.url}/_i", content=invoice)
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"].startswith('Basic realm="bindle"')
    assert tomli.loads(refused.text)["error"].startswith("unauthorized")
    bad = httpx.post(f"{server.url}/_i", content=invoice, headers=basic("alice", "nope"))
    assert bad.status_code == 401
    good = httpx.post(f"{server.url}/_i", content=invoice, headers=basic("alice", "alice-secret"))
    assert good.status_code == 201
    assert httpx.head(f"{server.url}/_i/example.com/live/1.0.0").status_code == 401
    assert httpx.get(f"{server.base_url}/healthz").status_code == 200


def test_server_refuses_to_start_on_a_non_bcrypt_htpasswd_line(tmp_path: Path) -> None:
    path = tmp_path / "htpasswd"
    path.write_text(f"{bcrypt_entry('alice', 'pw')}\nbob:$apr1$abcdefgh$0123456789abcdefghijkl\n")
    result = run_command("--directory", str(tmp_path / "data"), "--htpasswd-file", str(path))
    assert result.returncode != 0
    assert "line 2" in result.stderr
    assert "only bcrypt" in result.stderr


def test_with_authentication_a_non_loopback_address_needs_no_unauthenticated(
    tmp_path: Path, htpasswd_file: Path
) -> None:
    """192.0.2.1 (TEST-NET-1) passes the safe-default check, then cannot be bound here."""
    result = run_command(
        "--address", "192.0.2.1:8080", "--directory", str(tmp_path / "data"),
        "--htpasswd-file", str(htpasswd_file),
    )  # fmt: skip
    assert "not a loopback address" not in result.stderr
    assert "authentication: HTTP Basic" in result.stderr


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--no-anonymous-read"], "--no-anonymous-read needs authentication"),
        (["--auth-policy", "policy.toml"], "--auth-policy needs authentication"),
    ],
)
def test_options_that_need_authentication_are_refused_without_it(
    tmp_path: Path, option: list[str], message: str
) -> None:
    write_policy(
        tmp_path / "policy.toml", {"subjects": ["anonymous"], "prefixes": ["*"], "verbs": ["read"]}
    )
    option = [str(tmp_path / o) if o.endswith(".toml") else o for o in option]
    result = run_command("--directory", str(tmp_path / "data"), *option)
    assert result.returncode != 0
    assert message in result.stderr


def test_token_commands_create_list_and_revoke_against_a_live_server(
    server_factory: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    data = tmp_path / "data"
    created = run_command(
        "token", "create", "--name", "ci", "--expires", "30d", "--directory", str(data)
    )
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    assert token.startswith("bindle_")
    assert "shown only once" in created.stderr
    assert token not in (data / "tokens.toml").read_text()
    other = run_command("token", "create", "--name", "other", "--directory", str(data))
    duplicate = run_command("token", "create", "--name", "ci", "--directory", str(data))
    assert duplicate.returncode != 0
    assert "exists" in duplicate.stderr

    listed = run_command("token", "list", "--directory", str(data))
    lines = listed.stdout.splitlines()
    assert [line.split("\t")[0] for line in lines] == ["ci", "other"]
    assert "expires" in lines[0]
    assert "never expires" in lines[1]

    server = server_factory(data)
    assert "bearer tokens (2 in" in server.log()
    invoice = make_invoice("ci/build").toml()
    assert httpx.post(f"{server.url}/_i", content=invoice, headers=bearer(token)).status_code == 201
    assert httpx.get(f"{server.url}/_q", headers=bearer(other.stdout.strip())).status_code == 200

    revoked = run_command("token", "revoke", "ci", "--directory", str(data))
    assert revoked.returncode == 0, revoked.stderr
    assert run_command("token", "revoke", "ci", "--directory", str(data)).returncode != 0
    deadline = time.monotonic() + 10
    while httpx.get(f"{server.url}/_q", headers=bearer(token)).status_code == 200:
        assert time.monotonic() < deadline, "the server still accepts the revoked token"
        time.sleep(0.1)
    refused = httpx.get(f"{server.url}/_q", headers=bearer(token))
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == 'Bearer realm="bindle"'
    assert httpx.get(f"{server.url}/_q", headers=bearer(other.stdout.strip())).status_code == 200


def test_reference_client_pushes_with_http_basic_credentials(
    server_factory: Callable[..., ServerProcess], htpasswd_file: Path, tmp_path: Path
) -> None:
    binary = reference_client("0.8.2")
    server = server_factory(None, "--htpasswd-file", str(htpasswd_file))
    doc, parcels = spin_invoice("1.0.0")
    standalone = tmp_path / "standalone"
    folder = standalone / hashlib.sha256(doc.bindle_id.encode()).hexdigest()
    (folder / "parcels").mkdir(parents=True)
    (folder / "invoice.toml").write_bytes(spin_invoice_toml(doc))
    for p in parcels:
        (folder / "parcels" / f"{p.sha256}.dat").write_bytes(p.data)
    work = tmp_path / "client"
    work.mkdir()

    anonymous = ReferenceClient(binary, server.url, work)
    assert anonymous.run("push", "-p", str(standalone), doc.bindle_id, check=False).returncode != 0

    wrong = ReferenceClient(
        binary, server.url, work, global_args=["--http-user", "alice", "--http-password", "no"]
    )
    assert wrong.run("push", "-p", str(standalone), doc.bindle_id, check=False).returncode != 0

    alice = ReferenceClient(
        binary,
        server.url,
        work,
        global_args=["--http-user", "alice", "--http-password", "alice-secret"],
    )
    alice.run("push", "-p", str(standalone), doc.bindle_id)
    credentials = basic("alice", "alice-secret")
    missing = httpx.get(f"{server.url}/_r/missing/{doc.bindle_id}", headers=credentials)
    assert tomli.loads(missing.text) == {"missing": []}
    for p in parcels:
        url = f"{server.url}/_i/{doc.bindle_id}@{p.sha256}"
        assert httpx.get(url, headers=credentials).content == p.data
    info = alice.run("info", doc.bindle_id)
    assert tomli.loads(info.stdout)["bindle"]["name"] == doc.name


def test_a_token_created_after_start_works_at_once(
    server_factory: Callable[..., ServerProcess], htpasswd_file: Path, tmp_path: Path
) -> None:
    """The server started with no token file at all (HTTP Basic only)."""
    data = tmp_path / "data"
    server = server_factory(data, "--htpasswd-file", str(htpasswd_file))
    assert not (data / "tokens.toml").exists()
    created = run_command("token", "create", "--name", "late", "--directory", str(data))
    assert created.returncode == 0, created.stderr
    assert "turns it on when restarted" in created.stderr
    token = created.stdout.strip()
    deadline = time.monotonic() + 10
    while httpx.get(f"{server.url}/_q", headers=bearer(token)).status_code != 200:
        assert time.monotonic() < deadline, "the new token is still refused"
        time.sleep(0.1)
    assert httpx.get(f"{server.url}/_q", headers=bearer("bindle_wrong")).status_code == 401


def test_an_htpasswd_file_created_after_start_works_at_once(
    server_factory: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    users = tmp_path / "users"
    server = server_factory(None, "--htpasswd-file", str(users))
    assert "does not exist yet" in server.log()
    assert httpx.get(f"{server.url}/_q", headers=basic("alice", "pw")).status_code == 401
    users.write_text(bcrypt_entry("alice", "pw") + "\n")
    deadline = time.monotonic() + 10
    while httpx.get(f"{server.url}/_q", headers=basic("alice", "pw")).status_code != 200:
        assert time.monotonic() < deadline, "the new htpasswd file is still ignored"
        time.sleep(0.1)
    assert httpx.get(f"{server.url}/_q").status_code == 401
