"""A fixed signing vector: the bytes a signature covers, and the signature itself.

The expected signature was produced by the reference Rust client, not by this code:
`bindle-0.9.1 sign-invoice invoice.toml -f secrets.toml -r creator`, with a secret key
file whose one key is labelled "Vector <vector@example.com>" and whose `keypair` is
base64(seed || public key) for the seed bytes 0, 1, ..., 31 (the invoice is VECTOR_TOML
below). Ed25519 signatures are deterministic, so any correct implementation signing the
same cleartext with the same seed must produce exactly these 64 bytes.
"""

from __future__ import annotations

import base64
import hashlib

import pytest
from nacl.signing import SigningKey

from bindle_server.model import SignatureRole, parse_invoice
from bindle_server.signing import (
    KeyRing,
    SecretKey,
    SecretKeyFile,
    SignatureRejected,
    VerificationStrategy,
    cleartext,
    sign_invoice,
    signature_verifies,
)

SEED = bytes(range(32))
LABEL = "Vector <vector@example.com>"
KEYPAIR = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8DoQe/884Qvh1w3RjnS8CZZ+TWMJulDV8d3IZkElUxuA=="
PUBLIC_KEY = "A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg="
REFERENCE_SIGNATURE = (
    "eqYXBLbW0arQbhaxOyc62t+2rqOw/z2GKkO3jV/zdSn1R9IqM7c5gpgGxI9PNOUknnvFnDNNoniETAXT7HsJCQ=="
)
PARCEL_A = hashlib.sha256(b"parcel a").hexdigest()
PARCEL_B = hashlib.sha256(b"parcel b").hexdigest()
VECTOR_TOML = f"""bindleVersion = "1.0.0"

[bindle]
name = "example.com/vector"
version = "1.2.3-rc.1+build.9"

[[parcel]]
[parcel.label]
sha256 = "{PARCEL_A}"
mediaType = "text/plain"
name = "a.txt"
size = 8

[[parcel]]
[parcel.label]
sha256 = "{PARCEL_B}"
mediaType = "text/plain"
name = "b.txt"
size = 8
"""


def _vector_key() -> SecretKey:
    return SecretKey.from_keypair(LABEL, [SignatureRole.CREATOR], KEYPAIR)


def test_cleartext_is_the_reference_layout_without_at() -> None:
    invoice = parse_invoice(VECTOR_TOML.encode())
    expected = (
        "Vector <vector@example.com>\n"
        "example.com/vector\n"
        "1.2.3-rc.1+build.9\n"
        "creator\n"
        "~\n"
        f"{PARCEL_A}\n"
        f"{PARCEL_B}"
    )
    assert cleartext(invoice, LABEL, SignatureRole.CREATOR) == expected.encode()


def test_signing_the_vector_gives_the_reference_clients_signature() -> None:
    invoice = parse_invoice(VECTOR_TOML.encode())
    signed = sign_invoice(invoice, _vector_key(), SignatureRole.CREATOR, at=1795612559)
    (block,) = signed.signature or []
    assert block.signature == REFERENCE_SIGNATURE
    assert block.key == PUBLIC_KEY
    assert block.by == LABEL
    assert block.role is SignatureRole.CREATOR
    assert signature_verifies(signed, block)


def test_keypair_encoding_is_seed_then_public_key_and_round_trips() -> None:
    raw = base64.b64decode(KEYPAIR)
    assert raw[:32] == SEED
    assert raw[32:] == bytes(SigningKey(SEED).verify_key)
    key = _vector_key()
    assert key.keypair == KEYPAIR
    assert key.public_key == PUBLIC_KEY
    reloaded = SecretKeyFile.loads(SecretKeyFile([key]).dumps())
    assert reloaded.keys[0].keypair == KEYPAIR
    assert reloaded.keys[0].roles == (SignatureRole.CREATOR,)


def test_keypair_whose_halves_disagree_is_refused() -> None:
    raw = bytearray(base64.b64decode(KEYPAIR))
    raw[40] ^= 1
    with pytest.raises(ValueError, match="does not match"):
        SecretKey.from_keypair(LABEL, [], base64.b64encode(bytes(raw)).decode())


def test_a_signature_over_the_spec_layout_with_at_is_refused() -> None:
    """The signing spec's prose puts `at` before `~`; real clients do not (section 14.1)."""
    invoice = parse_invoice(VECTOR_TOML.encode())
    key = _vector_key()
    with_at = (
        f"{LABEL}\nexample.com/vector\n1.2.3-rc.1+build.9\ncreator\n1795612559\n~\n"
        f"{PARCEL_A}\n{PARCEL_B}"
    ).encode()
    block = sign_invoice(invoice, key, SignatureRole.CREATOR, at=1795612559).signature or []
    forged = block[0].model_copy(update={"signature": key.sign(with_at)})
    assert not signature_verifies(invoice, forged)
    keyring = KeyRing([key.key_entry()])
    tampered = invoice.model_copy(update={"signature": [forged]})
    with pytest.raises(SignatureRejected, match="bad signature"):
        VerificationStrategy.parse("GreedyVerification").verify(tampered, keyring)
