"""OIDC: bearer JWTs checked against the issuer's JWKS, and the device flow for `/login`.

Nothing is fetched at start-up: the discovery document and the key set are fetched on
first use (with timeouts), the keys are cached, and a token signed with an unknown `kid`
makes at most one refetch per `refetch_interval` (key rotation without a restart, and
no way for callers to make the server hammer its issuer). Signature checks run in a
worker thread, never on the event loop; verified tokens are cached briefly, like Basic
credentials.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import anyio
import jwt

from bindle_server.auth.identity import Identity, IdentityKind
from bindle_server.auth.tokens import TOKEN_PREFIX
from bindle_server.errors import AuthProviderUnavailable, InvalidAuthConfig
from bindle_server.threads import run_sync

log = logging.getLogger(__name__)

# RS256 and ES256 only: never `none`, never HS* (a public key must not become a secret).
ALGORITHMS: Mapping[str, str] = {"RS256": "RSA", "ES256": "EC"}
DEVICE_SCOPES = "openid profile email offline_access"  # what the reference server asks for
DISCOVERY_PATH = "/.well-known/openid-configuration"


@dataclass(frozen=True)
class OidcConfig:
    """The three reference settings; all of them or none."""

    issuer_url: str
    client_id: str
    device_url: str

    @classmethod
    def from_settings(
        cls, issuer_url: str | None, client_id: str | None, device_url: str | None
    ) -> OidcConfig | None:
        """None when no OIDC setting is given; InvalidAuthConfig when only some are."""
        given = {
            "--oidc-issuer-url": issuer_url,
            "--oidc-client-id": client_id,
            "--oidc-device-url": device_url,
        }
        if not any(given.values()):
            return None
        missing = [flag for flag, value in given.items() if not value]
        if missing:
            raise InvalidAuthConfig(
                "OIDC needs --oidc-issuer-url, --oidc-client-id and --oidc-device-url "
                f"together (BINDLE_OIDC_*): {', '.join(missing)} missing"
            )
        assert issuer_url and client_id and device_url
        for flag, url in (("--oidc-issuer-url", issuer_url), ("--oidc-device-url", device_url)):
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise InvalidAuthConfig(f"{flag} must be an http(s) URL, not {url!r}")
        return cls(issuer_url, client_id, device_url)

    @property
    def issuer(self) -> str:
        return self.issuer_url.rstrip("/")


@dataclass(frozen=True)
class _Key:
    kty: str
    crv: str | None
    key: Any  # a cryptography public key


class _VerifiedCache:
    """Recently verified tokens (by SHA-256), each kept until `ttl` or its `exp`."""

    def __init__(self, ttl: float, size: int = 1024) -> None:
        self.ttl = ttl
        self.size = size
        self._entries: OrderedDict[bytes, tuple[float, float, Identity]] = OrderedDict()

    def get(self, key: bytes) -> Identity | None:
        found = self._entries.get(key)
        if found is None:
            return None
        until, exp, identity = found
        if time.monotonic() >= until or time.time() >= exp:
            del self._entries[key]
            return None
        return identity

    def put(self, key: bytes, identity: Identity, exp: float) -> None:
        self._entries[key] = (time.monotonic() + self.ttl, exp, identity)
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)


class OidcVerifier:
    """A `BearerVerifier` for JWTs issued by one OIDC provider to one client id."""

    def __init__(
        self,
        config: OidcConfig,
        *,
        timeout: float = 10.0,
        refetch_interval: float = 60.0,
        leeway: float = 30.0,
        cache_ttl: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.timeout = timeout
        self.refetch_interval = refetch_interval
        self.leeway = leeway
        self._clock = clock
        self._cache = _VerifiedCache(cache_ttl)
        self._discovery: dict[str, Any] | None = None
        self._keys: dict[str, _Key] = {}
        self._last_fetch: float | None = None
        self._lock = anyio.Lock()

    @property
    def active(self) -> bool:
        return True

    def describe(self) -> str:
        return f"OIDC (issuer {self.config.issuer_url}, client id {self.config.client_id})"

    async def verify(self, credential: str) -> Identity | None:
        """The identity a valid JWT proves; None for anything else (`bindle_` tokens too)."""
        if credential.startswith(TOKEN_PREFIX):
            return None  # the token file's, never a JWT
        cache_key = hashlib.sha256(credential.encode()).digest()
        cached = self._cache.get(cache_key)
        if cached is not None:
            return cached
        try:
            header = jwt.get_unverified_header(credential)
        except jwt.PyJWTError:
            return None
        alg, kid = header.get("alg"), header.get("kid")
        if not isinstance(alg, str) or alg not in ALGORITHMS or not isinstance(kid, str):
            return None
        key = await self._key(kid)
        if key is None or key.kty != ALGORITHMS[alg] or (alg == "ES256" and key.crv != "P-256"):
            return None
        claims = await run_sync(self._decode, credential, key, alg)
        if claims is None:
            return None
        identity = identity_from_claims(claims)
        if identity is not None:
            self._cache.put(cache_key, identity, float(claims["exp"]))
        return identity

    def _decode(self, credential: str, key: _Key, alg: str) -> dict[str, Any] | None:
        try:
            claims: dict[str, Any] = jwt.decode(
                credential,
                key.key,
                algorithms=[alg],
                audience=self.config.client_id,
                issuer=[self.config.issuer, self.config.issuer + "/"],
                leeway=self.leeway,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.PyJWTError as exc:
            log.info("OIDC token refused: %s", exc)
            return None
        return claims

    async def _key(self, kid: str) -> _Key | None:
        found = self._keys.get(kid)
        if found is not None:
            return found
        async with self._lock:
            found = self._keys.get(kid)
            if found is not None:
                return found  # another request refetched while we waited
            now = self._clock()
            if self._last_fetch is not None and now - self._last_fetch < self.refetch_interval:
                return None
            self._last_fetch = now
            try:
                self._keys = await self._fetch_keys()
            except AuthProviderUnavailable as exc:
                log.error("cannot fetch the OIDC issuer's keys: %s", exc.message)
                return None
            return self._keys.get(kid)

    async def discovery(self) -> dict[str, Any]:
        """The issuer's OpenID configuration (fetched once, then kept)."""
        if self._discovery is None:
            url = self.config.issuer + DISCOVERY_PATH
            document = await self._get_json(url)
            if not isinstance(document.get("jwks_uri"), str):
                raise AuthProviderUnavailable(f"{url} names no jwks_uri")
            self._discovery = document
        return self._discovery

    async def _fetch_keys(self) -> dict[str, _Key]:
        jwks = await self._get_json((await self.discovery())["jwks_uri"])
        return await run_sync(_parse_jwks, jwks)

    async def _get_json(self, url: str) -> dict[str, Any]:
        import httpx  # here: servers without OIDC never load it

        try:
            async with httpx.AsyncClient(timeout=self.timeout) as client:
                response = await client.get(url, headers={"Accept": "application/json"})
            response.raise_for_status()
            document = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise AuthProviderUnavailable(f"GET {url}: {exc}") from None
        if not isinstance(document, dict):
            raise AuthProviderUnavailable(f"GET {url}: not a JSON object")
        return document

    async def start_device_flow(self) -> dict[str, Any]:
        """Ask the device endpoint for a code; the answer `/login` gives stock clients.

        RFC 8628 section 3.2 fields plus `client_id` and `token_url` (the issuer's token
        endpoint), as the reference server answers.
        """
        token_url = (await self.discovery()).get("token_endpoint")
        if not isinstance(token_url, str):
            raise AuthProviderUnavailable(
                "the issuer's OpenID configuration names no token_endpoint"
            )
        url = self.config.device_url
        import httpx

        try:
            async with httpx.AsyncClient(timeout=self.timeout) as client:
                response = await client.post(
                    url,
                    data={"client_id": self.config.client_id, "scope": DEVICE_SCOPES},
                    headers={"Accept": "application/json"},
                )
            response.raise_for_status()
            answer = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise AuthProviderUnavailable(f"POST {url}: {exc}") from None
        return device_authorization(answer, self.config.client_id, token_url)


def device_authorization(answer: object, client_id: str, token_url: str) -> dict[str, Any]:
    """Check a device authorization response and add the reference's two extra fields."""
    if not isinstance(answer, dict):
        raise AuthProviderUnavailable("the device endpoint answered something other than an object")
    # Some providers (Google) say verification_url; the reference clients accept both.
    verification_uri = answer.get("verification_uri", answer.get("verification_url"))
    fields: dict[str, Any] = {
        "device_code": answer.get("device_code"),
        "user_code": answer.get("user_code"),
        "verification_uri": verification_uri,
    }
    if any(not isinstance(value, str) for value in fields.values()):
        raise AuthProviderUnavailable(
            "the device endpoint's answer lacks device_code, user_code or URI"
        )
    complete = answer.get("verification_uri_complete")
    if isinstance(complete, str):
        fields["verification_uri_complete"] = complete
    expires_in, interval = answer.get("expires_in"), answer.get("interval", 5)
    if not _is_int(expires_in) or not _is_int(interval):
        raise AuthProviderUnavailable(
            "the device endpoint's expires_in or interval is not an integer"
        )
    fields |= {
        "expires_in": expires_in,
        "interval": interval,
        "client_id": client_id,
        "token_url": token_url,
    }
    return fields


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def identity_from_claims(claims: Mapping[str, Any]) -> Identity | None:
    """`user:NAME` from preferred_username, a verified email or sub; groups from `groups`.

    An email counts only when `email_verified` is true (as in the reference), since some
    providers let anyone put any address in their profile.
    """
    name: object = claims.get("preferred_username")
    if not _nonempty(name):
        email = claims.get("email")
        name = email if claims.get("email_verified") is True and _nonempty(email) else None
    if not _nonempty(name):
        name = claims.get("sub")
    if not isinstance(name, str) or not name:
        return None
    raw_groups = claims.get("groups")
    groups = (
        frozenset(g for g in raw_groups if isinstance(g, str) and g)
        if isinstance(raw_groups, list)
        else frozenset()
    )
    return Identity(IdentityKind.USER, name, groups)


def _nonempty(value: object) -> bool:
    return isinstance(value, str) and bool(value)


def _parse_jwks(jwks: Mapping[str, Any]) -> dict[str, _Key]:
    """Signing keys by kid: RSA and EC P-256 only; keys for encryption are skipped."""
    keys: dict[str, _Key] = {}
    entries = jwks.get("keys")
    if not isinstance(entries, list):
        raise AuthProviderUnavailable("the JWKS has no keys list")
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("kid"), str):
            continue
        if entry.get("use", "sig") != "sig" or entry.get("kty") not in ("RSA", "EC"):
            continue
        try:
            parsed = jwt.PyJWK(entry)
        except jwt.PyJWTError as exc:
            log.warning("skipping OIDC key %s: %s", entry["kid"], exc)
            continue
        keys[entry["kid"]] = _Key(entry["kty"], entry.get("crv"), parsed.key)
    return keys
