"""Two glibc malloc arenas per process instead of up to eight per core.

glibc gives each thread that allocates an arena of its own and keeps what was freed in it
for that arena's reuse. A worker's threads (the event loop, and the worker threads for
disk IO, hashing and SQLite) each grew one: after 9,000 creates and GETs at 64
connections, each of two workers held 52 MiB of anonymous memory (PSS) with the default
and 43-46 MiB with two arenas. Python's small objects never reach malloc (its own
allocator, under the GIL), so fewer arenas only make the threads share them for large
buffers, which they allocate rarely.

An operator's MALLOC_ARENA_MAX or glibc.malloc.arena_max tunable wins: glibc has read it
before this runs, and this leaves it alone.
"""

from __future__ import annotations

import ctypes
import os

ARENAS = 2
_M_ARENA_MAX = -8  # mallopt(3)


def limit_arenas() -> bool:
    """Set glibc's arena limit for this process (and the ones it forks); False where the
    environment sets it already or the C library is not glibc."""
    if "MALLOC_ARENA_MAX" in os.environ or "arena_max" in os.environ.get("GLIBC_TUNABLES", ""):
        return False
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return False
    if not hasattr(libc, "gnu_get_libc_version"):  # musl's mallopt does nothing
        return False
    return bool(libc.mallopt(_M_ARENA_MAX, ARENAS))
