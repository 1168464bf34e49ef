"""The in-memory cache of rendered invoices (service/rendered.py): bounded, and never
answering with bytes read before the store's change mark moved."""

from __future__ import annotations

import hashlib

import tomli
from fastapi.testclient import TestClient

from bindle_server.model.codec import Format
from bindle_server.service.rendered import RenderedCache, RenderedInvoice
from tests.factories import make_invoice, spin_invoice, spin_invoice_toml
from tests.selection.invoices import multi_platform, spin_app


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


def _shapes() -> list[tuple[str, bytes]]:
    spin, _ = spin_invoice()
    return [
        (str(spin.bindle_id), spin_invoice_toml(spin)),
        (multi_platform().bindle_id, multi_platform().toml()),
        (spin_app().bindle_id, spin_app().toml()),
    ]


def test_what_a_create_keeps_is_byte_for_byte_what_a_read_from_disk_serves(
    api: TestClient,
) -> None:
    """The worker that stores an invoice keeps its TOML for GETs; any other worker renders
    it from the file. Both must serve the same bytes, or the ETag would depend on which
    worker answers."""
    shapes = _shapes()
    for _, body in shapes:
        assert api.post("/_i", content=body).status_code in (201, 202)
    kept = {bindle_id: api.get(f"/_i/{bindle_id}") for bindle_id, _ in shapes}
    # A yank anywhere changes the store's mark: every kept rendering is read again.
    other = make_invoice("example.com/rendered/other")
    assert api.post("/_i", content=other.toml()).status_code == 201
    assert api.delete(f"/_i/{other.bindle_id}").status_code == 200
    for bindle_id, first in kept.items():
        again = api.get(f"/_i/{bindle_id}")
        assert first.status_code == again.status_code == 200
        assert again.content == first.content
        assert again.headers["etag"] == first.headers["etag"]
        assert again.headers["cache-control"] == first.headers["cache-control"]


def test_a_yank_is_served_at_once_after_a_kept_rendering(api: TestClient) -> None:
    doc = make_invoice("example.com/rendered/yanked")
    assert api.post("/_i", content=doc.toml()).status_code == 201
    live = api.get(f"/_i/{doc.bindle_id}")
    assert live.status_code == 200
    assert api.delete(f"/_i/{doc.bindle_id}").status_code == 200
    assert api.get(f"/_i/{doc.bindle_id}").status_code == 403
    yanked = api.get(f"/_i/{doc.bindle_id}", params={"yanked": "true"})
    assert tomli.loads(yanked.text)["yanked"] is True
    assert yanked.headers["etag"] != live.headers["etag"]
