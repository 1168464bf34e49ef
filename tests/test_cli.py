"""The bindle-server command line: help, version, and clear errors for bad options."""

from __future__ import annotations

from pathlib import Path

import bindle_server
from tests.servers import run_command


def test_help_documents_the_reference_flags_and_their_variables() -> None:
    result = run_command("--help")
    assert result.returncode == 0
    for text in ("--address", "BINDLE_IP_ADDRESS_PORT", "--directory", "BINDLE_DIRECTORY"):
        assert text in result.stdout
    assert "reindex" in result.stdout


def test_version_prints_the_package_version() -> None:
    result = run_command("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"bindle-server {bindle_server.__version__}"


def test_malformed_address_is_refused_with_a_clear_message() -> None:
    result = run_command("--address", "nonsense")
    assert result.returncode != 0
    assert "HOST:PORT" in result.stderr


def test_unknown_verification_strategy_is_refused_before_serving(tmp_path: Path) -> None:
    result = run_command("--directory", str(tmp_path), "--strategy", "TrustEveryone")
    assert result.returncode != 0
    assert "unknown verification strategy" in result.stderr
