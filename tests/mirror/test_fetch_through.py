"""A mirror fetches invoices and parcels it does not store from its upstreams, stores them
and serves them, from then on without the upstream."""

from __future__ import annotations

import base64
import hashlib
import time
from pathlib import Path

import httpx
import tomli

from tests.factories import make_invoice, parcel
from tests.mirror.conftest import (
    MirrorFactory,
    invoice_stored,
    kill_upstream,
    parcel_path,
    push,
    pushed,
)
from tests.mirror.fake_upstream import fake_upstream
from tests.servers import ServerProcess


def test_invoice_and_parcel_are_fetched_from_upstream_stored_and_served(
    upstream: ServerProcess, mirror_factory: MirrorFactory
) -> None:
    doc, item = pushed(upstream)
    mirror = mirror_factory(upstream.url)
    assert not invoice_stored(mirror, doc)

    invoice = httpx.get(f"{mirror.url}/_i/{doc.bindle_id}")
    assert invoice.status_code == 200, invoice.text
    assert tomli.loads(invoice.text)["bindle"]["name"] == doc.name
    assert invoice_stored(mirror, doc)

    fetched = httpx.get(f"{mirror.url}/_i/{doc.bindle_id}@{item.sha256}")
    assert fetched.status_code == 200
    assert fetched.content == item.data
    assert fetched.headers["content-length"] == str(item.size)
    assert parcel_path(mirror, item.sha256).read_bytes() == item.data


def test_a_parcel_read_first_brings_its_invoice_along(
    upstream: ServerProcess, mirror_factory: MirrorFactory
) -> None:
    doc, item = pushed(upstream)
    mirror = mirror_factory(upstream.url)
    fetched = httpx.get(f"{mirror.url}/_i/{doc.bindle_id}@{item.sha256}")
    assert fetched.content == item.data
    assert invoice_stored(mirror, doc)
    assert parcel_path(mirror, item.sha256).is_file()


def test_mirrored_bindles_are_served_while_upstream_is_down(
    upstream: ServerProcess, mirror_factory: MirrorFactory
) -> None:
    doc, item = pushed(upstream)
    # A short refresh, so the reads below also try (and fail) to recheck the yank status.
    mirror = mirror_factory(upstream.url, extra=("--upstream-refresh", "1s"))
    assert httpx.get(f"{mirror.url}/_i/{doc.bindle_id}@{item.sha256}").status_code == 200
    kill_upstream(upstream)
    time.sleep(1.5)  # past the refresh interval

    invoice = httpx.get(f"{mirror.url}/_i/{doc.bindle_id}")
    assert invoice.status_code == 200
    fetched = httpx.get(f"{mirror.url}/_i/{doc.bindle_id}@{item.sha256}")
    assert fetched.status_code == 200
    assert fetched.content == item.data


def test_a_bindle_no_upstream_has_is_404(
    upstream: ServerProcess, mirror_factory: MirrorFactory
) -> None:
    mirror = mirror_factory(upstream.url)
    response = httpx.get(f"{mirror.url}/_i/example.com/nowhere/1.0.0")
    assert response.status_code == 404
    assert "not found" in tomli.loads(response.text)["error"]


def test_a_bindle_not_stored_while_upstream_is_down_is_503_naming_the_upstream(
    upstream: ServerProcess, mirror_factory: MirrorFactory
) -> None:
    mirror = mirror_factory(upstream.url)
    kill_upstream(upstream)
    response = httpx.get(f"{mirror.url}/_i/example.com/nowhere/1.0.0")
    assert response.status_code == 503
    assert upstream.url in tomli.loads(response.text)["error"]


def test_a_parcel_the_upstream_lacks_is_404_and_nothing_is_stored(
    upstream: ServerProcess, mirror_factory: MirrorFactory
) -> None:
    item = parcel(b"never uploaded\n")
    doc = make_invoice("example.com/partial", "1.0.0", [item])
    push(upstream, doc, [])
    mirror = mirror_factory(upstream.url)
    response = httpx.get(f"{mirror.url}/_i/{doc.bindle_id}@{item.sha256}")
    assert response.status_code == 404
    assert not parcel_path(mirror, item.sha256).exists()


def test_a_range_of_an_unstored_parcel_is_served_and_the_whole_parcel_stored(
    upstream: ServerProcess, mirror_factory: MirrorFactory
) -> None:
    doc, item = pushed(upstream)
    mirror = mirror_factory(upstream.url)
    response = httpx.get(
        f"{mirror.url}/_i/{doc.bindle_id}@{item.sha256}", headers={"Range": "bytes=10-99"}
    )
    assert response.status_code == 206
    assert response.content == item.data[10:100]
    assert parcel_path(mirror, item.sha256).read_bytes() == item.data


def test_a_head_of_an_unstored_parcel_answers_its_size_and_stores_nothing(
    upstream: ServerProcess, mirror_factory: MirrorFactory
) -> None:
    doc, item = pushed(upstream)
    mirror = mirror_factory(upstream.url)
    response = httpx.head(f"{mirror.url}/_i/{doc.bindle_id}@{item.sha256}")
    assert response.status_code == 200
    assert response.headers["content-length"] == str(item.size)
    assert not parcel_path(mirror, item.sha256).exists()


def test_upstreams_are_tried_in_order_until_one_has_the_bindle(
    upstream: ServerProcess, mirror_factory: MirrorFactory
) -> None:
    doc, item = pushed(upstream)
    with fake_upstream() as empty:
        mirror = mirror_factory(empty.url, upstream.url)
        fetched = httpx.get(f"{mirror.url}/_i/{doc.bindle_id}@{item.sha256}")
        assert empty.requests  # asked first
    assert hashlib.sha256(fetched.content).hexdigest() == item.sha256


def test_the_token_file_is_sent_to_the_upstream_as_a_bearer_token(
    mirror_factory: MirrorFactory, tmp_path: Path
) -> None:
    token = tmp_path / "upstream-token"
    token.write_text("s3cret-token\n")
    with fake_upstream() as fake:
        mirror = mirror_factory(fake.url, extra=("--upstream-token-file", str(token)))
        assert httpx.get(f"{mirror.url}/_i/example.com/any/1.0.0").status_code == 404
    assert fake.authorizations == ["Bearer s3cret-token"]


def test_credentials_in_the_upstream_url_are_sent_as_basic_auth_and_never_shown(
    mirror_factory: MirrorFactory,
) -> None:
    with fake_upstream() as fake:
        with_credentials = fake.url.replace("http://", "http://mirror:hunter2-secret@")
        mirror = mirror_factory(with_credentials)
        assert httpx.get(f"{mirror.url}/_i/example.com/any/1.0.0").status_code == 404
    expected = base64.b64encode(b"mirror:hunter2-secret").decode()
    assert fake.authorizations == [f"Basic {expected}"]
    # The upstream is gone now: the 503 names it, without its password.
    response = httpx.get(f"{mirror.url}/_i/example.com/any/2.0.0")
    assert response.status_code == 503
    assert fake.url in response.text
    assert "hunter2-secret" not in response.text
    assert "hunter2-secret" not in mirror.log()
