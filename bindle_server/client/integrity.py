"""Checking bytes against their label while they stream: sha256 and size, chunk by chunk."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from bindle_server.errors import DigestMismatch, SizeMismatch

CHUNK = 1024 * 1024


class ParcelCheck:
    """Counts and hashes the bytes of one parcel as they pass; `verify` at the end.

    A parcel that grows past its label's size fails at once, so a misbehaving server
    cannot fill the disk.
    """

    def __init__(self, sha256: str, size: int | None, where: str) -> None:
        self.sha256 = sha256
        self.size = size
        self.where = where
        self.count = 0
        self._hash = hashlib.sha256()

    def update(self, chunk: bytes) -> None:
        self.count += len(chunk)
        if self.size is not None and self.count > self.size:
            raise SizeMismatch(self.sha256, self.size, self.count, self.where)
        self._hash.update(chunk)

    def restart(self) -> None:
        """Forget what passed: the transfer starts again from its first byte."""
        self.count = 0
        self._hash = hashlib.sha256()

    @property
    def digest(self) -> str:
        return self._hash.hexdigest()

    def verify(self) -> None:
        """Raise SizeMismatch or DigestMismatch unless the bytes are exactly the parcel."""
        if self.size is not None and self.count != self.size:
            raise SizeMismatch(self.sha256, self.size, self.count, self.where)
        if self.digest != self.sha256:
            raise DigestMismatch(self.sha256, self.digest, self.where)


class HashingReader:
    """A read-only file wrapper that checks what is read against a parcel's digest.

    Lets `tarfile` or an upload read a parcel file once while it is verified; call
    `check.verify()` after the last read.
    """

    def __init__(self, raw: BinaryIO, check: ParcelCheck) -> None:
        self._raw = raw
        self.check = check

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self.check.update(data)
        return data


def file_chunks(path: Path, check: ParcelCheck | None = None) -> Iterator[bytes]:
    """A file's bytes in CHUNK-sized pieces, hashed into `check` on the way."""
    with path.open("rb") as file:
        while chunk := file.read(CHUNK):
            if check is not None:
                check.update(chunk)
            yield chunk


def sha256_of_file(path: Path) -> tuple[str, int]:
    """The hex sha256 and size of a file, read in chunks (memory stays flat)."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as file:
        while chunk := file.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def verify_file(path: Path, sha256: str, size: int | None = None) -> None:
    """Raise DigestMismatch or SizeMismatch unless the file holds exactly this parcel."""
    check = ParcelCheck(sha256, size, str(path))
    for _ in file_chunks(path, check):
        pass
    check.verify()


def blame_local_file(path: Path, sha256: str) -> None:
    """After a server refused an upload: raise DigestMismatch if the file is the culprit."""
    actual, _ = sha256_of_file(path)
    if actual != sha256:
        raise DigestMismatch(sha256, actual, str(path))
