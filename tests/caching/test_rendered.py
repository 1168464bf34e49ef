"""The in-memory cache of rendered invoices (service/rendered.py): bounded, and never
answering with bytes read before the store's change mark moved."""

from __future__ import annotations

import hashlib

from bindle_server.model.codec import Format
from bindle_server.service.rendered import RenderedCache, RenderedInvoice


def _rendered(body: bytes, yanked: bool = False) -> RenderedInvoice:
    return RenderedInvoice(body, hashlib.sha256(body).hexdigest(), yanked)


def test_an_entry_is_served_only_under_the_mark_it_was_read_under() -> None:
    cache = RenderedCache()
    cache.put("k", Format.TOML, 1, _rendered(b"live"))
    hit = cache.get("k", Format.TOML, 1)
    assert hit is not None
    assert hit.body == b"live"
    assert cache.get("k", Format.JSON, 1) is None
    assert cache.get("k", Format.TOML, 2) is None
    # A stale entry is dropped, not kept for a mark that might come back.
    assert cache.get("k", Format.TOML, 1) is None


def test_the_cache_keeps_at_most_its_limit_dropping_the_least_recently_used() -> None:
    cache = RenderedCache(limit=3000)
    for n in range(3):
        cache.put(f"k{n}", Format.TOML, 7, _rendered(bytes(1000)))
    assert cache.get("k0", Format.TOML, 7) is not None  # k1 is now the oldest
    cache.put("k3", Format.TOML, 7, _rendered(bytes(1000)))
    assert cache.get("k1", Format.TOML, 7) is None
    for kept in ("k0", "k2", "k3"):
        assert cache.get(kept, Format.TOML, 7) is not None
    # Putting a key again replaces its entry rather than counting it twice.
    cache.put("k3", Format.TOML, 7, _rendered(bytes(1000)))
    for kept in ("k0", "k2", "k3"):
        assert cache.get(kept, Format.TOML, 7) is not None


def test_very_large_invoices_are_not_kept() -> None:
    cache = RenderedCache()
    cache.put("big", Format.TOML, 1, _rendered(bytes(1024 * 1024)))
    assert cache.get("big", Format.TOML, 1) is None
