"""What a signature covers, signing invoices, and the verification strategies.

Signed text (BINDLE-PROTOCOL.md section 7, reference layout, section 14 item 1): the
lines `by`, bindle name, bindle version, role, `~`, then each parcel's sha256 in invoice
order, joined by "\\n" with no trailing newline. A yank signature covers `by`, name,
version, `host`, `yanked`, `~` (section 14 item 2).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from bindle_server.errors import InvalidInput
from bindle_server.model import Invoice, Signature, SignatureRole
from bindle_server.signing.keys import (
    KeyRing,
    SecretKey,
    decode_public_key,
    parse_role,
    verify_detached,
)


class SignatureRejected(InvalidInput):
    """An invoice's signatures do not satisfy the server's verification strategy."""


def cleartext(invoice: Invoice, by: str, role: SignatureRole) -> bytes:
    """The exact bytes a signature by `by` in `role` covers."""
    lines = [by, invoice.bindle.name, invoice.bindle.version, role.value, "~"]
    lines.extend(label.sha256 for label in invoice.labels)
    return "\n".join(lines).encode()


def yank_cleartext(invoice: Invoice, by: str) -> bytes:
    """The exact bytes a host's yank signature covers."""
    lines = [
        by,
        invoice.bindle.name,
        invoice.bindle.version,
        SignatureRole.HOST.value,
        "yanked",
        "~",
    ]
    return "\n".join(lines).encode()


def signature_block(
    key: SecretKey, role: SignatureRole, message: bytes, at: int | None
) -> Signature:
    return Signature.model_validate(
        {
            "by": key.label,
            "signature": key.sign(message),
            "key": key.public_key,
            "role": role.value,
            "at": int(time.time()) if at is None else at,
        }
    )


def sign_invoice(
    invoice: Invoice, key: SecretKey, role: SignatureRole, at: int | None = None
) -> Invoice:
    """A copy of the invoice with one more signature, appended after the existing ones."""
    block = signature_block(key, role, cleartext(invoice, key.label, role), at)
    return invoice.model_copy(update={"signature": [*(invoice.signature or []), block]})


def sign_yank(invoice: Invoice, key: SecretKey, at: int | None = None) -> Invoice:
    """A copy of the invoice, yanked, with a host yank signature appended."""
    block = signature_block(key, SignatureRole.HOST, yank_cleartext(invoice, key.label), at)
    signatures = [*(invoice.yanked_signature or []), block]
    return invoice.as_yanked().model_copy(update={"yanked_signature": signatures})


def signature_verifies(invoice: Invoice, signature: Signature) -> bool:
    """Whether one invoice signature is a valid Ed25519 signature over its cleartext."""
    try:
        key = decode_public_key(signature.key)
    except ValueError:
        return False
    return verify_detached(
        key, cleartext(invoice, signature.by, signature.role), signature.signature
    )


def yank_signature_verifies(invoice: Invoice, signature: Signature) -> bool:
    try:
        key = decode_public_key(signature.key)
    except ValueError:
        return False
    return verify_detached(key, yank_cleartext(invoice, signature.by), signature.signature)


_STRATEGIES: dict[str, tuple[frozenset[SignatureRole] | None, bool, tuple[SignatureRole, ...]]] = {
    # name: (examined roles (None = all), every examined key must be trusted, required roles)
    "greedyverification": (None, True, (SignatureRole.CREATOR,)),
    "creativeintegrity": (frozenset({SignatureRole.CREATOR}), True, (SignatureRole.CREATOR,)),
    "authoritativeintegrity": (
        frozenset({SignatureRole.CREATOR, SignatureRole.APPROVER}),
        False,
        (),
    ),
    "exhaustiveverification": (None, True, ()),
}
_CANONICAL_NAMES = {
    "greedyverification": "GreedyVerification",
    "creativeintegrity": "CreativeIntegrity",
    "authoritativeintegrity": "AuthoritativeIntegrity",
    "exhaustiveverification": "ExhaustiveVerification",
    "multipleattestation": "MultipleAttestation",
    "multipleattestationgreedy": "MultipleAttestationGreedy",
}


@dataclass(frozen=True)
class VerificationStrategy:
    """A reference verification strategy (section 7), keyring roles honoured (14.14).

    Every examined signature must verify; at least one examined signature must come from
    a key the keyring trusts for that signature's role; with `all_trusted`, every
    examined one must; and each role in `required` must have an examined signature.
    """

    name: str
    examined: frozenset[SignatureRole] | None
    all_trusted: bool
    required: tuple[SignatureRole, ...]

    @classmethod
    def parse(cls, text: str) -> VerificationStrategy:
        """Read a strategy name as the reference does: any case, `Name[Role, ...]`."""
        normalized = text.strip().lower()
        base, bracket, rest = normalized.partition("[")
        base = base.strip()
        if base in _STRATEGIES and not bracket:
            examined, all_trusted, required = _STRATEGIES[base]
            return cls(_CANONICAL_NAMES[base], examined, all_trusted, required)
        if base in ("multipleattestation", "multipleattestationgreedy"):
            if not bracket or not rest.endswith("]"):
                raise ValueError(f"{text!r}: give the roles as {_CANONICAL_NAMES[base]}[Role, ...]")
            roles = tuple(parse_role(part) for part in rest[:-1].split(","))
            greedy = base == "multipleattestationgreedy"
            label = f"{_CANONICAL_NAMES[base]}[{', '.join(r.value.title() for r in roles)}]"
            return cls(label, None if greedy else frozenset(roles), True, roles)
        raise ValueError(
            f"unknown verification strategy {text!r}; use GreedyVerification, "
            "CreativeIntegrity, AuthoritativeIntegrity, ExhaustiveVerification, "
            "MultipleAttestation[Roles] or MultipleAttestationGreedy[Roles]"
        )

    def verify(self, invoice: Invoice, keyring: KeyRing) -> None:
        """Raise SignatureRejected, naming the signer and the reason, unless accepted."""
        signatures = invoice.signature or []
        if not signatures:
            raise SignatureRejected(
                "the invoice has no signatures; at least one is required "
                f"(verification strategy {self.name})"
            )
        reject_duplicate_signers(invoice)
        trusted_any = False
        present: set[SignatureRole] = set()
        for signature in signatures:
            if self.examined is not None and signature.role not in self.examined:
                continue
            if not signature_verifies(invoice, signature):
                raise SignatureRejected(
                    f"{describe(signature)}: bad signature (it does not verify over this "
                    "invoice's name, version and parcel list)"
                )
            present.add(signature.role)
            if keyring.trusts(signature.key, signature.role):
                trusted_any = True
            elif self.all_trusted:
                trusted_for = sorted(role.value for role in keyring.roles_of(signature.key))
                reason = (
                    f"the key is trusted only as {', '.join(trusted_for)}"
                    if trusted_for
                    else "unknown key (not in the server's keyring)"
                )
                raise SignatureRejected(
                    f"{describe(signature)}: {reason}; verification strategy {self.name} "
                    "requires every signature it examines to come from a trusted key"
                )
        if not trusted_any:
            raise SignatureRejected(
                f"no signature comes from a key the server trusts for its role "
                f"(verification strategy {self.name}; signers: "
                f"{'; '.join(describe(s) for s in signatures)})"
            )
        for role in self.required:
            if role not in present:
                raise SignatureRejected(
                    f"missing required role: no {role.value} signature "
                    f"(verification strategy {self.name})"
                )


def reject_duplicate_signers(invoice: Invoice) -> None:
    """A key may sign an invoice only once (spec; section 14 item 10)."""
    seen: set[bytes] = set()
    for signature in invoice.signature or []:
        try:
            raw = bytes(decode_public_key(signature.key))
        except ValueError:
            raise SignatureRejected(
                f"{describe(signature)}: the key is not a valid Ed25519 public key"
            ) from None
        if raw in seen:
            raise SignatureRejected(
                f"{describe(signature)}: this key signs the invoice more than once"
            )
        seen.add(raw)


def describe(signature: Signature) -> str:
    return f"signature by {signature.by!r} (role {signature.role.value}, key {signature.key})"
