"""Bindle ids (NAME/VERSION), bindle names, parcel digests and the invoice storage key."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass

from bindle_server.errors import InvalidBindleId, InvalidDigest
from bindle_server.model.version import Version

MAX_NAME_BYTES = 512
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def name_problem(name: str) -> str | None:
    """Why `name` is not a valid bindle name, or None when it is.

    The rules are BINDLE-PROTOCOL.md section 14 item 8: the spec's letters, digits, `_` and
    `/`, widened by `-` and `.` because real names (`spin-hello-world`, `example.com/app`)
    use them; no empty, `.` or `..` segment, so a name can never act as a path.
    """
    if not name:
        return "the name is empty"
    if len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        return f"the name is longer than {MAX_NAME_BYTES} bytes"
    if name.startswith("bindle:"):
        return "names starting with 'bindle:' are reserved"
    if name.startswith("/") or name.endswith("/"):
        return "the name must not start or end with '/'"
    for char in name:
        if char in "_-./":
            continue
        # Marks (M) count with letters: many scripts spell letters with combining marks.
        if unicodedata.category(char)[0] not in "LNM":
            return f"the name contains {char!r}; allowed are letters, digits, '_', '-', '.' and '/'"
    for segment in name.split("/"):
        if segment in ("", ".", ".."):
            return "the name must not contain an empty, '.' or '..' path segment"
    return None


def check_name(name: str) -> str:
    """Return `name` if it is a valid bindle name; raise InvalidBindleId otherwise."""
    problem = name_problem(name)
    if problem is not None:
        raise InvalidBindleId(f"invalid bindle name {name!r}: {problem}")
    return name


def check_sha256(digest: str) -> str:
    """Return `digest` if it is 64 lowercase hex characters; raise InvalidDigest otherwise."""
    # fullmatch: `$` alone would also accept a trailing newline.
    if not _SHA256.fullmatch(digest):
        raise InvalidDigest(
            f"invalid parcel digest {digest!r}: expected the sha256 of the parcel as "
            "64 lowercase hexadecimal characters"
        )
    return digest


def is_sha256(digest: str) -> bool:
    return _SHA256.fullmatch(digest) is not None


def invoice_key(name: str, version: str) -> str:
    """The storage key of an invoice: hex sha256 of "NAME/VERSION" (reference layout)."""
    return hashlib.sha256(f"{name}/{version}".encode()).hexdigest()


@dataclass(frozen=True)
class BindleId:
    """A bindle's identity: a name and a SemVer version, written NAME/VERSION."""

    name: str
    version: str

    @classmethod
    def parse(cls, text: str) -> BindleId:
        """Split at the last '/' into name and version and validate both."""
        name, sep, version = text.rpartition("/")
        if not sep or not name or not version:
            raise InvalidBindleId(f"invalid bindle id {text!r}: expected NAME/VERSION")
        return cls.of(name, version)

    @classmethod
    def of(cls, name: str, version: str) -> BindleId:
        check_name(name)
        if not Version.is_valid(version):
            raise InvalidBindleId(
                f"invalid bindle version {version!r}: expected a SemVer 2.0.0 version such as "
                "1.2.3, 1.2.3-rc.1 or 1.2.3+build.5"
            )
        return cls(name, version)

    @property
    def key(self) -> str:
        return invoice_key(self.name, self.version)

    @property
    def semver(self) -> Version:
        return Version.parse(self.version)

    def __str__(self) -> str:
        return f"{self.name}/{self.version}"
