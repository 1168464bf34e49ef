"""The bindle-server command line: help, version, and clear errors for bad options."""

from __future__ import annotations

from pathlib import Path

import bindle_server
from bindle_server.config import Settings
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


def _config_rows(output: str) -> dict[str, tuple[str, str]]:
    """`bindle-server config` output as {setting: (source, value)}."""
    rows = {}
    for line in output.splitlines()[1:]:
        name, rest = line.split(maxsplit=1)
        source, _, value = rest.partition("  ")
        rows[name] = (source.strip(), value.strip())
    return rows


def test_help_lists_every_option_with_its_variable_and_default() -> None:
    for command in ((), ("serve",), ("config",)):
        result = run_command(*command, "--help")
        assert result.returncode == 0, result.stderr
        for text in (
            "-i, --address HOST:PORT",
            "[env: BINDLE_IP_ADDRESS_PORT or BINDLE_ADDRESS] [default: 127.0.0.1:8080]",
            "--atomic-push / --no-atomic-push",
            "--anonymous-read / --no-anonymous-read",
            "--require-signatures / --accept-unsigned",
            "-c, --tls-cert FILE",
            "[env: BINDLE_PENDING_TTL] [default: 1d]",
            "--workers INTEGER",
            "[env: BINDLE_LOG_LEVEL] [default: info]",
        ):
            assert text in " ".join(result.stdout.split()), (command, text)


def test_help_lists_the_settings_read_only_from_the_environment() -> None:
    result = run_command("--help")
    assert result.returncode == 0
    for variable in (
        "BINDLE_MAX_INVOICE_BYTES",
        "BINDLE_MAX_PARCELS",
        "BINDLE_MAX_HEADER_BYTES",
        "BINDLE_BODY_TIMEOUT",
        "BINDLE_MAINTENANCE_INTERVAL",
        "AWS_SECRET_ACCESS_KEY",
    ):
        assert variable in result.stdout
    assert "[default: 33554432]" in result.stdout
    assert "bindle-server config" in " ".join(result.stdout.split())


def test_config_prints_every_setting_with_its_source_and_value(tmp_path: Path) -> None:
    environment = {
        "BINDLE_ADDRESS": "127.0.0.1:9999",
        "BINDLE_MAX_PARCELS": "10",
        "BINDLE_ATOMIC_PUSH": "true",
        "BINDLE_LOG_LEVEL": "DEBUG",
        "BINDLE_VERIFICATION_STRATEGY": "AuthoritativeIntegrity",
    }
    result = run_command(
        "--directory", str(tmp_path), "config", "--no-atomic-push", "--gc-interval", "2h",
        "--strategy", "CreativeIntegrity", env=environment,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = _config_rows(result.stdout)
    assert set(rows) == set(Settings.model_fields)
    assert rows["directory"] == ("command-line option --directory", str(tmp_path))
    assert rows["atomic_push"] == ("command-line option --atomic-push", "false")
    assert rows["gc_interval"] == ("command-line option --gc-interval", "2h")
    assert rows["strategy"] == ("command-line option --strategy", "CreativeIntegrity")
    assert rows["address"] == ("environment variable BINDLE_ADDRESS", "127.0.0.1:9999")
    assert rows["max_parcels"] == ("environment variable BINDLE_MAX_PARCELS", "10")
    assert rows["log_level"] == ("environment variable BINDLE_LOG_LEVEL", "debug")
    assert rows["max_header_bytes"] == ("default", "65536")
    assert rows["pending_ttl"] == ("default", "1d")
    assert rows["tokens_file"] == ("default", str(tmp_path / "tokens.toml"))


def test_config_hides_passwords_in_urls(tmp_path: Path) -> None:
    result = run_command(
        "config", "--directory", str(tmp_path),
        "--index", "postgresql://bob:s3cret@db.example/bindle?sslpassword=k3y",
        env={"BINDLE_OIDC_ISSUER_URL": "https://eve:hunter2@idp.example/"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    for secret in ("s3cret", "k3y", "hunter2"):
        assert secret not in result.stdout
    rows = _config_rows(result.stdout)
    assert rows["index"][1] == "postgresql://bob:***@db.example/bindle?sslpassword=***"
    assert rows["oidc_issuer_url"][1] == "https://eve:***@idp.example/"


def test_an_invalid_value_is_one_line_naming_its_option_or_variable(tmp_path: Path) -> None:
    given = run_command("config", "--pending-ttl", "soon")
    from_environment = run_command("config", env={"BINDLE_PENDING_TTL": "soon"})
    level = run_command("--log-level", "loud", "--directory", str(tmp_path))
    count = run_command("config", "--max-parcel-bytes", "many")
    for result, name in (
        (given, "--pending-ttl"),
        (from_environment, "BINDLE_PENDING_TTL"),
        (level, "--log-level"),
        (count, "'--max-parcel-bytes'"),
    ):
        assert result.returncode == 2
        assert "Traceback" not in result.stderr
        [error] = [line for line in result.stderr.splitlines() if line.startswith("Error")]
        assert name in error
