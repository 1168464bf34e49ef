"""The API's authentication and authorization: set up from Settings, checked per request.

`get_access` runs for every `/v1` route (a router dependency, so a bad `Authorization`
header is refused everywhere, as the reference does); routes then call
`access.require(verb, name)` for the bindle they act on.
"""

from __future__ import annotations

import base64
import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request

from bindle_server.auth import (
    Authenticator,
    Authorizer,
    BearerVerifier,
    Htpasswd,
    Identity,
    Policy,
    TokenRegistry,
    TokenVerifier,
    Verb,
)
from bindle_server.auth.authn import REQUIRED
from bindle_server.auth.reloading import ReloadingFile
from bindle_server.auth.tokens import TOKEN_PREFIX
from bindle_server.config import Settings
from bindle_server.errors import AccessDenied, InvalidAuthConfig, Unauthenticated
from bindle_server.events import CALLER, Action, Caller, Event, EventSink

if TYPE_CHECKING:
    from bindle_server.auth.oidc import OidcVerifier

# Longest claimed user name kept in an audit line.
_CLAIMED_NAME = 128


@dataclass(frozen=True)
class AuthSetup:
    """Everything a server process needs to authenticate and authorize requests."""

    authenticator: Authenticator
    authorizer: Authorizer
    htpasswd: ReloadingFile[Htpasswd] | None = None
    tokens: TokenRegistry | None = None
    oidc: OidcVerifier | None = None

    @property
    def enabled(self) -> bool:
        return self.authenticator.enabled

    def describe(self) -> str:
        """The auth mode in one line, for the start-up log."""
        if not self.enabled:
            return "none (every caller may read and write)"
        modes = []
        if self.htpasswd is not None:
            found = "" if self.htpasswd.exists else ", which does not exist yet"
            modes.append(
                f"HTTP Basic ({len(self.htpasswd.value.hashes)} user(s) in {self.htpasswd.path}"
                f"{found}, reloaded when it changes)"
            )
        if self.tokens is not None and self.tokens.exists:
            modes.append(f"bearer tokens ({len(self.tokens)} in {self.tokens.path})")
        if self.oidc is not None:
            modes.append(self.oidc.describe())
        policy = self.authorizer.policy
        rules = (
            f"policy {policy.source} ({len(policy.rules)} rule(s))"
            if policy is not None
            else "no policy (authenticated callers may do everything)"
        )
        anonymous = "on" if self.authorizer.anonymous_read else "off"
        return f"{' and '.join(modes)}; authorization: {rules}; anonymous read: {anonymous}"


def open_auth(settings: Settings) -> AuthSetup:
    """Load the htpasswd, token and policy files; InvalidAuthConfig says what is wrong.

    Authentication is on when an htpasswd file is given, OIDC is configured (all three
    settings) or the token file exists (even with every token revoked: deleting the
    file, not revoking, turns token auth off). OIDC makes no network request here.
    """
    htpasswd = (
        ReloadingFile(settings.htpasswd_file, Htpasswd.load, Htpasswd.empty(), "htpasswd users")
        if settings.htpasswd_file
        else None
    )
    # Read even when the file does not exist yet: a token created while the server runs
    # must work at once. Only its existence at start-up turns authentication on, though:
    # an open server does not close itself while serving.
    tokens = TokenRegistry.open(settings.tokens_path)
    oidc = _open_oidc(settings)
    # The token file first (cheap, `bindle_` tokens only), then JWTs.
    bearers: tuple[BearerVerifier, ...] = (TokenVerifier(tokens),)
    if oidc is not None:
        bearers = (*bearers, oidc)
    if htpasswd is None and oidc is None and not tokens.exists:
        bearers = ()
    authenticator = Authenticator(htpasswd, bearers)
    policy = Policy.load(settings.auth_policy) if settings.auth_policy else None
    if not authenticator.enabled:
        if settings.anonymous_read is False:
            raise InvalidAuthConfig(
                "--no-anonymous-read needs authentication: give --htpasswd-file or the "
                "--oidc-* settings, or create a token with `bindle-server token create`"
            )
        if policy is not None:
            raise InvalidAuthConfig(
                "--auth-policy needs authentication: give --htpasswd-file or the --oidc-* "
                "settings, or create a token with `bindle-server token create`"
            )
        return AuthSetup(authenticator, Authorizer(open_access=True))
    anonymous_read = bool(settings.anonymous_read)  # default (None): off once auth is on
    authorizer = Authorizer(policy, anonymous_read=anonymous_read)
    return AuthSetup(authenticator, authorizer, htpasswd, tokens, oidc)


def _open_oidc(settings: Settings) -> OidcVerifier | None:
    oidc = (settings.oidc_issuer_url, settings.oidc_client_id, settings.oidc_device_url)
    if not any(oidc):
        return None
    # Imported only when configured: the JWT and HTTP client libraries it brings cost
    # every server process start-up time and memory.
    from bindle_server.auth.oidc import OidcConfig, OidcVerifier

    config = OidcConfig.from_settings(*oidc)
    return OidcVerifier(config) if config is not None else None


@dataclass(frozen=True)
class Access:
    """The caller of one request and the checks routes make with it."""

    identity: Identity
    setup: AuthSetup

    def require(self, verb: Verb, name: str) -> None:
        """401 for an anonymous caller, 403 for an authenticated one, unless allowed."""
        if not self.setup.authorizer.allows(self.identity, verb, name):
            raise self._refusal(verb, name)

    def require_any(self, verb: Verb) -> None:
        """Refuse early (before a body is read) when `verb` is allowed on no name at all."""
        if not self.setup.authorizer.may_ever(self.identity, verb):
            raise self._refusal(verb, None)

    def readable_prefixes(self) -> tuple[str, ...] | None:
        """Name prefixes the caller may read (None: every name), for filtering queries."""
        return self.setup.authorizer.readable_prefixes(self.identity)

    def _refusal(self, verb: Verb, name: str | None) -> Exception:
        if self.identity.is_anonymous:
            return self.setup.authenticator.refuse(REQUIRED)
        return AccessDenied(self.identity.subject, verb.value, name)


async def get_access(request: Request) -> Access:
    """Authenticate the caller, and name it (with its address) in the events it causes."""
    setup: AuthSetup = request.app.state.auth
    address = request.client.host if request.client else ""
    try:
        identity = await setup.authenticator.authenticate(request.headers.get("authorization"))
    except Unauthenticated as exc:
        CALLER.set(Caller(_claimed(request.headers.get("authorization")), address))
        events: EventSink = request.app.state.service.events
        await events.record(Event.now(Action.AUTH_REFUSED, result=exc.message))
        raise
    CALLER.set(Caller(identity.subject, address))
    return Access(identity, setup)


def _claimed(authorization: str | None) -> str:
    """Who refused credentials claim to be, for the audit log: `user:NAME` from a Basic
    header (the name is claimed, not proven: the password did not match), `token` for a
    bearer token (its name is known only once it matches), `bearer` for another bearer
    credential (an OIDC JWT), else `unauthenticated`."""
    scheme, _, credential = (authorization or "").partition(" ")
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(credential.strip(), validate=True).decode()
        except (ValueError, UnicodeDecodeError):
            return "unauthenticated"
        claimed, sep, _ = decoded.partition(":")
        # The name is the caller's text, and it goes into every refusal line: printable
        # characters only (no NUL, newline or escape sequence), and bounded.
        printable = (char for char in claimed if char.isprintable())
        name = "".join(itertools.islice(printable, _CLAIMED_NAME))
        return f"user:{name}" if sep and name else "unauthenticated"
    if scheme.lower() == "bearer":
        return "token" if credential.strip().startswith(TOKEN_PREFIX) else "bearer"
    return "unauthenticated"


AccessDep = Annotated[Access, Depends(get_access)]
