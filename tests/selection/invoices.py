"""Invoices with groups, conditions and features, shaped like the ones selections are for."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import tomli_w

from bindle_server.model import Invoice, parse_invoice


@dataclass(frozen=True)
class Part:
    """One parcel: its bytes, name, conditions and features."""

    name: str | None
    data: bytes
    member_of: tuple[str, ...] = ()
    requires: tuple[str, ...] = ()
    feature: dict[str, dict[str, str]] = field(default_factory=dict)
    media_type: str = "application/octet-stream"

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    def entry(self) -> dict[str, Any]:
        label: dict[str, Any] = {
            "sha256": self.sha256,
            "mediaType": self.media_type,
            "size": len(self.data),
        }
        if self.name is not None:
            label["name"] = self.name
        if self.feature:
            label["feature"] = self.feature
        entry: dict[str, Any] = {"label": label}
        conditions: dict[str, list[str]] = {}
        if self.member_of:
            conditions["memberOf"] = list(self.member_of)
        if self.requires:
            conditions["requires"] = list(self.requires)
        if conditions:
            entry["conditions"] = conditions
        return entry


@dataclass(frozen=True)
class Bindle:
    """An invoice document and its parcels, by name."""

    name: str
    version: str
    parts: tuple[Part, ...]
    groups: tuple[dict[str, Any], ...]

    @property
    def bindle_id(self) -> str:
        return f"{self.name}/{self.version}"

    def toml(self) -> bytes:
        document: dict[str, Any] = {
            "bindleVersion": "1.0.0",
            "bindle": {"name": self.name, "version": self.version},
            "parcel": [part.entry() for part in self.parts],
        }
        if self.groups:
            document["group"] = list(self.groups)
        return tomli_w.dumps(document).encode()

    def invoice(self) -> Invoice:
        return parse_invoice(self.toml())

    def part(self, name: str) -> Part:
        return next(part for part in self.parts if part.name == name)


def _platform(os: str, arch: str) -> dict[str, dict[str, str]]:
    return {"platform": {"os": os, "arch": arch}}


def multi_platform(version: str = "1.0.0") -> Bindle:
    """A CLI shipped for three platforms: one group per OS/arch, a required `oneOf` group
    choosing one binary, `requires` chains (the Linux binary needs libcrypto, which needs
    zlib) and optional docs."""
    parts = (
        Part("README.md", b"# tool\n", media_type="text/markdown"),
        Part("LICENSE", b"Apache-2.0\n", media_type="text/plain"),
        Part(
            "bin/linux-amd64/tool",
            b"\x7fELF amd64 " * 64,
            member_of=("binary", "linux-amd64"),
            requires=("libcrypto",),
            feature=_platform("linux", "amd64"),
        ),
        Part(
            "bin/linux-arm64/tool",
            b"\x7fELF arm64 " * 64,
            member_of=("binary", "linux-arm64"),
            requires=("libcrypto",),
            feature=_platform("linux", "arm64"),
        ),
        Part(
            "bin/windows-amd64/tool.exe",
            b"MZ amd64 " * 64,
            member_of=("binary", "windows-amd64"),
            feature=_platform("windows", "amd64"),
        ),
        Part("lib/libcrypto.so", b"crypto " * 32, member_of=("libcrypto",), requires=("zlib",)),
        Part("lib/libz.so", b"zlib " * 32, member_of=("zlib",)),
        Part("docs/manual.html", b"<h1>manual</h1>\n", member_of=("docs",), media_type="text/html"),
    )
    groups = (
        {"name": "binary", "required": True, "satisfiedBy": "oneOf"},
        {"name": "linux-amd64"},
        {"name": "linux-arm64"},
        {"name": "windows-amd64"},
        {"name": "libcrypto"},
        {"name": "zlib"},
        {"name": "docs", "satisfiedBy": "optional"},
    )
    return Bindle("example.com/tool", version, parts, groups)


def spin_app(version: str = "1.0.0") -> Bindle:
    """What Spin 0.x pushed for an app: its manifest and components in the global group,
    each component requiring the group of its static files, plus a component nobody
    requires."""
    parts = (
        Part("spin.toml", b'spin_version = "1"\n', media_type="application/vnd.fermyon.spin+toml"),
        Part(
            "hello.wasm",
            b"\x00asm\x01\x00\x00\x00" + bytes(range(256)) * 4,
            requires=("files-hello",),
            media_type="application/wasm",
        ),
        Part("static/index.html", b"<h1>Hello</h1>\n", member_of=("files-hello",)),
        Part("static/style.css", b"h1 { color: red }\n", member_of=("files-hello",)),
        Part("admin/panel.html", b"<h1>Admin</h1>\n", member_of=("files-admin",)),
    )
    groups = ({"name": "files-hello"}, {"name": "files-admin"})
    return Bindle("spin-hello", version, parts, groups)
