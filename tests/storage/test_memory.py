"""The storage contract on the in-memory backend."""

from __future__ import annotations

import pytest

from bindle_server.storage import Stores, open_stores
from tests.storage.contract import InvoiceStoreContract, ParcelStoreContract


class TestMemoryParcelStore(ParcelStoreContract):
    @pytest.fixture
    def stores(self) -> Stores:
        return open_stores("memory://")


class TestMemoryInvoiceStore(InvoiceStoreContract):
    @pytest.fixture
    def stores(self) -> Stores:
        return open_stores("memory://")
