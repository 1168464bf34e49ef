"""Files that appear whole or not at all, for the stores and the client alike.

A file is written under a new, unique name, made durable, then moved onto its real name
(replacing it, or linking without clobbering), and the directory entry is made durable
too. The stores (storage/atomic.py) add a locked staging directory and hashing on top;
the client (client/files.py) writes beside the target.
"""

from __future__ import annotations

import os
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
