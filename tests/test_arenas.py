"""The server limits glibc's malloc arenas (cli/server/arenas.py): threads that allocate
large buffers share two arenas instead of growing one each."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="glibc's malloc_stats counts the arenas"
)

# Eight threads allocate large buffers at once, then glibc lists its arenas on stderr.
_PROGRAM = """
import ctypes, sys, threading
from bindle_server.cli.server.arenas import limit_arenas
applied = limit_arenas() if sys.argv[1] == "limit" else None
barrier = threading.Barrier(8)
def allocate():
    barrier.wait()
    kept = [bytearray(64 * 1024) for _ in range(64)]
    barrier.wait()
threads = [threading.Thread(target=allocate) for _ in range(8)]
for thread in threads: thread.start()
for thread in threads: thread.join()
print(applied)
ctypes.CDLL(None).malloc_stats()
"""


def _arenas(mode: str, **env: str) -> tuple[int, str]:
    done = subprocess.run(
        [sys.executable, "-c", _PROGRAM, mode],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
        check=True,
    )
    return done.stderr.count("Arena "), done.stdout.strip()


def test_threads_share_two_arenas(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    unlimited, _ = _arenas("default")
    limited, applied = _arenas("limit")
    assert applied == "True"
    assert limited <= 2 < unlimited


def test_the_environment_wins() -> None:
    count, applied = _arenas("limit", MALLOC_ARENA_MAX="3")
    assert applied == "False"
    assert count <= 3
