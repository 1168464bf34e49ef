"""Storage backends behind one narrow interface (see base.py for the contract)."""

from bindle_server.storage.base import InvoiceStore, ParcelStore
from bindle_server.storage.registry import Stores, open_stores

__all__ = ["InvoiceStore", "ParcelStore", "Stores", "open_stores"]
