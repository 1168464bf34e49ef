"""Standalone bindles on disk: a directory or its `.tar.gz` (BINDLE-PROTOCOL.md section 10).

    <sha256 of "NAME/VERSION">/
      invoice.toml
      parcels/<parcel sha256>.dat     zero or more: a standalone bindle may be partial

The tarball holds that directory as its single top-level entry, in GNU tar format as the
reference client writes it. Parcel files are verified against the invoice's labels
whenever they are read (packing, pushing), so a damaged file is never passed on.
"""

from __future__ import annotations

import io
import tarfile
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bindle_server.client.documents import read_invoice
from bindle_server.client.errors import StandaloneError
from bindle_server.client.files import TempBeside
from bindle_server.client.integrity import HashingReader, ParcelCheck
from bindle_server.errors import InvalidInput, SizeMismatch
from bindle_server.model import BindleId, Invoice, Label, is_sha256

INVOICE_FILE = "invoice.toml"
PARCELS_DIR = "parcels"
PARCEL_SUFFIX = ".dat"
TARBALL_SUFFIX = ".tar.gz"


@dataclass(frozen=True)
class StandaloneBindle:
    """A standalone bindle directory as found on disk.

    `parcels` maps the digests of listed parcels whose `.dat` file is present to that
    file; `unlisted` are files in `parcels/` the invoice does not list (ignored).
    """

    root: Path
    invoice: Invoice
    invoice_bytes: bytes
    parcels: dict[str, Path] = field(default_factory=dict)
    unlisted: list[Path] = field(default_factory=list)

    @property
    def bindle_id(self) -> BindleId:
        return self.invoice.bindle_id

    @property
    def absent(self) -> list[Label]:
        """Labels the invoice lists whose `.dat` file is not in this standalone bindle."""
        return [label for label in self.invoice.labels if label.sha256 not in self.parcels]

    @classmethod
    def read(cls, root: Path) -> StandaloneBindle:
        """Read the invoice and list the parcel files of a standalone bindle directory."""
        invoice_path = root / INVOICE_FILE
        try:
            data = invoice_path.read_bytes()
        except OSError as exc:
            raise StandaloneError(
                f"{invoice_path}: cannot read the invoice: {exc.strerror}"
            ) from None
        try:
            invoice = read_invoice(data, str(invoice_path))
        except InvalidInput as exc:
            raise StandaloneError(exc.message) from None
        listed = {label.sha256 for label in invoice.labels}
        parcels: dict[str, Path] = {}
        unlisted: list[Path] = []
        parcel_dir = root / PARCELS_DIR
        # The spec says `parcels/` must exist; a missing one is read as empty (partial).
        entries = sorted(parcel_dir.iterdir()) if parcel_dir.is_dir() else []
        for entry in entries:
            sha = entry.name.removesuffix(PARCEL_SUFFIX)
            if entry.name.endswith(PARCEL_SUFFIX) and sha in listed and entry.is_file():
                parcels[sha] = entry
            else:
                unlisted.append(entry)
        return cls(root, invoice, data, parcels, unlisted)


def standalone_dir_name(bindle_id: BindleId) -> str:
    """The directory (and tarball) name of a standalone bindle: sha256 of NAME/VERSION."""
    return bindle_id.key


@contextmanager
def open_standalone(path: Path, bindle_id: BindleId | None = None) -> Iterator[StandaloneBindle]:
    """The standalone bindle at `path`, as the reference `push -p PATH` finds it.

    `path` may be a `.tar.gz`, a standalone directory (with `invoice.toml`), or a
    directory holding `<sha>.tar.gz` or `<sha>/` for `bindle_id` (tarball first, as the
    reference looks). A tarball is unpacked into a temporary directory, removed on exit.
    With `bindle_id`, the invoice must be that bindle's.
    """
    source = _locate(path, bindle_id)
    if source.is_file():
        with tempfile.TemporaryDirectory(prefix="bindle-standalone-") as scratch:
            root = extract_tarball(source, Path(scratch))
            standalone = StandaloneBindle.read(root)
            _check_id(standalone, bindle_id, source)
            yield standalone
    else:
        standalone = StandaloneBindle.read(source)
        _check_id(standalone, bindle_id, source)
        yield standalone


def extract_tarball(tarball: Path, into: Path) -> Path:
    """Unpack a standalone tarball into `into`; return its top-level directory.

    Only regular files and directories under one top-level directory are accepted;
    links, devices, absolute names and `..` are refused (and `tarfile`'s "data" filter
    is applied as a second guard).
    """
    top: str | None = None
    try:
        with tarfile.open(tarball, "r:gz") as archive:
            for member in archive:
                parts = [part for part in member.name.split("/") if part not in ("", ".")]
                if not parts or member.name.startswith("/") or ".." in parts:
                    raise StandaloneError(f"{tarball}: refusing the entry {member.name!r}")
                if not (member.isfile() or member.isdir()):
                    raise StandaloneError(
                        f"{tarball}: refusing {member.name!r}: only files and directories "
                        "belong in a standalone bindle"
                    )
                if top is None:
                    top = parts[0]
                elif parts[0] != top:
                    raise StandaloneError(
                        f"{tarball}: more than one top-level entry ({top!r}, {parts[0]!r}); "
                        "a standalone tarball holds exactly one directory"
                    )
                archive.extract(member, into, filter="data")
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise StandaloneError(f"{tarball}: not a readable .tar.gz: {exc}") from None
    if top is None or not (into / top).is_dir():
        raise StandaloneError(f"{tarball}: holds no standalone bindle directory")
    return into / top


def write_standalone(
    parent: Path, invoice_bytes: bytes, invoice: Invoice, parcels: Mapping[str, Path]
) -> Path:
    """Write `<parent>/<sha>/` with the invoice and the given parcel files (verified)."""
    root = parent / standalone_dir_name(invoice.bindle_id)
    (root / PARCELS_DIR).mkdir(parents=True, exist_ok=True)
    _write_atomically(root / INVOICE_FILE, invoice_bytes)
    labels = {label.sha256: label for label in invoice.labels}
    for sha, source in parcels.items():
        target = root / PARCELS_DIR / f"{sha}{PARCEL_SUFFIX}"
        with TempBeside(target) as temp:
            with source.open("rb") as raw, temp.path.open("wb") as out:
                reader = HashingReader(raw, ParcelCheck(sha, labels[sha].size, str(source)))
                while chunk := reader.read(1024 * 1024):
                    out.write(chunk)
                reader.check.verify()
            temp.commit()
    return root


def write_tarball(
    out_dir: Path, invoice_bytes: bytes, invoice: Invoice, parcels: Mapping[str, Path]
) -> Path:
    """Write `<out_dir>/<sha>.tar.gz` holding `<sha>/invoice.toml` and the parcel files.

    Each parcel file is verified against its label while it is packed; the tarball
    appears only when complete. `out_dir` is created if needed.
    """
    name = standalone_dir_name(invoice.bindle_id)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{name}{TARBALL_SUFFIX}"
    labels = {label.sha256: label for label in invoice.labels}
    now = int(time.time())
    with TempBeside(target) as temp:
        with tarfile.open(temp.path, "w:gz", format=tarfile.GNU_FORMAT, compresslevel=6) as archive:
            archive.addfile(_directory_entry(name, now))
            invoice_entry = _file_entry(f"{name}/{INVOICE_FILE}", len(invoice_bytes), now)
            archive.addfile(invoice_entry, io.BytesIO(invoice_bytes))
            archive.addfile(_directory_entry(f"{name}/{PARCELS_DIR}", now))
            for sha, source in sorted(parcels.items()):
                label = labels[sha]
                size = source.stat().st_size
                if size != label.size:
                    raise SizeMismatch(sha, label.size, size, str(source))
                check = ParcelCheck(sha, label.size, str(source))
                entry = _file_entry(f"{name}/{PARCELS_DIR}/{sha}{PARCEL_SUFFIX}", size, now)
                with source.open("rb") as raw:
                    archive.addfile(entry, HashingReader(raw, check))
                check.verify()
        temp.commit()
    return target


def _locate(path: Path, bindle_id: BindleId | None) -> Path:
    if path.is_file():
        return path
    if (path / INVOICE_FILE).is_file():
        return path
    if bindle_id is not None:
        name = standalone_dir_name(bindle_id)
        if (path / f"{name}{TARBALL_SUFFIX}").is_file():
            return path / f"{name}{TARBALL_SUFFIX}"
        if (path / name).is_dir():
            return path / name
        raise StandaloneError(
            f"no standalone bindle for {bindle_id} in {path}: expected {name}{TARBALL_SUFFIX} "
            f"or {name}/ there"
        )
    # Without an id, a folder holding exactly one standalone bindle names it.
    entries = sorted(path.iterdir()) if path.is_dir() else []
    candidates = [
        entry
        for entry in entries
        if is_sha256(entry.name.removesuffix(TARBALL_SUFFIX))
        and (entry.is_dir() or entry.name.endswith(TARBALL_SUFFIX))
    ]
    if len(candidates) == 1:
        return candidates[0]
    raise StandaloneError(
        f"{path} is not a standalone bindle, nor a folder holding exactly one; "
        "give the bindle id to choose"
    )


def _check_id(standalone: StandaloneBindle, bindle_id: BindleId | None, source: Path) -> None:
    if bindle_id is not None and standalone.bindle_id != bindle_id:
        raise StandaloneError(
            f"{source} holds the invoice of {standalone.bindle_id}, not of {bindle_id}"
        )


def _directory_entry(name: str, mtime: int) -> tarfile.TarInfo:
    entry = tarfile.TarInfo(name)
    entry.type = tarfile.DIRTYPE
    entry.mode = 0o755
    entry.mtime = mtime
    return entry


def _file_entry(name: str, size: int, mtime: int) -> tarfile.TarInfo:
    entry = tarfile.TarInfo(name)
    entry.size = size
    entry.mode = 0o644
    entry.mtime = mtime
    return entry


def _write_atomically(path: Path, data: bytes) -> None:
    with TempBeside(path) as temp:
        temp.write(data)
        temp.commit()
