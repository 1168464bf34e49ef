"""Ed25519 signing and verification of invoices, keyrings and key files (a library the
server and the `bindle` client share)."""

from bindle_server.signing.host import (
    DEFAULT_STRATEGY,
    HostSigning,
    load_or_create_host_keys,
    open_host_signing,
)
from bindle_server.signing.keys import (
    KeyEntry,
    KeyFileError,
    KeyRing,
    SecretKey,
    SecretKeyFile,
    parse_role,
)
from bindle_server.signing.verify import (
    SignatureRejected,
    VerificationStrategy,
    cleartext,
    sign_invoice,
    sign_yank,
    signature_verifies,
    yank_cleartext,
    yank_signature_verifies,
)

__all__ = [
    "DEFAULT_STRATEGY",
    "HostSigning",
    "KeyEntry",
    "KeyFileError",
    "KeyRing",
    "SecretKey",
    "SecretKeyFile",
    "SignatureRejected",
    "VerificationStrategy",
    "cleartext",
    "load_or_create_host_keys",
    "open_host_signing",
    "parse_role",
    "sign_invoice",
    "sign_yank",
    "signature_verifies",
    "yank_cleartext",
    "yank_signature_verifies",
]
