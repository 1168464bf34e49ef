"""Files that appear whole or not at all, for the stores and the client alike.

A file is written under a new, unique name, made durable, then moved onto its real name
(replacing it, or linking without clobbering), and the directory entry is made durable
too. The stores (storage/atomic.py) add a locked staging directory and hashing on top;
the client (client/files.py) writes beside the target.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
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

    With `replace=False` an existing target is left alone and False is returned: the
    rename (or link) either creates the name or fails, so of concurrent writers exactly
    one wins. `source` may be gone afterwards or not: the caller removes it if it is
    still there, and makes the directory durable.
    """
    if replace:
        os.replace(source, target)
        return True
    renamed = _rename_no_replace(source, target)
    if renamed is not None:
        return renamed
    try:
        os.link(source, target)
    except FileExistsError:
        return False
    return True


# renameat2(2) with RENAME_NOREPLACE (Linux 3.15+, glibc 2.28+, most local filesystems):
# one system call instead of link and unlink, and no deleted temp inode left behind, which
# ext4 otherwise skips over (`recently_deleted`) on every new file of a busy directory.
_AT_FDCWD = -100
_RENAME_NOREPLACE = 1
_UNSUPPORTED = {errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP}


def _find_renameat2() -> Callable[..., int] | None:
    try:
        function: Callable[..., int] = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):  # not glibc, or too old
        return None
    return function


_renameat2 = _find_renameat2()


def _rename_no_replace(source: Path, target: Path) -> bool | None:
    """True once renamed, False when `target` exists, None where this cannot be done."""
    global _renameat2
    if _renameat2 is None:
        return None
    result = _renameat2(
        _AT_FDCWD, os.fsencode(source), _AT_FDCWD, os.fsencode(target), _RENAME_NOREPLACE
    )
    if result == 0:
        return True
    error = ctypes.get_errno()
    if error == errno.EEXIST:
        return False
    if error in _UNSUPPORTED:
        _renameat2 = None  # this filesystem (or kernel) cannot; link from now on
        return None
    raise OSError(error, os.strerror(error), str(source), None, str(target))


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
