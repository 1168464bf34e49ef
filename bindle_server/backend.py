"""Open the configured stores and index together, and release both: one way for every command."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from bindle_server.search.index import Index
from bindle_server.search.registry import open_index
from bindle_server.storage import Stores, open_stores

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Backend:
    stores: Stores
    index: Index


@asynccontextmanager
async def open_backend(storage_url: str, index_url: str | None) -> AsyncIterator[Backend]:
    """The stores `storage_url` names and the index `index_url` names (or the embedded one)."""
    stores = open_stores(storage_url)
    try:
        await stores.start()
        if stores.shared and not index_url:
            log.warning(
                "%s keeps its query index in memory and rebuilds it at every start; "
                "several nodes sharing it need a shared index (--index postgresql://...)",
                stores.description,
            )
        index = await open_index(index_url, stores.index_location)
        try:
            yield Backend(stores, index)
        finally:
            await index.close()
    finally:
        await stores.close()
