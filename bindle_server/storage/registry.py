"""Choose a storage backend by URL scheme: `file://PATH` (the default) or `memory://`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from bindle_server.storage.base import InvoiceStore, ParcelStore


@dataclass
class Stores:
    """The opened backend: its two stores and where its index belongs."""

    parcels: ParcelStore
    invoices: InvoiceStore
    # Path of the embedded SQLite index, or ":memory:" for backends with no directory.
    index_location: str
    description: str


def open_stores(url: str) -> Stores:
    """Open the backend that `url` names; a bare path means `file://` that path."""
    parts = urlsplit(url)
    if parts.scheme == "file" and parts.netloc not in ("", "localhost"):
        # file://data would otherwise silently mean the path "" on host "data".
        raise ValueError(f"unsupported storage URL {url!r}: write file:///absolute/path")
    if parts.scheme in ("", "file"):
        from bindle_server.storage.local import LocalStores

        root = Path(unquote(parts.path if parts.scheme else url)).expanduser()
        local = LocalStores(root)
        return Stores(local.parcels, local.invoices, str(root / "index.sqlite3"), f"file://{root}")
    if parts.scheme == "memory":
        from bindle_server.storage.memory import MemoryStores

        memory = MemoryStores()
        return Stores(memory.parcels, memory.invoices, ":memory:", "memory://")
    raise ValueError(f"unsupported storage URL {url!r}: use file://PATH or memory://")
