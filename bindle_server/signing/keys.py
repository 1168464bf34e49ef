"""Ed25519 key pairs, secret key files and keyrings, in the Bindle file formats.

Secret key file (`version = "1.0"`, `[[key]]` with `label`, `keypair`, `roles`): `keypair`
is standard base64 of 64 bytes, the 32-byte seed followed by the 32-byte public key.
Keyring (`version = "1.0"`, `[[key]]` with `label`, `roles`, `key`, optional
`labelSignature`): `key` is base64 of the 32-byte public key and `labelSignature` an
Ed25519 signature over the label's UTF-8 bytes. BINDLE-PROTOCOL.md sections 7 and 9.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli
import tomli_w
from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from bindle_server.durable import write_private_file
from bindle_server.errors import InvalidInput
from bindle_server.model import SignatureRole

KEY_FILE_VERSION = "1.0"


class KeyFileError(InvalidInput):
    """A secret key file or keyring cannot be read."""


def parse_role(text: str) -> SignatureRole:
    """A role from user input: any case, surrounding spaces, or its first letter."""
    normalized = text.strip().lower()
    for role in SignatureRole:
        if normalized in (role.value, role.value[0]):
            return role
    raise ValueError(f"unknown signature role {text!r}; use creator, approver, host or proxy")


def encode_key(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def decode_public_key(text: str) -> VerifyKey:
    """A public key from its base64 text; ValueError when it is not 32 bytes of base64."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the key is not valid base64") from None
    if len(raw) != 32:
        raise ValueError(f"the key has {len(raw)} bytes, an Ed25519 public key has 32")
    return VerifyKey(raw)


def verify_detached(key: VerifyKey, message: bytes, signature_b64: str) -> bool:
    """Strict Ed25519 verification (libsodium refuses non-canonical and small-order input)."""
    try:
        signature = base64.b64decode(signature_b64, validate=True)
    except (binascii.Error, ValueError):
        return False
    if len(signature) != 64:
        return False
    try:
        key.verify(message, signature)
    except BadSignatureError:
        return False
    return True


@dataclass(frozen=True)
class SecretKey:
    """A signing key with the label and roles it is used under."""

    label: str
    roles: tuple[SignatureRole, ...]
    signing_key: SigningKey

    @classmethod
    def generate(cls, label: str, roles: Iterable[SignatureRole]) -> SecretKey:
        return cls(label, tuple(roles), SigningKey.generate())

    @classmethod
    def from_keypair(
        cls, label: str, roles: Iterable[SignatureRole], keypair_b64: str
    ) -> SecretKey:
        try:
            raw = base64.b64decode(keypair_b64, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"keypair of {label!r} is not valid base64") from None
        if len(raw) != 64:
            raise ValueError(f"keypair of {label!r} has {len(raw)} bytes, expected 64")
        signing_key = SigningKey(raw[:32])
        if bytes(signing_key.verify_key) != raw[32:]:
            raise ValueError(f"keypair of {label!r}: the public half does not match the seed")
        return cls(label, tuple(roles), signing_key)

    @property
    def keypair(self) -> str:
        """The secret key file encoding: base64 of seed + public key."""
        return encode_key(bytes(self.signing_key) + bytes(self.signing_key.verify_key))

    @property
    def public_key(self) -> str:
        return encode_key(bytes(self.signing_key.verify_key))

    def sign(self, message: bytes) -> str:
        return encode_key(self.signing_key.sign(message).signature)

    def key_entry(self, roles: Sequence[SignatureRole] | None = None) -> KeyEntry:
        """The public keyring entry for this key, with its label signed."""
        return KeyEntry(
            label=self.label,
            roles=tuple(self.roles if roles is None else roles),
            key=self.public_key,
            label_signature=self.sign(self.label.encode()),
        )


@dataclass(frozen=True)
class KeyEntry:
    """One trusted public key and the roles it is trusted for."""

    label: str
    roles: tuple[SignatureRole, ...]
    key: str
    label_signature: str | None = None

    def document(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "label": self.label,
            "roles": [role.value for role in self.roles],
            "key": self.key,
        }
        if self.label_signature is not None:
            document["labelSignature"] = self.label_signature
        return document


@dataclass
class KeyRing:
    """Trusted public keys. A key counts only for the roles its entry lists (section 14.14)."""

    entries: list[KeyEntry] = field(default_factory=list)

    def roles_of(self, key: str) -> set[SignatureRole]:
        """Every role any entry grants to this base64 public key (compared as key bytes)."""
        wanted = _key_bytes(key)
        roles: set[SignatureRole] = set()
        if wanted is None:
            return roles
        for entry in self.entries:
            if _key_bytes(entry.key) == wanted:
                roles.update(entry.roles)
        return roles

    def trusts(self, key: str, role: SignatureRole) -> bool:
        return role in self.roles_of(key)

    def add(self, entry: KeyEntry) -> None:
        self.entries.append(entry)

    def document(self) -> dict[str, Any]:
        return {"version": KEY_FILE_VERSION, "key": [entry.document() for entry in self.entries]}

    def dumps(self) -> str:
        return tomli_w.dumps(self.document())

    @classmethod
    def loads(cls, text: str, source: str = "keyring") -> KeyRing:
        document = _load_toml(text, source)
        entries = []
        for position, raw in enumerate(_key_tables(document, source)):
            where = f"{source}: key[{position}]"
            try:
                label, key = str(raw["label"]), str(raw["key"])
                roles = tuple(parse_role(str(role)) for role in raw.get("roles", []))
                decode_public_key(key)
            except KeyError as exc:
                raise KeyFileError(f"{where}: missing field {exc.args[0]!r}") from None
            except ValueError as exc:
                raise KeyFileError(f"{where}: {exc}") from None
            signature = raw.get("labelSignature")
            entries.append(
                KeyEntry(label, roles, key, None if signature is None else str(signature))
            )
        return cls(entries)

    @classmethod
    def load(cls, path: Path) -> KeyRing:
        return cls.loads(_read(path), str(path))

    def save(self, path: Path) -> None:
        write_private_file(path, self.dumps().encode(), mode=0o644)


@dataclass
class SecretKeyFile:
    """A secret key file: the keys a server (or a user) signs with."""

    keys: list[SecretKey] = field(default_factory=list)

    def first_with_role(self, role: SignatureRole) -> SecretKey | None:
        return next((key for key in self.keys if role in key.roles), None)

    def dumps(self) -> str:
        return tomli_w.dumps(
            {
                "version": KEY_FILE_VERSION,
                "key": [
                    {
                        "label": key.label,
                        "keypair": key.keypair,
                        "roles": [role.value for role in key.roles],
                    }
                    for key in self.keys
                ],
            }
        )

    @classmethod
    def loads(cls, text: str, source: str = "secret key file") -> SecretKeyFile:
        document = _load_toml(text, source)
        keys = []
        for position, raw in enumerate(_key_tables(document, source)):
            where = f"{source}: key[{position}]"
            try:
                roles = [parse_role(str(role)) for role in raw.get("roles", [])]
                keys.append(SecretKey.from_keypair(str(raw["label"]), roles, str(raw["keypair"])))
            except KeyError as exc:
                raise KeyFileError(f"{where}: missing field {exc.args[0]!r}") from None
            except ValueError as exc:
                raise KeyFileError(f"{where}: {exc}") from None
        return cls(keys)

    @classmethod
    def load(cls, path: Path) -> SecretKeyFile:
        return cls.loads(_read(path), str(path))

    def save(self, path: Path, *, replace: bool = True) -> bool:
        """Write the file (mode 0600); see write_private_file for `replace`."""
        return write_private_file(path, self.dumps().encode(), mode=0o600, replace=replace)


def _key_bytes(key: str) -> bytes | None:
    try:
        return bytes(decode_public_key(key))
    except ValueError:
        return None


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise KeyFileError(f"cannot read {path}: {exc.strerror}") from None


def _load_toml(text: str, source: str) -> dict[str, Any]:
    try:
        return tomli.loads(text)
    except tomli.TOMLDecodeError as exc:
        raise KeyFileError(f"{source} is not valid TOML: {exc}") from None


def _key_tables(document: dict[str, Any], source: str) -> list[dict[str, Any]]:
    tables = document.get("key", [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise KeyFileError(f"{source}: `key` must be an array of tables ([[key]])")
    return tables
