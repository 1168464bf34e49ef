"""A credentials file the server re-reads when it changes, without a restart.

Used for the token file and the htpasswd file: an operator's `token revoke` or
`htpasswd -D` takes effect within a second on every node reading the file. A file that
disappears or no longer parses counts as granting nothing (a broken edit must not leave
old credentials valid) until it is fixed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

from bindle_server.errors import InvalidAuthConfig

log = logging.getLogger(__name__)

T = TypeVar("T")


class ReloadingFile(Generic[T]):
    """`load(path)`'s result, loaded again when the file's inode, mtime or size changes.

    `refresh` is blocking (a stat, and a read after a change): callers run it in a worker
    thread when `refresh_due` says so, at most once every INTERVAL seconds.
    """

    INTERVAL = 1.0

    def __init__(self, path: Path, load: Callable[[Path], T], empty: T, what: str) -> None:
        self.path = path
        self._load = load
        self._empty = empty
        self._what = what
        self._lock = threading.Lock()
        self._signature = _signature(path)
        # A file that does not exist yet grants nothing until it appears (`token create`
        # or `htpasswd -c` on a running server); one that exists but is broken is an error
        # at start-up, not "empty".
        self.value = load(path) if self._signature is not None else empty
        self._checked = time.monotonic()

    @property
    def exists(self) -> bool:
        return self._signature is not None

    def refresh_due(self) -> bool:
        return time.monotonic() - self._checked >= self.INTERVAL

    def refresh(self) -> bool:
        """Re-read the file if it changed; True when the value was replaced."""
        with self._lock:
            self._checked = time.monotonic()
            signature = _signature(self.path)
            if signature == self._signature:
                return False
            self._signature = signature
            if signature is None:
                log.warning("%s is gone; no %s is accepted until it is back", self.path, self._what)
                self.value = self._empty
                return True
            try:
                self.value = self._load(self.path)
            except InvalidAuthConfig as exc:
                log.error("%s; no %s is accepted until it is fixed", exc.message, self._what)
                self.value = self._empty
                return True
            log.info("reloaded %s from %s", self._what, self.path)
            return True


def _signature(path: Path) -> tuple[int, int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_ino, stat.st_mtime_ns, stat.st_size
