"""Bearer tokens for machines: a token file that holds only SHA-256 hashes of the tokens.

A token is 256 random bits, so a plain SHA-256 of it cannot be reversed or guessed and
needs no slow hash; comparisons are constant-time all the same. The file
(`DIRECTORY/tokens.toml` by default, mode 0600) is written atomically by
`bindle-server token create|revoke`; a running server notices the change within a second.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import logging
import os
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import tomli
import tomli_w

from bindle_server.auth.reloading import ReloadingFile
from bindle_server.durable import write_private_file
from bindle_server.errors import InvalidAuthConfig

log = logging.getLogger(__name__)

FILE_VERSION = 1
TOKEN_PREFIX = "bindle_"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_HEADER = "# bindle-server bearer tokens: only SHA-256 hashes of the tokens are kept here.\n"


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class TokenEntry:
    """One token as stored: its name, the SHA-256 of its value, and when it was made/ends."""

    name: str
    sha256: str
    created: datetime
    expires: datetime | None = None

    def expired(self, now: datetime) -> bool:
        return self.expires is not None and now >= self.expires


@dataclass
class TokenFile:
    """The tokens of a server, as `token create|list|revoke` and the server read them."""

    entries: list[TokenEntry] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path) -> TokenFile:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidAuthConfig(f"cannot read token file {path}: {exc}") from None
        try:
            document = tomli.loads(text)
        except tomli.TOMLDecodeError as exc:
            raise InvalidAuthConfig(f"token file {path} is not valid TOML: {exc}") from None
        return cls([_entry(item, path) for item in _table_list(document, path)])

    def dumps(self) -> str:
        tokens: list[dict[str, Any]] = []
        for entry in self.entries:
            item: dict[str, Any] = {
                "name": entry.name,
                "sha256": entry.sha256,
                "created": entry.created,
            }
            if entry.expires is not None:
                item["expires"] = entry.expires
            tokens.append(item)
        return _HEADER + tomli_w.dumps({"version": FILE_VERSION, "token": tokens})

    def save(self, path: Path) -> None:
        """Write the file atomically with mode 0600 (never briefly readable by others)."""
        write_private_file(path, self.dumps().encode(), mode=0o600)

    @classmethod
    @contextmanager
    def edit(cls, path: Path) -> Iterator[TokenFile]:
        """The file's tokens, to change and save, under an exclusive lock.

        Two `token create` commands at once (on one machine, or on nodes sharing the
        file) would otherwise both read, both add, and the second write would drop the
        first token. Nothing is saved when the block raises.
        """
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = os.open(path.with_name(f".{path.name}.lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            tokens = cls.load(path) if path.exists() else cls()
            yield tokens
            tokens.save(path)
        finally:
            os.close(lock)  # releases the lock

    def create(self, name: str, lifetime: timedelta | None, now: datetime) -> str:
        """Add a token called `name`; return its value (shown once, never stored)."""
        if not _NAME.match(name):
            raise ValueError(f"invalid token name {name!r}: 1-64 letters, digits, '.', '_' or '-'")
        if any(entry.name == name for entry in self.entries):
            raise ValueError(f"a token named {name!r} exists; revoke it first")
        value = TOKEN_PREFIX + secrets.token_urlsafe(32)
        now = now.replace(microsecond=0)
        expires = now + lifetime if lifetime is not None else None
        self.entries.append(TokenEntry(name, token_digest(value), now, expires))
        return value

    def revoke(self, name: str) -> bool:
        """Remove the token called `name`; False when there is none."""
        kept = [entry for entry in self.entries if entry.name != name]
        removed = len(kept) != len(self.entries)
        self.entries = kept
        return removed

    def match(self, token: str, now: datetime) -> TokenEntry | None:
        """The live entry whose hash is the token's; every entry is compared, in constant time."""
        digest = token_digest(token)
        found = None
        for entry in self.entries:
            if hmac.compare_digest(entry.sha256, digest):
                found = entry
        return found if found is not None and not found.expired(now) else None


class TokenRegistry:
    """The server's view of the token file, reloaded when the file changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = ReloadingFile(path, TokenFile.load, TokenFile(), "bearer tokens")

    @classmethod
    def open(cls, path: Path) -> TokenRegistry:
        return cls(path)

    def __len__(self) -> int:
        return len(self._file.value.entries)

    @property
    def exists(self) -> bool:
        return self._file.exists

    def refresh_due(self) -> bool:
        return self._file.refresh_due()

    def refresh(self) -> None:
        self._file.refresh()

    def match(self, token: str) -> TokenEntry | None:
        return self._file.value.match(token, datetime.now(UTC))


def _table_list(document: dict[str, Any], path: Path) -> list[dict[str, Any]]:
    version = document.get("version", FILE_VERSION)
    if version != FILE_VERSION:
        raise InvalidAuthConfig(f"token file {path}: unknown version {version!r}")
    tokens = document.get("token", [])
    if not isinstance(tokens, list) or not all(isinstance(item, dict) for item in tokens):
        raise InvalidAuthConfig(f"token file {path}: `token` must be an array of tables")
    return tokens


def _entry(item: dict[str, Any], path: Path) -> TokenEntry:
    name, digest = item.get("name"), item.get("sha256")
    created, expires = item.get("created"), item.get("expires")
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidAuthConfig(f"token file {path}: a token has no valid `name`")
    if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise InvalidAuthConfig(f"token file {path}: token {name!r} has no valid `sha256`")
    if not isinstance(created, datetime) or not (expires is None or isinstance(expires, datetime)):
        raise InvalidAuthConfig(
            f"token file {path}: token {name!r} needs `created` (and `expires`) as datetimes"
        )
    return TokenEntry(name, digest, _aware(created), _aware(expires) if expires else None)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
