"""Files that appear whole or not at all, for the stores and the client alike.

A file is written under a new, unique name, made durable, then moved onto its real name
(replacing it, or linking without clobbering), and the directory entry is made durable
too. The stores (storage/atomic.py) add a locked staging directory and hashing on top;
the client (client/files.py) writes beside the target.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable
from pathlib import Path

ATTEMPTS = 8  # a clash of random names is already unheard of; more means a bug


def create_unique(name: Callable[[], str], directory: Path, mode: int) -> tuple[Path, int]:
    """A new empty file in `directory` named by `name()`, and its descriptor (write-only)."""
    for _ in range(ATTEMPTS):
        path = directory / name()
        try:
            return path, os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        except FileExistsError:
            continue
    raise FileExistsError(f"cannot create a new temporary file in {directory}")


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def move_into_place(source: Path, target: Path, *, replace: bool) -> bool:
    """Give `source`'s (already durable) bytes the name `target`.

    With `replace=False` an existing target is left alone and False is returned: the link
    either creates the name or fails, so of concurrent writers exactly one wins. The
    caller removes `source` afterwards when it linked, and makes the directory durable.
    """
    if replace:
        os.replace(source, target)
        return True
    try:
        os.link(source, target)
    except FileExistsError:
        return False
    return True


def write_private_file(path: Path, data: bytes, *, mode: int, replace: bool = True) -> bool:
    """Write a small file whole and durably, created with `mode` (never briefly readable
    by others): secret keys, token hashes.

    With `replace=False` an existing file is kept and False returned, so that processes
    starting together cannot each create (and use) a different one.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temp, fd = create_unique(
        lambda: f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}", path.parent, mode
    )
    try:
        try:
            os.fchmod(fd, mode)  # the umask may have narrowed `mode`; never widened
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        if not move_into_place(temp, path, replace=replace):
            return False
        # The new name must survive a crash too: a lost host key means a new one, and
        # clients that trusted the old one would refuse every invoice signed since.
        fsync_dir(path.parent)
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
