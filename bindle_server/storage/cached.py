"""Reads of small files on the event loop, from the kernel's caches only: never from the disk.

A worker-thread hop costs an invoice GET about 0.3 ms of CPU under load (thread wake-ups
and GIL hand-offs), many times the read of a kilobyte-sized file itself; but the event
loop must never wait for the disk. Linux offers both halves of a read that cannot wait:
openat2 with RESOLVE_CACHED resolves a path from the dentry cache alone, and preadv2 with
RWF_NOWAIT copies only pages already in the page cache. Each fails with EAGAIN rather
than start IO, and the caller then reads in a worker thread as before. O_NOATIME keeps
the read from updating the inode, which could wait on the filesystem's journal.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import sys
from collections.abc import Callable
from pathlib import Path

# openat2(2) has the same number on every architecture that has it (Linux 5.6).
_SYS_OPENAT2 = 437
_ARCHITECTURES = {"x86_64", "aarch64"}
_AT_FDCWD = -100
_RESOLVE_CACHED = 0x20  # Linux 5.12; older kernels refuse the flag with EINVAL


class _OpenHow(ctypes.Structure):
    _fields_ = [
        ("flags", ctypes.c_uint64),
        ("mode", ctypes.c_uint64),
        ("resolve", ctypes.c_uint64),
    ]


def _load_syscall() -> Callable[..., int] | None:
    if sys.platform != "linux" or platform.machine() not in _ARCHITECTURES:
        return None
    if not hasattr(os, "RWF_NOWAIT") or not hasattr(os, "O_NOATIME"):
        return None
    function = ctypes.CDLL(None, use_errno=True).syscall
    function.restype = ctypes.c_long
    function.argtypes = [
        ctypes.c_long,
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.POINTER(_OpenHow),
        ctypes.c_size_t,
    ]
    return function


_syscall = _load_syscall()
_HOW = _OpenHow(os.O_RDONLY | os.O_CLOEXEC | getattr(os, "O_NOATIME", 0), 0, _RESOLVE_CACHED)
# For fstat only: an O_PATH descriptor reads nothing, so it needs no O_NOATIME.
_HOW_PATH = _OpenHow(getattr(os, "O_PATH", 0) | os.O_CLOEXEC, 0, _RESOLVE_CACHED)
_HOW_SIZE = ctypes.sizeof(_HOW)
# Errors that say this system cannot do such reads at all: stop trying.
_UNSUPPORTED = {errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EPERM}


def usable() -> bool:
    """Whether cached reads are possible here (until a call finds out otherwise)."""
    return _syscall is not None


def _give_up() -> None:
    global _syscall
    _syscall = None


def _open_cached(path: Path, how: _OpenHow) -> int | None:
    """A descriptor for `path` resolved from the dentry cache alone; None if that cannot
    be done without IO (or at all here). FileNotFoundError if it is known not to exist."""
    syscall = _syscall
    if syscall is None:
        return None
    fd = syscall(_SYS_OPENAT2, _AT_FDCWD, os.fsencode(path), ctypes.byref(how), _HOW_SIZE)
    if fd >= 0:
        return fd
    code = ctypes.get_errno()
    if code == errno.ENOENT:
        raise FileNotFoundError(code, os.strerror(code), str(path))
    if code in _UNSUPPORTED and code != errno.EPERM:
        _give_up()
    # EAGAIN: not all cached. EPERM: O_NOATIME on a file owned by another user.
    return None


def stat_cached(path: Path) -> os.stat_result | None:
    """The file's status from the kernel's caches; FileNotFoundError when they say there is
    no such file, None when only IO could tell (stat it in a worker thread then)."""
    fd = _open_cached(path, _HOW_PATH)
    if fd is None:
        return None
    try:
        return os.fstat(fd)
    finally:
        os.close(fd)


def read_cached(path: Path, limit: int) -> bytes | None:
    """The file's bytes, if it holds at most `limit` and the kernel has all of them cached.

    Raises FileNotFoundError when the kernel's caches say for certain that there is no such
    file. None means: read it in a worker thread (the read would wait for the disk, the
    file is larger than `limit`, or this system cannot tell).
    """
    fd = _open_cached(path, _HOW)
    if fd is None:
        return None
    try:
        size = os.fstat(fd).st_size
        if size > limit:
            return None
        buffer = bytearray(size)
        try:
            read = os.preadv(fd, [buffer], 0, os.RWF_NOWAIT) if size else 0
        except BlockingIOError:
            return None
        except OSError as exc:
            if exc.errno in _UNSUPPORTED:
                _give_up()  # a filesystem or kernel without non-blocking buffered reads
            return None
        return bytes(buffer) if read == size else None
    finally:
        # Closing could do IO only as the last reference to a file unlinked meanwhile.
        os.close(fd)
