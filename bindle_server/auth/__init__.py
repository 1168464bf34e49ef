"""Who is calling (authentication) and what they may do (authorization)."""

from bindle_server.auth.authn import Authenticator, BearerVerifier, TokenVerifier
from bindle_server.auth.authz import Authorizer, Policy, Rule, Verb
from bindle_server.auth.htpasswd import Htpasswd
from bindle_server.auth.identity import ANONYMOUS, Identity, IdentityKind
from bindle_server.auth.tokens import TokenEntry, TokenFile, TokenRegistry
from bindle_server.model.duration import parse_duration

__all__ = [
    "ANONYMOUS",
    "Authenticator",
    "Authorizer",
    "BearerVerifier",
    "Htpasswd",
    "Identity",
    "IdentityKind",
    "Policy",
    "Rule",
    "TokenEntry",
    "TokenFile",
    "TokenRegistry",
    "TokenVerifier",
    "Verb",
    "parse_duration",
]
