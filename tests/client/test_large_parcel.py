"""A 1 GiB parcel goes up with `bindle push-dir` and down with `bindle pull` while the
client's memory stays flat (measured from /proc while the CLI runs)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.servers import ServerProcess, rss_bytes

MiB = 1024 * 1024
PARCEL_SIZE = 1024 * MiB
MAX_RSS_GROWTH = 100 * MiB
TIMEOUT = 240


def _peak_rss_of(command: list[str], cwd: Path) -> tuple[int, str]:
    """Run the CLI, sampling its resident memory every 20 ms; its peak RSS and stdout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BINDLE_")}
    env.update(HOME=str(cwd / "home"), XDG_CONFIG_HOME=str(cwd / "home" / "config"))
    process = subprocess.Popen(
        [sys.executable, "-P", "-m", "bindle_server.cli.client", *command],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    peak = 0
    deadline = time.monotonic() + TIMEOUT
    while process.poll() is None and time.monotonic() < deadline:
        try:
            peak = max(peak, rss_bytes(process.pid))
        except (OSError, RuntimeError):  # the process ended between poll() and the read
            break
        time.sleep(0.02)
    if process.poll() is None:
        process.kill()
    output = process.communicate(timeout=30)[0].decode(errors="replace")
    assert process.returncode == 0, output
    return peak, output


@pytest.mark.slow
def test_one_gib_parcel_pushed_and_pulled_with_flat_client_memory(
    live_server: ServerProcess, tmp_path: Path
) -> None:
    tiny, big = tmp_path / "tiny", tmp_path / "big"
    tiny.mkdir()
    big.mkdir()
    (tiny / "small.bin").write_bytes(b"small")
    block = os.urandom(MiB)
    expected = hashlib.sha256()
    with (big / "huge.bin").open("wb") as file:
        for _ in range(PARCEL_SIZE // MiB):
            file.write(block)
            expected.update(block)
    server = ["-s", live_server.url, "-d", str(tmp_path / "cache")]

    # The same commands on a 5-byte parcel measure what the CLI needs anyway.
    small_push, _ = _peak_rss_of(
        [*server, "push-dir", "tiny", "-n", "x/tiny", "-v", "1.0.0"], tmp_path
    )
    small_pull, _ = _peak_rss_of([*server, "pull", "x/tiny/1.0.0", "tiny-out"], tmp_path)

    big_push, pushed = _peak_rss_of(
        [*server, "push-dir", "big", "-n", "x/big", "-v", "1.0.0"], tmp_path
    )
    assert "1 parcel(s) uploaded" in pushed
    big_pull, pulled = _peak_rss_of([*server, "pull", "x/big/1.0.0", "big-out"], tmp_path)
    assert "1 parcel(s) downloaded" in pulled

    copy = tmp_path / "big-out" / "huge.bin"
    assert copy.stat().st_size == PARCEL_SIZE
    received = hashlib.sha256()
    with copy.open("rb") as file:
        while chunk := file.read(8 * MiB):
            received.update(chunk)
    assert received.hexdigest() == expected.hexdigest()
    assert big_push - small_push < MAX_RSS_GROWTH, f"push: {big_push} vs {small_push}"
    assert big_pull - small_pull < MAX_RSS_GROWTH, f"pull: {big_pull} vs {small_pull}"
