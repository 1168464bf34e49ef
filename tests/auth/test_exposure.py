"""The serving policy is the app's own: no open server off loopback, however it is started,
and the API description follows the server's read access."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import tomli
from fastapi.testclient import TestClient

from bindle_server.api.app import create_app
from bindle_server.config import Settings
from bindle_server.errors import InvalidAuthConfig
from tests.auth.conftest import basic
from tests.servers import free_port, run_command
from tests.test_deployment import dockerfile_env

DOC_PATHS = ["/openapi.json", "/docs", "/redoc"]


@pytest.mark.parametrize("address", ["0.0.0.0:8080", "[::]:8080", "192.0.2.1:8080"])
def test_create_app_refuses_an_open_server_off_loopback(
    settings_factory: Callable[..., Settings], address: str
) -> None:
    with pytest.raises(InvalidAuthConfig, match="--unauthenticated"):
        create_app(settings_factory(address=address))
    create_app(settings_factory(address=address, unauthenticated=True))


def test_create_app_serves_off_loopback_with_authentication(
    settings_factory: Callable[..., Settings], htpasswd_file: Path
) -> None:
    create_app(settings_factory(address="0.0.0.0:8080", htpasswd_file=htpasswd_file))


def test_tls_settings_are_refused_alone_wherever_settings_are_built(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="go together"):
        Settings(directory=tmp_path, tls_cert=tmp_path / "cert.pem")


def _client(settings: Settings, host: str) -> TestClient:
    # The test transport reports the URL's host as the connection's local address, as a
    # real server reports the interface the connection arrived on.
    return TestClient(create_app(settings), base_url=f"http://{host}/v1")


@pytest.mark.parametrize("host", ["192.0.2.10", "[2001:db8::1]", "[::ffff:192.0.2.10]"])
def test_an_open_server_refuses_connections_on_other_interfaces(
    settings_factory: Callable[..., Settings], host: str
) -> None:
    with _client(settings_factory(), host) as client:
        refused = client.get("/_q")
    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/toml"
    assert "only on loopback" in tomli.loads(refused.text)["error"]


@pytest.mark.parametrize("host", ["127.0.0.1", "[::1]", "[::ffff:127.0.0.1]", "localhost"])
def test_an_open_server_answers_loopback_connections(
    settings_factory: Callable[..., Settings], host: str
) -> None:
    with _client(settings_factory(), host) as client:
        assert client.get("/_q").status_code == 200


def test_unauthenticated_opts_in_to_every_interface(
    settings_factory: Callable[..., Settings],
) -> None:
    with _client(settings_factory(unauthenticated=True), "192.0.2.10") as client:
        assert client.get("/_q").status_code == 200


def test_an_authenticated_server_answers_every_interface(
    settings_factory: Callable[..., Settings], htpasswd_file: Path
) -> None:
    with _client(settings_factory(htpasswd_file=htpasswd_file), "192.0.2.10") as client:
        assert client.get("/_q", headers=basic("alice", "alice-secret")).status_code == 200


def test_uvicorn_factory_applies_the_same_policy(tmp_path: Path) -> None:
    """`uvicorn --factory` builds the app from BINDLE_* variables and must refuse it too.
    uvicorn itself binds only loopback here; the refusal comes before it listens."""
    env = {
        "PATH": "/usr/bin:/bin",
        "BINDLE_IP_ADDRESS_PORT": "0.0.0.0:8080",
        "BINDLE_DIRECTORY": str(tmp_path),
    }
    result = subprocess.run(
        [sys.executable, "-m", "uvicorn", "bindle_server.api.app:app_from_environment",
         "--factory", "--host", "127.0.0.1", "--port", str(free_port())],
        capture_output=True, text=True, timeout=60, env=env, check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "refusing to serve 0.0.0.0:8080 without authentication" in result.stderr


def test_the_image_refuses_to_serve_open_and_says_how_to_opt_in(tmp_path: Path) -> None:
    """The Dockerfile's environment, as the container sees it (with a writable data
    directory here): the server stops before it listens and names the opt-in."""
    environment = dockerfile_env()
    assert "BINDLE_UNAUTHENTICATED" not in environment
    environment["BINDLE_DIRECTORY"] = str(tmp_path)
    result = run_command(env=environment)
    assert result.returncode != 0
    assert "docker run -e BINDLE_UNAUTHENTICATED=true" in result.stderr
    assert "without authentication" in result.stderr


@pytest.mark.parametrize("path", DOC_PATHS)
def test_api_description_is_hidden_from_anonymous_callers_of_a_private_server(
    app_factory: Callable[..., TestClient], htpasswd_file: Path, path: str
) -> None:
    private = app_factory(htpasswd_file=htpasswd_file)
    root = "http://testserver"
    refused = private.get(f"{root}{path}")
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"].startswith("Basic")
    assert private.get(f"{root}{path}", headers=basic("bob", "bob-secret")).status_code == 200


@pytest.mark.parametrize("overrides", [{}, {"anonymous_read": True}])
@pytest.mark.parametrize("path", DOC_PATHS)
def test_api_description_is_public_where_reading_is(
    app_factory: Callable[..., TestClient],
    htpasswd_file: Path,
    path: str,
    overrides: dict[str, Any],
) -> None:
    if overrides:
        overrides = {**overrides, "htpasswd_file": htpasswd_file}
    client = app_factory(**overrides)
    response = client.get(f"http://testserver{path}")
    assert response.status_code == 200
    if path == "/openapi.json":
        assert "/v1/_q" in response.json()["paths"]
    else:
        assert "/openapi.json" in response.text
