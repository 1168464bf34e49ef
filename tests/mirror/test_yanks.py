"""Yanks made upstream reach the mirror: a mirrored invoice's yank status is rechecked on
reads, at most once per --upstream-refresh."""

from __future__ import annotations

import time

import httpx
import tomli

from tests.factories import make_invoice
from tests.mirror.conftest import MirrorFactory, pushed
from tests.mirror.fake_upstream import fake_upstream
from tests.servers import ServerProcess


def test_a_yank_upstream_reaches_the_mirror_within_the_refresh_interval(
    upstream: ServerProcess, mirror_factory: MirrorFactory
) -> None:
    doc, item = pushed(upstream)
    mirror = mirror_factory(upstream.url, extra=("--upstream-refresh", "1s"))
    assert httpx.get(f"{mirror.url}/_i/{doc.bindle_id}").status_code == 200
    assert httpx.delete(f"{upstream.url}/_i/{doc.bindle_id}").status_code == 200

    deadline = time.monotonic() + 20
    status = 200
    while status == 200 and time.monotonic() < deadline:
        time.sleep(0.2)
        status = httpx.get(f"{mirror.url}/_i/{doc.bindle_id}").status_code
    assert status == 403
    yanked = httpx.get(f"{mirror.url}/_i/{doc.bindle_id}", params={"yanked": "true"})
    assert tomli.loads(yanked.text)["yanked"] is True
    assert httpx.get(f"{mirror.url}/_i/{doc.bindle_id}@{item.sha256}").status_code == 403
    search = tomli.loads(httpx.get(f"{mirror.url}/_q", params={"q": doc.name}).text)
    assert search["total"] == 0


def test_the_yank_status_is_not_asked_again_before_the_refresh_interval(
    mirror_factory: MirrorFactory,
) -> None:
    doc = make_invoice("example.com/steady", "1.0.0")
    with fake_upstream() as fake:
        fake.invoices[doc.bindle_id] = doc.toml()
        mirror = mirror_factory(fake.url)  # the default refresh: 5 minutes
        for _ in range(3):
            assert httpx.get(f"{mirror.url}/_i/{doc.bindle_id}").status_code == 200
    assert fake.requests == [f"GET /_i/{doc.bindle_id}"]


def test_a_yanked_upstream_invoice_is_mirrored_as_yanked(
    upstream: ServerProcess, mirror_factory: MirrorFactory
) -> None:
    doc, _ = pushed(upstream)
    assert httpx.delete(f"{upstream.url}/_i/{doc.bindle_id}").status_code == 200
    mirror = mirror_factory(upstream.url)
    assert httpx.get(f"{mirror.url}/_i/{doc.bindle_id}").status_code == 403
    shown = httpx.get(f"{mirror.url}/_i/{doc.bindle_id}", params={"yanked": "true"})
    assert shown.status_code == 200
    assert tomli.loads(shown.text)["yanked"] is True
