"""Storage backends behind one narrow interface (see base.py for the contract)."""

from bindle_server.storage.base import InvoiceStore, ParcelStore, RecordKind, StoredObject
from bindle_server.storage.registry import Stores, open_stores

__all__ = [
    "InvoiceStore",
    "ParcelStore",
    "RecordKind",
    "StoredObject",
    "Stores",
    "open_stores",
]
