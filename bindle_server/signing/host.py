"""The server's side of signing: verify submitted invoices, sign them (and yanks) as host."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from bindle_server.model import Invoice, SignatureRole
from bindle_server.signing.keys import KeyEntry, KeyRing, SecretKey, SecretKeyFile
from bindle_server.signing.verify import (
    SignatureRejected,
    VerificationStrategy,
    reject_duplicate_signers,
    sign_invoice,
    sign_yank,
)

log = logging.getLogger(__name__)

DEFAULT_STRATEGY = "GreedyVerification"


def load_or_create_host_keys(path: Path) -> SecretKeyFile:
    """The server's signing keys; on first start, one new host key saved with mode 0600."""
    if path.exists():
        return SecretKeyFile.load(path)
    key = SecretKey.generate(
        f"bindle-server host key ({socket.gethostname()})", [SignatureRole.HOST]
    )
    keys = SecretKeyFile([key])
    if not keys.save(path, replace=False):
        return SecretKeyFile.load(path)  # another process starting with us created it first
    log.info("created host signing key %s in %s", key.public_key, path)
    return keys


def open_host_signing(
    signing_keys: Path, keyring: Path | None, strategy: str, require_signatures: bool
) -> HostSigning:
    """Load (or create) the host keys and the keyring; raise ValueError saying what is wrong."""
    trusted = KeyRing()
    if keyring is not None:
        if keyring.exists():
            trusted = KeyRing.load(keyring)
        else:
            log.warning(
                "keyring %s does not exist: no keys are trusted but the server's own", keyring
            )
    return HostSigning(
        load_or_create_host_keys(signing_keys),
        trusted,
        VerificationStrategy.parse(strategy),
        require_signatures,
    )


@dataclass
class HostSigning:
    """Verification on create, host signatures, and the keys the server publishes."""

    keys: SecretKeyFile
    keyring: KeyRing
    strategy: VerificationStrategy
    require_signatures: bool = False

    def __post_init__(self) -> None:
        host_key = self.keys.first_with_role(SignatureRole.HOST)
        if host_key is None:
            raise ValueError("the signing key file has no key with the host role")
        self.host_key: SecretKey = host_key
        # The server's own keys are always trusted, for the roles they are held for.
        for key in self.keys.keys:
            self.keyring.add(key.key_entry())

    def accept(self, invoice: Invoice) -> Invoice:
        """Verify a submitted invoice and return it signed as host (or SignatureRejected).

        Unsigned invoices pass when signatures are not required (what Bindle 0.8 clients,
        Spin 1.x and hippo-cli send; section 14 item 12); signed ones are always verified.
        """
        if invoice.signature or self.require_signatures:
            self.strategy.verify(invoice, self.keyring)
        signed = sign_invoice(invoice, self.host_key, SignatureRole.HOST)
        # The host key may itself have signed the submission: one key, one signature.
        reject_duplicate_signers(signed)
        return signed

    def yank(self, invoice: Invoice) -> Invoice:
        """The invoice marked yanked, with the host's yank signature added."""
        return sign_yank(invoice, self.host_key)

    def published_keys(self, roles: Iterable[SignatureRole] | None = None) -> KeyRing:
        """The server's public keys with signed labels, optionally only those with `roles`."""
        wanted = None if roles is None else set(roles)
        entries: list[KeyEntry] = [
            key.key_entry()
            for key in self.keys.keys
            if wanted is None or wanted.intersection(key.roles)
        ]
        return KeyRing(entries)

    def describe(self) -> str:
        mode = "signatures required" if self.require_signatures else "unsigned invoices accepted"
        trusted = len(self.keyring.entries)
        return (
            f"verification strategy {self.strategy.name}, {mode}, host key "
            f"{self.host_key.public_key} ({self.host_key.label!r}), {trusted} trusted key(s)"
        )


__all__ = [
    "DEFAULT_STRATEGY",
    "HostSigning",
    "SignatureRejected",
    "load_or_create_host_keys",
    "open_host_signing",
]
