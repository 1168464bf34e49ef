"""An invoice built from a directory tree: one parcel per file, named by its relative path.

- Media types are guessed from file names (`labels.guess_media_type`).
- With `groups`, each top-level subdirectory becomes a group and its files are members
  of it; files at the top stay in the global group.
- Bindle lists a parcel once per digest, so files with identical bytes (two empty
  `__init__.py`) become one parcel: the first path is its `name`, the others are kept in
  the label annotation `bindle-server/also-named` (a JSON list) so `pull` writes them all.
- Symlinks to files inside the tree are read as the files they point to; a symlink
  leading outside is refused (it would publish a file from elsewhere); directory
  symlinks are not followed.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from bindle_server.client.integrity import sha256_of_file
from bindle_server.client.labels import guess_media_type
from bindle_server.client.progress import Progress
from bindle_server.errors import InvalidInput
from bindle_server.model import BINDLE_VERSION, Invoice, Label
from bindle_server.model.codec import describe_validation_error

ALSO_NAMED = "bindle-server/also-named"


@dataclass(frozen=True)
class DirectoryBindle:
    """The invoice built from a tree and, per parcel digest, the file to upload."""

    invoice: Invoice
    files: dict[str, Path]


def invoice_from_directory(
    root: Path,
    name: str,
    version: str,
    *,
    groups: bool = False,
    description: str | None = None,
    authors: list[str] | None = None,
    progress: Progress | None = None,
) -> DirectoryBindle:
    """Hash every file under `root` (in sorted order, so the invoice is reproducible)."""
    if not root.is_dir():
        raise InvalidInput(f"{root} is not a directory")
    base = root.resolve()
    entries: dict[str, dict[str, Any]] = {}  # sha256 -> parcel entry being built
    files: dict[str, Path] = {}
    group_names: list[str] = []
    for relative, path in _files(base, progress):
        sha256, size = sha256_of_file(path)
        group = relative.split("/", 1)[0] if groups and "/" in relative else None
        if group is not None and group not in group_names:
            group_names.append(group)
        entry = entries.get(sha256)
        if entry is None:
            label: dict[str, Any] = {
                "sha256": sha256,
                "mediaType": guess_media_type(relative),
                "name": relative,
                "size": size,
            }
            entry = {"label": label, "groups": [], "global": False}
            entries[sha256] = entry
            files[sha256] = path
        else:
            annotations = entry["label"].setdefault("annotations", {})
            others = json.loads(annotations.get(ALSO_NAMED, "[]"))
            annotations[ALSO_NAMED] = json.dumps([*others, relative])
        if group is None:
            entry["global"] = True
        elif group not in entry["groups"]:
            entry["groups"].append(group)
    document = _invoice_document(name, version, description, authors, entries, group_names)
    try:
        invoice = Invoice.model_validate(document)
    except ValidationError as exc:
        raise InvalidInput(f"cannot build an invoice: {describe_validation_error(exc)}") from None
    return DirectoryBindle(invoice, files)


def _invoice_document(
    name: str,
    version: str,
    description: str | None,
    authors: list[str] | None,
    entries: dict[str, dict[str, Any]],
    group_names: list[str],
) -> dict[str, Any]:
    document: dict[str, Any] = {
        "bindleVersion": BINDLE_VERSION,
        "bindle": {"name": name, "version": version},
    }
    if description is not None:
        document["bindle"]["description"] = description
    if authors:
        document["bindle"]["authors"] = authors
    parcels = []
    for entry in entries.values():
        parcel: dict[str, Any] = {"label": entry["label"]}
        # A parcel also found outside every group stays global: fetched whatever is chosen.
        if entry["groups"] and not entry["global"]:
            parcel["conditions"] = {"memberOf": entry["groups"]}
        parcels.append(parcel)
    if parcels:
        document["parcel"] = parcels
    if group_names:
        document["group"] = [{"name": group} for group in group_names]
    return document


def parcel_names(label: Label) -> list[str]:
    """Every path a parcel was found under: its name, then the `also-named` ones."""
    names = [label.name] if label.name else []
    extra = (label.annotations or {}).get(ALSO_NAMED)
    if extra is not None:
        try:
            others = json.loads(extra)
        except ValueError:
            others = []
        if isinstance(others, list):
            names.extend(other for other in others if isinstance(other, str))
    return names


def _files(base: Path, progress: Progress | None) -> list[tuple[str, Path]]:
    found: list[tuple[str, Path]] = []
    for directory, subdirectories, filenames in os.walk(base):
        subdirectories.sort()
        here = Path(directory)
        for subdirectory in subdirectories:
            if (here / subdirectory).is_symlink() and progress is not None:
                progress.note(f"not following the directory symlink {here / subdirectory}")
        for filename in sorted(filenames):
            path = here / filename
            relative = path.relative_to(base).as_posix()
            if path.is_symlink():
                target = path.resolve()
                if not target.is_relative_to(base):
                    raise InvalidInput(
                        f"{path} is a symlink to {target}, outside {base}; refusing to publish it"
                    )
                path = target
            if not path.is_file():
                if progress is not None:
                    progress.note(f"skipping {relative}: not a regular file")
                continue
            found.append((relative, path))
    return found
