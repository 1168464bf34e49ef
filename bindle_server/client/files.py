"""Writing files so that a reader never sees half of one: a temp file beside the target."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from types import TracebackType


class TempBeside:
    """A new, uniquely named empty file beside `target`; `commit` moves it onto the target.

    Created with mode 0666 minus the umask, like any file the user writes. Leaving the
    `with` block without `commit` removes it, so an interrupted or refused download
    leaves nothing behind.
    """

    def __init__(self, target: Path) -> None:
        self.target = target
        for _ in range(8):  # a clash of 48 random bits is already unheard of
            self.path = target.with_name(f".{target.name}.{secrets.token_hex(6)}.part")
            try:
                os.close(os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
                break
            except FileExistsError:
                continue
        else:
            raise FileExistsError(f"cannot create a temporary file beside {target}")
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
        os.replace(self.path, self.target)
        self._committed = True
        directory = os.open(self.target.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    def write(self, data: bytes) -> None:
        """Fill the file with `data` (for small files such as invoices)."""
        self.path.write_bytes(data)
