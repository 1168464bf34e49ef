"""Authentication: an `Authorization` header to an Identity (HTTP Basic, bearer tokens).

Bearer credentials go through `BearerVerifier`s in turn: the token file now, an OIDC
verifier (JWT checked against the issuer's JWKS) later, as one more verifier. A header
that is present but not valid is refused, whatever the method: the caller meant to be
someone, and acting for them anonymously would hide the mistake.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol

from bindle_server.auth.htpasswd import Htpasswd
from bindle_server.auth.identity import ANONYMOUS, Identity, token, user
from bindle_server.auth.reloading import ReloadingFile
from bindle_server.auth.tokens import TokenRegistry
from bindle_server.errors import Unauthenticated
from bindle_server.threads import run_sync

REALM = "bindle"
INVALID = "unauthorized: invalid credentials"
REQUIRED = "unauthorized: this request needs credentials (HTTP Basic or a bearer token)"


class BearerVerifier(Protocol):
    """One source of bearer tokens (the token file; OIDC later)."""

    @property
    def active(self) -> bool:
        """Whether this source may accept a token now (to advertise the Bearer scheme)."""
        ...

    async def verify(self, credential: str) -> Identity | None:
        """The identity a bearer credential proves, or None when this source does not know it."""
        ...


class TokenVerifier:
    """Bearer tokens from the token file (`bindle-server token create`)."""

    def __init__(self, registry: TokenRegistry) -> None:
        self.registry = registry

    @property
    def active(self) -> bool:
        return self.registry.exists

    async def verify(self, credential: str) -> Identity | None:
        if self.registry.refresh_due():
            await run_sync(self.registry.refresh)
        entry = self.registry.match(credential)
        return token(entry.name) if entry is not None else None


class _SuccessCache:
    """Recently verified Basic credentials, so a push of many parcels pays bcrypt once.

    Keyed by a SHA-256 of the whole header value (the password is never kept); only
    successes are cached, for `ttl` seconds, at most `size` of them.
    """

    def __init__(self, ttl: float = 60.0, size: int = 1024) -> None:
        self.ttl = ttl
        self.size = size
        self._entries: OrderedDict[bytes, tuple[float, Identity]] = OrderedDict()

    def get(self, key: bytes) -> Identity | None:
        found = self._entries.get(key)
        if found is None:
            return None
        expires, identity = found
        if time.monotonic() >= expires:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return identity

    def clear(self) -> None:
        self._entries.clear()

    def put(self, key: bytes, identity: Identity) -> None:
        self._entries[key] = (time.monotonic() + self.ttl, identity)
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)


@dataclass(frozen=True)
class _Basic:
    user: str
    password: str


class Authenticator:
    """Turns the `Authorization` header into an Identity, or raises Unauthenticated.

    With nothing configured every request is anonymous and the header is ignored, as the
    reference server does in unauthenticated mode (stock clients may always send one).
    """

    def __init__(
        self,
        htpasswd: ReloadingFile[Htpasswd] | None = None,
        bearers: tuple[BearerVerifier, ...] = (),
        *,
        cache_ttl: float = 60.0,
    ) -> None:
        self.htpasswd = htpasswd
        self.bearers = bearers
        self._cache = _SuccessCache(cache_ttl)

    @property
    def challenges(self) -> tuple[str, ...]:
        """One challenge per scheme a caller may use now (the token file may appear later)."""
        challenges = []
        if self.htpasswd is not None:
            challenges.append(f'Basic realm="{REALM}", charset="UTF-8"')
        if any(bearer.active for bearer in self.bearers):
            challenges.append(f'Bearer realm="{REALM}"')
        return tuple(challenges)

    @property
    def enabled(self) -> bool:
        return self.htpasswd is not None or bool(self.bearers)

    def refuse(self, message: str = INVALID) -> Unauthenticated:
        return Unauthenticated(message, self.challenges)

    async def authenticate(self, authorization: str | None) -> Identity:
        """The caller's identity: anonymous without a header, else what it proves."""
        if not self.enabled or authorization is None:
            return ANONYMOUS
        scheme, _, credential = authorization.strip().partition(" ")
        credential = credential.strip()
        if not credential:
            raise self.refuse()
        scheme = scheme.lower()
        if scheme == "basic" and self.htpasswd is not None:
            return await self._basic(credential)
        if scheme == "bearer":
            for verifier in self.bearers:
                identity = await verifier.verify(credential)
                if identity is not None:
                    return identity
        raise self.refuse()

    async def _basic(self, credential: str) -> Identity:
        assert self.htpasswd is not None
        key = hashlib.sha256(credential.encode()).digest()
        if self.htpasswd.refresh_due() and await run_sync(self.htpasswd.refresh):
            # A removed user or a changed password must not live on in the cache.
            self._cache.clear()
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        basic = _decode_basic(credential)
        if basic is None:
            raise self.refuse()
        # bcrypt takes tens of milliseconds by design: never on the event loop.
        verified = await run_sync(self.htpasswd.value.verify, basic.user, basic.password)
        if not verified:
            raise self.refuse()
        identity = user(basic.user)
        self._cache.put(key, identity)
        return identity


def _decode_basic(credential: str) -> _Basic | None:
    try:
        decoded = base64.b64decode(credential, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    name, sep, password = decoded.partition(":")
    return _Basic(name, password) if sep and name else None
