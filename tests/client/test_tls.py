"""The client over HTTPS: a self-signed server is refused unless -k/--insecure is given."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.client.cli import BindleCli
from tests.factories import make_invoice
from tests.servers import ServerProcess


def test_insecure_flag_accepts_a_self_signed_server_and_is_needed_for_it(
    server_factory: Callable[..., ServerProcess], tmp_path: Path, work: Path
) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    server = server_factory(None, "--tls-cert", str(cert), "--tls-key", str(key))
    doc = make_invoice("example.com/tls", "1.0.0")
    created = httpx.post(f"{server.url}/_i", content=doc.toml(), verify=False)
    assert created.status_code == 201
    bindle = BindleCli(server.url, work)

    refused = bindle.run("info", doc.bindle_id, check=False)
    assert refused.returncode != 0
    assert "certificate" in refused.stderr.lower()

    accepted = bindle.run("-k", "info", doc.bindle_id, check=False)
    assert accepted.returncode == 0, accepted.stderr
    assert 'name = "example.com/tls"' in accepted.stdout
