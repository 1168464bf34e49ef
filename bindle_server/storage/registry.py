"""Choose a storage backend by URL: `file://PATH` (the default), `s3://BUCKET/PREFIX`, `memory://`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from bindle_server.storage.base import InvoiceStore, ParcelStore


async def _nothing() -> None:
    return None


@dataclass
class Stores:
    """The opened backend: its two stores and where its index belongs."""

    parcels: ParcelStore
    invoices: InvoiceStore
    # Path of the embedded SQLite index, or ":memory:" for backends with no directory.
    index_location: str
    description: str
    # Checks and clean-up a backend runs once the event loop is up, and its release.
    start: Callable[[], Awaitable[None]] = field(default=_nothing)
    close: Callable[[], Awaitable[None]] = field(default=_nothing)
    # Periodic clean-up while serving (aborting uploads of nodes that died).
    maintain: Callable[[], Awaitable[None]] = field(default=_nothing)
    # Whether several server processes may share this backend (with a shared index).
    shared: bool = False
    # Set where asking the store about each parcel costs a request (an object store):
    # every stored parcel with its size, for keeping those facts in the index instead.
    parcel_listing: Callable[[], AsyncIterator[tuple[str, int]]] | None = None


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
    if parts.scheme == "s3":
        try:
            from bindle_server.storage.s3 import S3Location, S3Stores
        except ImportError:
            raise ValueError(
                "s3:// storage needs aiobotocore: pip install 'bindle-server[s3]'"
            ) from None
        location = S3Location.from_url(url)
        s3 = S3Stores(location)
        return Stores(
            s3.parcels,
            s3.invoices,
            # No local directory to keep an index in: an embedded index lives in memory and
            # is rebuilt from the bucket at start-up; several nodes need --index postgresql.
            ":memory:",
            location.describe(),
            start=s3.start,
            close=s3.close,
            maintain=s3.maintain,
            shared=True,
            parcel_listing=s3.parcels.listing,
        )
    raise ValueError(
        f"unsupported storage URL {url!r}: use file://PATH, s3://BUCKET/PREFIX or memory://"
    )
