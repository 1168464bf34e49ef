"""A mark that every process on this machine sees change when any of them changes an invoice.

Stored invoices change only by a yank (a replace) or a removal (purge, garbage collection,
expiry). A worker that keeps rendered invoices in memory must notice such a change made by
any process on the same data directory: its sibling workers, the delivery process, or
`bindle-server purge` run by hand. The mark is eight bytes of a small file, mapped shared
into every process, so reading it is a memory load and no system call.

Every change writes eight fresh random bytes rather than incrementing: two processes that
change invoices at once both leave a value nobody has seen before, where two increments
from the same old value could leave the same new one. A reader that catches a write
half-done sees a value that matches nothing it holds, which only costs it a re-read.
"""

from __future__ import annotations

import logging
import mmap
import os
from pathlib import Path

log = logging.getLogger(__name__)

_SIZE = 8


class ChangeMark:
    """The shared mark of one data directory's invoices (see the module's docstring)."""

    def __init__(self, view: mmap.mmap | bytearray) -> None:
        self._view = view

    @classmethod
    def open(cls, path: Path) -> ChangeMark | None:
        """The mark kept in `path` (created if missing); None when it cannot be mapped,
        e.g. on a read-only filesystem, where callers then keep nothing in memory."""
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            log.warning("invoices will not be cached in memory: %s: %s", path, exc)
            return None
        try:
            if os.fstat(fd).st_size < _SIZE:
                os.ftruncate(fd, _SIZE)
            view = mmap.mmap(fd, _SIZE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        except OSError as exc:
            log.warning("invoices will not be cached in memory: %s: %s", path, exc)
            return None
        finally:
            os.close(fd)
        return cls(view)

    @classmethod
    def in_process(cls) -> ChangeMark:
        """A mark seen only by this process (for stores that live in its memory)."""
        return cls(bytearray(_SIZE))

    def current(self) -> int:
        """The mark now; it differs from every earlier value once an invoice has changed."""
        return int.from_bytes(self._view[:_SIZE], "little")

    def changed(self) -> None:
        """Record that an invoice was replaced or removed (after the change is made)."""
        self._view[:_SIZE] = os.urandom(_SIZE)
