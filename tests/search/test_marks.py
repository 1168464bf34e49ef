"""Whether the writer of a pending mark is gone: dead, replaced by a reused pid, or a zombie."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

from bindle_server.search.marks import owner_gone, process_identity


def _state(pid: int) -> bytes:
    return Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]


def test_a_live_process_owns_its_marks() -> None:
    assert not owner_gone(process_identity(), age=10_000.0)


def test_an_exited_child_not_yet_reaped_no_longer_owns_its_marks() -> None:
    """A killed server's workers linger as zombies until reaped; their marks are stale."""
    child = subprocess.Popen(["sleep", "0.2"])
    try:
        # The identity the child would have written with its marks, read while it runs.
        fields = Path(f"/proc/{child.pid}/stat").read_bytes().rsplit(b")", 1)[1].split()
        owner = f"{socket.gethostname()}:{child.pid}:{fields[19].decode()}"
        assert not owner_gone(owner, age=0.0)
        deadline = time.monotonic() + 10
        while _state(child.pid) != b"Z":  # exited; nobody has waited for it yet
            assert time.monotonic() < deadline, "the child never exited"
            time.sleep(0.02)
        assert owner_gone(owner, age=0.0)
    finally:
        child.wait(10)
    assert owner_gone(owner, age=0.0)
