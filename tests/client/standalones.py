"""Standalone bindles written by hand (section 10 layout), independently of the library."""

from __future__ import annotations

import hashlib
import tarfile
from pathlib import Path

from tests.factories import InvoiceDoc, ParcelData


def write_standalone(
    parent: Path, doc: InvoiceDoc, parcels: list[ParcelData], invoice: bytes | None = None
) -> Path:
    """`<parent>/<sha256 of id>/invoice.toml` and `parcels/<sha>.dat` for `parcels` only."""
    folder = parent / hashlib.sha256(doc.bindle_id.encode()).hexdigest()
    (folder / "parcels").mkdir(parents=True)
    (folder / "invoice.toml").write_bytes(doc.toml() if invoice is None else invoice)
    for p in parcels:
        (folder / "parcels" / f"{p.sha256}.dat").write_bytes(p.data)
    return folder


def pack(folder: Path, out_dir: Path) -> Path:
    """`folder` as `<out_dir>/<folder name>.tar.gz`, the folder its single top-level entry."""
    out_dir.mkdir(parents=True, exist_ok=True)
    tarball = out_dir / f"{folder.name}.tar.gz"
    with tarfile.open(tarball, "w:gz") as archive:
        archive.add(folder, arcname=folder.name)
    return tarball


def tar_members(tarball: Path) -> list[str]:
    with tarfile.open(tarball) as archive:
        return archive.getnames()
