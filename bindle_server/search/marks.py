"""Owners of pending marks: which process wrote a mark, and whether it has died.

Shared by every index backend: a mark left by a dead writer is settled at start-up, one
of a live writer (another worker, another node) is left alone.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable

# A mark from another host cannot be checked for liveness; no write takes this long.
FOREIGN_MARK_STALE_AFTER = 600.0


def process_identity() -> str:
    """host:pid:start-time: a pid alone is reused after the process dies."""
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{_start_time(pid)}"


def owner_gone(owner: str, age: float) -> bool:
    """Whether the process `owner` that wrote a mark `age` seconds ago is gone."""
    host, _, rest = owner.partition(":")
    pid_text, _, started = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return age > FOREIGN_MARK_STALE_AFTER
    return _start_time(int(pid_text)) != started


def stale_marks(marks: Iterable[tuple[str, str, float, str]]) -> dict[str, list[str]]:
    """From (key, token, age, owner) rows: key -> tokens of keys only dead writers marked."""
    stale: dict[str, list[str]] = {}
    live: set[str] = set()
    for key, token, age, owner in marks:
        if owner_gone(owner, age):
            stale.setdefault(key, []).append(token)
        else:
            live.add(key)
    return {key: tokens for key, tokens in sorted(stale.items()) if key not in live}


def _start_time(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            # Counted after the parenthesised name: field 3 (state), 22 (start time).
            fields = stat.read().rsplit(b")", 1)[1].split()
    except OSError:
        return "?"
    if len(fields) < 20 or fields[0] in (b"Z", b"X"):
        # A zombie has died: its marks are as stale as those of a process long gone
        # (a killed server's workers stay zombies until someone reaps them).
        return "?"
    return fields[19].decode()
