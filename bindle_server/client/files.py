"""Writing files so that a reader never sees half of one: a temp file beside the target."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from types import TracebackType

from bindle_server.durable import create_unique, fsync_dir, move_into_place


class TempBeside:
    """A new, uniquely named empty file beside `target`; `commit` moves it onto the target.

    Created with mode 0666 minus the umask, like any file the user writes. Leaving the
    `with` block without `commit` removes it, so an interrupted or refused download
    leaves nothing behind.
    """

    def __init__(self, target: Path) -> None:
        self.target = target
        self.path, fd = create_unique(
            lambda: f".{target.name}.{secrets.token_hex(6)}.part", target.parent, 0o666
        )
        os.close(fd)  # callers open the file themselves, as a stream
        self._committed = False

    def __enter__(self) -> TempBeside:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if not self._committed:
            self.path.unlink(missing_ok=True)

    def commit(self) -> None:
        """Make the verified bytes durable, then give them the target's name."""
        fd = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        move_into_place(self.path, self.target, replace=True)
        self._committed = True
        fsync_dir(self.target.parent)

    def write(self, data: bytes) -> None:
        """Fill the file with `data` (for small files such as invoices)."""
        self.path.write_bytes(data)
