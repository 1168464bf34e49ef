"""BindleService: the spec's verbs over the stores and the index, and the lifecycle's."""

from bindle_server.service.core import (
    BindleService,
    CreatedInvoice,
    QueryResult,
    StoredParcel,
)
from bindle_server.service.indexing import index_entry, rebuild_index, stored_entry
from bindle_server.service.purging import concurrently

__all__ = [
    "BindleService",
    "CreatedInvoice",
    "QueryResult",
    "StoredParcel",
    "concurrently",
    "index_entry",
    "rebuild_index",
    "stored_entry",
]
