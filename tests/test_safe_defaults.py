"""Open only on loopback unless told otherwise, and HTTPS with a certificate and key."""

from __future__ import annotations

import ssl
import subprocess
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.servers import ServerProcess, run_command


def test_loopback_server_runs_open_and_says_so(live_server: ServerProcess) -> None:
    assert "no authentication" in live_server.log()
    assert "loopback only" in live_server.log()


@pytest.mark.parametrize("address", ["0.0.0.0:8080", "[::]:8080", "example.com:8080"])
def test_open_server_on_a_non_loopback_address_needs_unauthenticated(
    tmp_path: Path, address: str
) -> None:
    """Refused before anything listens, so the test never binds a public address."""
    result = run_command("--address", address, "--directory", str(tmp_path))
    assert result.returncode != 0
    assert "--unauthenticated" in result.stderr
    assert "not a loopback address" in result.stderr


def test_tls_needs_both_certificate_and_key(tmp_path: Path) -> None:
    result = run_command("--directory", str(tmp_path), "--tls-cert", str(tmp_path / "cert.pem"))
    assert result.returncode != 0
    assert "go together" in result.stderr


@pytest.fixture
def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


def test_server_speaks_https_with_a_certificate_and_key(
    server_factory: Callable[..., ServerProcess], self_signed: tuple[Path, Path]
) -> None:
    cert, key = self_signed
    server = server_factory(None, "--tls-cert", str(cert), "--tls-key", str(key))
    assert server.url.startswith("https://")
    with httpx.Client(verify=ssl.create_default_context(cafile=str(cert))) as client:
        response = client.get(f"{server.url}/_q")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/toml"
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{server.port}/healthz", timeout=5)
