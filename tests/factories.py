"""Builders for test invoices and parcels, so tests state only what matters to them."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import tomli_w


@dataclass(frozen=True)
class ParcelData:
    """Bytes plus the label that describes them."""

    data: bytes
    media_type: str = "application/octet-stream"
    name: str | None = None
    member_of: list[str] | None = None

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def size(self) -> int:
        return len(self.data)

    def label(self) -> dict[str, Any]:
        label: dict[str, Any] = {
            "sha256": self.sha256,
            "mediaType": self.media_type,
            "size": self.size,
        }
        if self.name is not None:
            label["name"] = self.name
        return label

    def entry(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"label": self.label()}
        if self.member_of is not None:
            entry["conditions"] = {"memberOf": self.member_of}
        return entry


def parcel(data: bytes | str, **kwargs: Any) -> ParcelData:
    return ParcelData(data.encode() if isinstance(data, str) else data, **kwargs)


@dataclass
class InvoiceDoc:
    """An invoice as a plain document, rendered to TOML on demand."""

    name: str = "example.com/hello"
    version: str = "1.0.0"
    parcels: list[ParcelData] = field(default_factory=list)
    groups: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def bindle_id(self) -> str:
        return f"{self.name}/{self.version}"

    def document(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "bindleVersion": "1.0.0",
            "bindle": {"name": self.name, "version": self.version},
        }
        if self.parcels:
            document["parcel"] = [p.entry() for p in self.parcels]
        if self.groups:
            document["group"] = self.groups
        document.update(self.extra)
        return document

    def toml(self) -> bytes:
        return tomli_w.dumps(self.document()).encode()


def make_invoice(
    name: str = "example.com/hello",
    version: str = "1.0.0",
    parcels: list[ParcelData] | None = None,
    groups: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> InvoiceDoc:
    return InvoiceDoc(name, version, parcels or [], groups or [], extra)


def spin_invoice(version: str = "1.0.0") -> tuple[InvoiceDoc, list[ParcelData]]:
    """What Spin 1.x pushes for its hello-world template (its manifest, wasm and an asset)."""
    manifest = ParcelData(
        b'spin_version = "1"\nname = "spin-hello-world"\n[[component]]\nid = "hello"\n',
        media_type="application/vnd.fermyon.spin+toml",
        name="spin.toml",
    )
    wasm = ParcelData(
        b"\x00asm\x01\x00\x00\x00" + bytes(range(256)) * 8, "application/wasm", "hello.wasm"
    )
    asset = ParcelData(
        b"<h1>Hello, Fermyon</h1>\n", "text/html", "index.html", member_of=["files-hello"]
    )
    doc = InvoiceDoc(
        "spin-hello-world", version, [manifest, wasm, asset], [{"name": "files-hello"}]
    )
    return doc, [manifest, wasm, asset]


def spin_invoice_toml(doc: InvoiceDoc) -> bytes:
    """The Spin invoice with the details Spin writes: an annotation and empty conditions."""
    document = doc.document()
    manifest, wasm, _ = document["parcel"]
    manifest["label"]["annotations"] = {"fermyon:spin:delete_on_write": "."}
    wasm["conditions"] = {}
    return tomli_w.dumps(document).encode()


def as_submitted(document: dict[str, Any]) -> dict[str, Any]:
    """A stored invoice document without what the server adds: its host signatures.

    Everything else must be exactly what the client sent; the host signature is checked
    by the signing tests.
    """
    stripped = dict(document)
    signatures = [s for s in stripped.pop("signature", []) if s["role"] != "host"]
    if signatures:
        stripped["signature"] = signatures
    stripped.pop("yankedSignature", None)
    return stripped


def varied_invoices() -> list[bytes]:
    """Invoices of every shape: groups and conditions, features, annotations, many parcels,
    none, and names and labels beyond ASCII."""
    from tests.selection.invoices import multi_platform, spin_app

    spin, _ = spin_invoice()
    return [
        spin_invoice_toml(spin),
        multi_platform().toml(),
        spin_app().toml(),
        make_invoice("example.com/plain", "0.1.0").toml(),
        make_invoice("example.com/unicode", "2.0.0", [parcel('é ü 日本 "q"')]).toml(),
    ]
