"""Keys and signed invoices for the signing tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import tomli_w

from bindle_server.model import Invoice, SignatureRole, dump_invoice, parse_invoice
from bindle_server.signing import KeyEntry, KeyRing, SecretKey, sign_invoice
from tests.factories import InvoiceDoc


@dataclass(frozen=True)
class Signer:
    """A key and the role it signs in."""

    key: SecretKey
    role: SignatureRole


def make_key(label: str, *roles: SignatureRole) -> SecretKey:
    return SecretKey.generate(label, roles)


def signed_toml(doc: InvoiceDoc, *signers: Signer) -> bytes:
    """The invoice document signed by each signer in turn, as a client would send it."""
    invoice: Invoice = parse_invoice(doc.toml())
    for signer in signers:
        invoice = sign_invoice(invoice, signer.key, signer.role)
    return dump_invoice(invoice)


def write_keyring(path: Path, entries: list[KeyEntry]) -> Path:
    path.write_text(tomli_w.dumps(KeyRing(entries).document()))
    return path
