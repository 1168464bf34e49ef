"""The mirror's settings: documented, checked before serving, passwords never shown."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from bindle_server.config import Settings
from tests.servers import run_command


def test_help_documents_every_upstream_option_with_its_variable() -> None:
    result = run_command("--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    for option in (
        "--upstream URL",
        "--upstream-token-file",
        "--upstream-verify",
        "--upstream-refresh",
        "--upstream-allow-local",
    ):
        assert option in text
    for variable in ("BINDLE_UPSTREAM]", "BINDLE_UPSTREAM_REFRESH", "BINDLE_UPSTREAM_VERIFY"):
        assert variable in text
    assert "mirror" in run_command("mirror", "--help").stdout


def test_upstream_refresh_is_a_duration() -> None:
    assert Settings(upstream_refresh="30s").upstream_refresh == 30
    assert Settings().upstream_refresh == 300
    with pytest.raises(ValidationError):
        Settings(upstream_refresh="soon")


def test_upstreams_come_from_one_variable_as_a_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BINDLE_UPSTREAM", "http://a.example/v1, http://b.example/v1")
    assert Settings().upstream == ["http://a.example/v1", "http://b.example/v1"]


def test_serve_refuses_an_upstream_that_is_not_an_http_url_in_one_line(tmp_path: Path) -> None:
    result = run_command("--directory", str(tmp_path), "--upstream", "ftp://files.example/v1")
    assert result.returncode != 0
    assert "--upstream ftp://files.example/v1" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_refuses_an_unreadable_upstream_token_file_in_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-token"
    result = run_command(
        "--directory", str(tmp_path), "--upstream", "http://127.0.0.1:9/v1",
        "--upstream-token-file", str(missing),
    )  # fmt: skip
    assert result.returncode != 0
    assert f"--upstream-token-file {missing}" in result.stderr
    assert "Traceback" not in result.stderr


def test_config_shows_upstream_urls_without_their_passwords(tmp_path: Path) -> None:
    result = run_command(
        "config", "--directory", str(tmp_path),
        "--upstream", "http://mirror:hunter2@a.example/v1", "--upstream", "http://b.example/v1",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "hunter2" not in result.stdout
    assert "http://mirror:***@a.example/v1, http://b.example/v1" in result.stdout


def test_a_server_that_mirrors_nothing_never_loads_the_mirror(tmp_path: Path) -> None:
    """Every server process would pay for the mirror's imports (and its start-up time)."""
    program = (
        "import sys\n"
        "from fastapi.testclient import TestClient\n"
        "from bindle_server.api.app import create_app\n"
        "from bindle_server.config import Settings\n"
        f"with TestClient(create_app(Settings(directory={str(tmp_path)!r}))) as client:\n"
        "    assert client.get('/v1/_q', params={'upstream': 'true'}).status_code == 200\n"
        "print(sorted(m for m in sys.modules if m.startswith('bindle_server.mirror')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
