"""The bindle-server command line: help, version, and clear errors for bad options."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import bindle_server


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bindle_server", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_help_documents_the_reference_flags_and_their_variables() -> None:
    result = _run("--help")
    assert result.returncode == 0
    for text in ("--address", "BINDLE_IP_ADDRESS_PORT", "--directory", "BINDLE_DIRECTORY"):
        assert text in result.stdout
    assert "reindex" in result.stdout


def test_version_prints_the_package_version() -> None:
    result = _run("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"bindle-server {bindle_server.__version__}"


def test_malformed_address_is_refused_with_a_clear_message() -> None:
    result = _run("--address", "nonsense")
    assert result.returncode != 0
    assert "HOST:PORT" in result.stderr


def test_unknown_verification_strategy_is_refused_before_serving(tmp_path: Path) -> None:
    result = _run("--directory", str(tmp_path), "--strategy", "TrustEveryone")
    assert result.returncode != 0
    assert "unknown verification strategy" in result.stderr
