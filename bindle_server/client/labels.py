"""Labels for local files: their digest and size, a parcel name, a guessed media type."""

from __future__ import annotations

import mimetypes
from pathlib import Path

from bindle_server.client.integrity import sha256_of_file
from bindle_server.model import Label

DEFAULT_MEDIA_TYPE = "application/octet-stream"

# Python's built-in table only (not the machine's /etc/mime.types), so the same tree
# gives the same invoice everywhere, plus types the table lacks.
_TYPES = mimetypes.MimeTypes()
for _type, _extension in (
    ("application/toml", ".toml"),
    ("application/wasm", ".wasm"),
    ("text/markdown", ".md"),
    ("application/yaml", ".yaml"),
    ("application/yaml", ".yml"),
):
    _TYPES.add_type(_type, _extension)
_ENCODINGS = {"gzip": "application/gzip", "bzip2": "application/x-bzip2", "xz": "application/x-xz"}


def guess_media_type(name: str) -> str:
    """The media type a file name suggests; application/octet-stream when unknown."""
    media_type, encoding = _TYPES.guess_type(name, strict=False)
    if encoding is not None:
        # `x.tar.gz` is a gzip stream, whatever it holds.
        return _ENCODINGS.get(encoding, DEFAULT_MEDIA_TYPE)
    return media_type or DEFAULT_MEDIA_TYPE


def label_for_file(path: Path, name: str | None = None, media_type: str | None = None) -> Label:
    """A label for a file: sha256 and size read from it, name defaulting to its file name."""
    sha256, size = sha256_of_file(path)
    parcel_name = name if name is not None else path.name
    return Label.model_validate(
        {
            "sha256": sha256,
            "mediaType": media_type or guess_media_type(parcel_name),
            "name": parcel_name,
            "size": size,
        }
    )
