"""htpasswd files with bcrypt entries (`htpasswd -B`), and checking a password against one.

bcrypt is slow on purpose (tens of milliseconds at cost 10-12): callers run `verify` in a
worker thread, never on the event loop.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import bcrypt

from bindle_server.errors import InvalidAuthConfig

# $2y$ is what Apache's `htpasswd -B` writes; $2b$ and $2a$ are the same algorithm as
# other tools write it. The cost is two digits, the salt and hash 53 characters.
_BCRYPT = re.compile(rb"^\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}$")
# bcrypt reads at most 72 bytes of a password; Apache's htpasswd ignores the rest, and
# so do we (the bcrypt package refuses longer input rather than truncating it).
_BCRYPT_MAX_PASSWORD = 72


def _hash_kind(hashed: str) -> str:
    if hashed.startswith("$apr1$"):
        return "an Apache MD5 ($apr1$)"
    if hashed.startswith("{SHA}"):
        return "a SHA-1 ({SHA})"
    if hashed.startswith(("$5$", "$6$")):
        return "a SHA-crypt"
    if hashed.startswith("$2"):
        return "a malformed bcrypt"
    return "a crypt() or plain-text"


@dataclass(frozen=True)
class Htpasswd:
    """The users of an htpasswd file and their bcrypt hashes."""

    path: Path
    hashes: dict[str, bytes]
    dummy_hash: bytes
    """Checked for unknown users, so they take as long as known ones."""

    @classmethod
    def load(cls, path: Path) -> Htpasswd:
        """Read `path`; any entry that is not bcrypt is refused with its line number."""
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidAuthConfig(f"cannot read htpasswd file {path}: {exc}") from None
        hashes: dict[str, bytes] = {}
        for number, raw in enumerate(text.splitlines(), start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            user, sep, hashed = line.partition(":")
            where = f"htpasswd file {path}, line {number}"
            if not sep or not user:
                raise InvalidAuthConfig(f"{where}: expected USER:HASH")
            if not _BCRYPT.match(hashed.encode()):
                raise InvalidAuthConfig(
                    f"{where}: user {user!r} has {_hash_kind(hashed)} hash; only bcrypt "
                    "($2y$, $2b$, $2a$) is accepted: recreate it with `htpasswd -B`"
                )
            if user in hashes:
                raise InvalidAuthConfig(f"{where}: user {user!r} appears twice")
            hashes[user] = hashed.encode()
        cost = max((int(h[4:6]) for h in hashes.values()), default=10)
        dummy = bcrypt.hashpw(b"no such user", bcrypt.gensalt(rounds=cost))
        return cls(path, hashes, dummy)

    @classmethod
    def empty(cls) -> Htpasswd:
        """No users: what a server goes on with while its file is broken or gone."""
        return cls(Path(), {}, bcrypt.hashpw(b"no such user", bcrypt.gensalt(rounds=10)))

    def verify(self, user: str, password: str) -> bool:
        """Whether `password` is `user`'s; blocking (bcrypt), run it in a worker thread."""
        hashed = self.hashes.get(user)
        candidate = password.encode()[:_BCRYPT_MAX_PASSWORD]
        matches = bcrypt.checkpw(candidate, hashed if hashed is not None else self.dummy_hash)
        return matches and hashed is not None
