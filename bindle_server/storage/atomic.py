"""Crash-safe file publication: temp file, fsync, no-clobber link or replace, fsync the directory.

Temp files live in one staging directory on the same filesystem as their targets, so a
failed write never creates anything under `invoices/` or `parcels/`. Each temp file holds
an exclusive `flock` while it is written: the start-up sweep removes only temps whose lock
it can take, which makes the sweep safe while another worker process is still writing
(a writer that loses its file to a sweep in the instant before locking starts afresh).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import logging
import os
import uuid
from pathlib import Path

from bindle_server.durable import create_unique, fsync_dir, move_into_place
from bindle_server.errors import InsufficientStorage

log = logging.getLogger(__name__)

TEMP_PREFIX = ".tmp-"
# Written bytes are handed to the kernel's writeback in windows of this size (see write).
_WRITEBACK_WINDOW = 32 * 1024 * 1024
_DONTNEED = os.POSIX_FADV_DONTNEED


def _raise_storage_error(exc: OSError) -> None:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        raise InsufficientStorage() from exc
    raise exc


class TempFile:
    """A uniquely named, locked temp file being written; hashes what passes through it.

    Blocking: call its methods from a worker thread.
    """

    def __init__(self, staging: Path) -> None:
        for _ in range(3):
            self.path, self._fd = create_unique(_temp_name, staging, 0o644)
            # Blocking: a sweep that found the new file holds its lock for a moment only.
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            # A sweep in another process may have removed the file between its creation
            # and the lock; then this inode is nameless, and publishing it would fail.
            try:
                if os.stat(self.path).st_ino == os.fstat(self._fd).st_ino:
                    break
            except FileNotFoundError:
                pass
            os.close(self._fd)
        else:
            raise OSError(f"could not create a temp file in {staging}")
        self._hash = hashlib.sha256()
        self.size = 0
        self._advised = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.write_chunks([data])

    def write_chunks(self, chunks: list[bytes | bytearray | memoryview]) -> None:
        """Hash and append chunks in order."""
        self.hash_chunks(chunks)
        self.append_chunks(chunks)

    def hash_chunks(self, chunks: list[bytes | bytearray | memoryview]) -> None:
        """The hashing half of write_chunks: it may run in one thread while append_chunks
        of the same chunks runs in another (both release the GIL), but never alongside
        another hash_chunks."""
        for chunk in chunks:
            self._hash.update(chunk)

    def append_chunks(self, chunks: list[bytes | bytearray | memoryview]) -> None:
        """The writing half of write_chunks (one writev, so no joining copy is made)."""
        views = [memoryview(chunk) for chunk in chunks if len(chunk)]
        try:
            while views:
                written = os.writev(self._fd, views)
                self.size += written
                while views and written >= len(views[0]):
                    written -= len(views[0])
                    views.pop(0)
                if written:
                    views[0] = views[0][written:]
        except OSError as exc:
            _raise_storage_error(exc)
        if self.size - self._advised >= 2 * _WRITEBACK_WINDOW:
            self._start_writeback()

    def _start_writeback(self) -> None:
        # DONTNEED starts writeback of dirty pages without waiting for it and drops pages
        # already written back. Advising each window twice, one window apart, lets large
        # uploads stream to disk while they arrive: the final fsync has little left to do
        # and the page cache is recycled instead of growing with the parcel.
        start = max(self._advised - _WRITEBACK_WINDOW, 0)
        os.posix_fadvise(self._fd, start, self.size - start, _DONTNEED)
        self._advised = self.size - _WRITEBACK_WINDOW

    def hexdigest(self) -> str:
        return self._hash.hexdigest()

    def publish(self, target: Path, *, replace: bool) -> bool:
        """Make the bytes durable and visible at `target`.

        With `replace=False` an existing target is left alone and False is returned: the
        link either creates the name or fails, so concurrent writers cannot both win.
        """
        try:
            os.fsync(self._fd)
            for attempt in range(3):
                target.parent.mkdir(parents=True, exist_ok=True)
                try:
                    published = move_into_place(self.path, target, replace=replace)
                    break
                except FileNotFoundError:
                    # A purge or garbage collection removed the (empty) directory between
                    # our mkdir and the link: make it again.
                    if attempt == 2:
                        raise
            fsync_dir(target.parent)
            # Always, not only when this writer made the directory: a concurrent writer
            # may have created it and not yet made its entry durable.
            fsync_dir(target.parent.parent)
        except OSError as exc:
            _raise_storage_error(exc)
        finally:
            self.discard()
        return published

    def discard(self) -> None:
        """Close and remove the temp file; safe to call more than once."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


def _temp_name() -> str:
    return f"{TEMP_PREFIX}{uuid.uuid4().hex}"


def write_file(staging: Path, target: Path, data: bytes, *, replace: bool) -> bool:
    """Atomically write a small file; see TempFile.publish for the meaning of the result."""
    temp = TempFile(staging)
    try:
        temp.write(data)
    except BaseException:
        temp.discard()
        raise
    return temp.publish(target, replace=replace)


def remove_file(path: Path, *, remove_parent: bool, durable: bool = True) -> None:
    """Remove `path` (absent is fine), and its directory when `remove_parent`.

    The directory goes only if it is then empty: a concurrent writer that put something
    new into it keeps it (and one that lost it to us makes it again, see publish). With
    `durable`, a removal is on disk when this returns (one directory fsync).
    """
    try:
        os.unlink(path)
    except FileNotFoundError:
        removed = False
    else:
        removed = True
    directory = path.parent
    if remove_parent:
        try:
            os.rmdir(directory)
        except FileNotFoundError:
            pass
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
        else:
            removed = True
            directory = directory.parent
    if removed and durable:
        with contextlib.suppress(FileNotFoundError):
            fsync_dir(directory)


def sweep(staging: Path) -> int:
    """Remove temp files left by writers that died; return how many were removed."""
    removed = 0
    for entry in os.scandir(staging):
        if not entry.name.startswith(TEMP_PREFIX):
            continue
        try:
            fd = os.open(entry.path, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            continue  # a live writer holds it
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
                removed += 1
        finally:
            os.close(fd)
    if removed:
        log.info("swept %d stale temp file(s) from %s", removed, staging)
    return removed
